//! `mpirun -np 2 train ppo` end to end with Open MPI (`--oversubscribe`: this machine may have
//! fewer cores than ranks): one run folder with a model that `play` plays, global steps of both
//! ranks, a resume that needs the same number of ranks, the CNN-LSTM policy, Ctrl-C that saves
//! once with every rank exiting 0, and a killed rank that ends the run with an error instead of
//! a hang.
//!
//! Every iteration of an MPI run also checks that the ranks' parameters are bit-identical
//! (`Dist::check_params_agree`); a run whose gradients were not averaged fails with an error.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cartridge_tests::{
    assert_clean_failure, bin, interrupt_when, onnx_metadata, run, summary, texts,
};

/// One MPI job at a time: two ranks per job already fill this machine's cores.
static ONE_JOB: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_job() -> std::sync::MutexGuard<'static, ()> {
    ONE_JOB.lock().unwrap_or_else(|p| p.into_inner())
}

/// `mpirun -np 2 [wrapper] train ppo ...` for Pong with 2 envs and one thread per rank. After
/// Ctrl-C, mpirun gives the ranks 10 s (not its default 1 s) between its SIGTERM and SIGKILL,
/// so that a loaded test machine still sees them exit on their own.
fn mpirun(wrapper: &[&str]) -> Command {
    let mut c = Command::new("mpirun");
    c.args([
        "--oversubscribe",
        "--mca",
        "odls_base_sigkill_timeout",
        "10",
        "-np",
        "2",
    ])
    .args(wrapper)
    .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
    .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    c
}

fn ppo_args(out: &Path, total: &str) -> Vec<String> {
    [
        "ppo",
        "--rom",
        "pong",
        "--total-timesteps",
        total,
        "--num-envs",
        "2",
        "--threads",
        "1",
        "--env-threads",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(["--out".into(), out.display().to_string()])
    .collect()
}

/// `mpirun -np 2 train ppo` of [`ppo_args`] plus `extra` and a one-game evaluation, which must
/// succeed; returns its stdout and stderr.
fn train_two_ranks(out: &Path, total: &str, extra: &[&str]) -> (String, String) {
    let o = run(mpirun(&[])
        .arg(bin("train"))
        .args(ppo_args(out, total))
        .args(extra)
        .args(["--eval-episodes", "1"]));
    let (stdout, stderr) = texts(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    (stdout, stderr)
}

/// Checks that `play` plays one game of `model` (cut at 2000 frames).
fn plays_one_game(model: &Path) {
    let played = summary(&run(Command::new(bin("play")).arg(model).args([
        "--rom",
        "pong",
        "--headless",
        "--max-frames",
        "2000",
    ])));
    assert_eq!(played["episodes"], 1);
}

fn state(dir: &Path) -> serde_json::Value {
    let latest = std::fs::read_to_string(dir.join("checkpoints/latest")).expect("latest");
    let text = std::fs::read_to_string(dir.join("checkpoints").join(latest).join("state.json"))
        .expect("state.json");
    serde_json::from_str(&text).expect("json")
}

#[test]
fn two_ranks_train_one_run_that_play_plays_and_resume_with_two() {
    let _job = one_job();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    let (stdout, stderr) = train_two_ranks(&dir, "4096", &[]);
    // One summary line (rank 0's), one start line naming the ranks.
    assert_eq!(stdout.matches("\"global_step\"").count(), 1, "{stdout}");
    assert!(
        format!("{stdout}{stderr}")
            .contains("2 envs on 1 threads on each of 2 MPI ranks, 8 iterations of 512 steps"),
        "{stdout}\n{stderr}"
    );
    // 2 ranks x 2 envs x 128 steps = 512 agent steps per iteration, 8 of them.
    let s = state(&dir);
    assert_eq!(s["global_step"], 4096);
    assert_eq!(s["iterations"], 8);
    assert_eq!(s["ranks"], 2);
    let metrics = std::fs::read_to_string(dir.join("metrics.csv")).expect("metrics");
    let steps: Vec<&str> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap_or(""))
        .collect();
    assert_eq!(
        steps,
        ["512", "1024", "1536", "2048", "2560", "3072", "3584", "4096"]
    );
    // Only rank 0 wrote: one events file, one folder.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["run"]);
    plays_one_game(&dir.join("model.onnx"));

    // A resume keeps the number of ranks.
    let o = run(Command::new(bin("train"))
        .args(["ppo", "--resume"])
        .arg(&dir)
        .args(["--total-timesteps", "5120"]));
    assert_clean_failure(
        &o,
        "the run trains on 2 MPI rank(s) and this is 1: the global batch (ranks x num_envs x \
         num_steps) is part of its learning arguments; resume it with `mpirun -np 2`",
    );
    let o = run(mpirun(&[]).arg(bin("train")).args([
        "ppo",
        "--resume",
        &dir.display().to_string(),
        "--total-timesteps",
        "5120",
        "--threads",
        "1",
        "--env-threads",
        "1",
        "--eval-episodes",
        "0",
    ]));
    let (stdout, stderr) = texts(&o);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    assert_eq!(state(&dir)["global_step"], 5120);
}

#[test]
fn two_ranks_train_the_lstm_policy_with_identical_parameters() {
    // The CNN-LSTM's weights are broadcast and its gradients averaged like the CNN's: every
    // iteration's parameter check (bit-identical on both ranks) would stop the run otherwise.
    // Each rank's minibatches are whole sequences of its own environments (2 envs, 2
    // minibatches: one sequence each).
    let _job = one_job();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    train_two_ranks(
        &dir,
        "2048",
        &["--policy", "lstm", "--num-minibatches", "2"],
    );
    let s = state(&dir);
    assert_eq!(s["global_step"], 2048);
    assert_eq!(s["iterations"], 4);
    assert_eq!(s["ranks"], 2);
    let model = dir.join("model.onnx");
    let meta = onnx_metadata(&model);
    assert_eq!(meta["cartridge.arch"], "nature_cnn_lstm");
    assert_eq!(meta["cartridge.recurrent"], "lstm");
    plays_one_game(&model);
}

#[test]
fn ctrl_c_on_mpirun_saves_once_and_every_rank_exits_0() {
    let _job = one_job();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    // Each rank under a shell that ignores mpirun's SIGTERM (train still gets it: mpirun
    // signals the rank's process group) and records train's exit status.
    let status = tmp.path().join("status");
    let script = format!(
        "trap '' TERM; \"$0\" \"$@\"; echo $? > {}-$OMPI_COMM_WORLD_RANK",
        status.display()
    );
    let metrics = dir.join("metrics.csv");
    let o = interrupt_when(
        mpirun(&["bash", "-c", &script])
            .arg(bin("train"))
            .args(ppo_args(&dir, "1000000"))
            .args(["--eval-episodes", "0"])
            // mpirun must get the SIGINT alone, as from a terminal (its ranks have their own
            // process groups).
            .process_group(0),
        Duration::from_secs(120),
        || std::fs::read_to_string(&metrics).is_ok_and(|m| m.lines().count() >= 3),
    );
    let (stdout, stderr) = texts(&o);
    let saved = state(&dir);
    let step = saved["global_step"].as_u64().expect("step");
    assert!(step >= 1024 && step % 512 == 0, "{saved}");
    assert!(
        stderr.contains(&format!("interrupted: saved a checkpoint at step {step}")),
        "{stdout}\n{stderr}"
    );
    assert_eq!(
        stderr.matches("interrupted").count(),
        1,
        "saved once: {stderr}"
    );
    for rank in 0..2 {
        let s = std::fs::read_to_string(format!("{}-{rank}", status.display()))
            .unwrap_or_else(|e| panic!("rank {rank} left no status ({e}): {stderr}"));
        assert_eq!(s.trim(), "0", "rank {rank} exit status");
    }
}

#[test]
fn a_killed_rank_ends_the_run_with_an_error() {
    let _job = one_job();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    let pid_file = tmp.path().join("rank1.pid");
    let script = format!(
        "[ \"$OMPI_COMM_WORLD_RANK\" = 1 ] && echo $$ > {}; exec \"$0\" \"$@\"",
        pid_file.display()
    );
    let mut child = mpirun(&["bash", "-c", &script])
        .arg(bin("train"))
        .args(ppo_args(&dir, "1000000"))
        .args(["--eval-episodes", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mpirun");
    let metrics = dir.join("metrics.csv");
    let t0 = Instant::now();
    while !std::fs::read_to_string(&metrics).is_ok_and(|m| m.lines().count() >= 2) {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no iteration in 120 s"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "mpirun exited early"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = std::fs::read_to_string(&pid_file).expect("rank 1's pid");
    assert!(Command::new("kill")
        .args(["-KILL", pid.trim()])
        .status()
        .expect("kill")
        .success());
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("rank 0 still runs 60 s after rank 1 was killed");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(!status.success(), "mpirun {status}");
}
