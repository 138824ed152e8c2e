//! `train dqn` end to end on the real Breakout ROM, on the CPU: a short run with
//! `--save-replay` that Ctrl-C interrupts (it must save network, target network, optimizer,
//! counters and the replay memory, and exit 0), a resume that continues with the saved replay
//! memory and finishes (metrics.csv with epsilon and TD loss, curve.png, model.onnx with
//! `q_values`, eval.json with epsilon 0.05, TensorBoard events with DQN's tags), `play` on the exported model, and a replay memory
//! too large for the machine refused before anything starts.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cartridge_tests::{
    as_f32, assert_clean_failure, bin, event_files, interrupt_when, metrics_columns, onnx_metadata,
    run, summary, tensorboard_scalars, texts,
};

fn metrics(dir: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn train_args(dir: &Path) -> Vec<String> {
    [
        "dqn",
        "--rom",
        "breakout",
        "--total-timesteps",
        "3000",
        "--buffer-size",
        "4000",
        "--learning-starts",
        "500",
        "--save-every",
        "500",
        "--save-replay",
        "--eval-episodes",
        "1",
        "--threads",
        "1",
        "--out",
    ]
    .iter()
    .map(ToString::to_string)
    .chain([dir.display().to_string()])
    .collect()
}

#[test]
fn ctrl_c_saves_replay_then_resume_finishes_exports_and_plays() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");

    // 1. Interrupt once a metrics row (1000 agent steps) is written.
    let out = interrupt_when(
        Command::new(bin("train")).args(train_args(&dir)),
        Duration::from_secs(180),
        || metrics(&dir).len() >= 2,
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "Ctrl-C must exit 0\n{stdout}\n{stderr}"
    );
    // The memory figure is printed at start: 4000 x (7056 + 6) bytes = 28.25 MB.
    assert!(
        stderr.contains("4000 transitions x 7062 bytes = 0.03 GB"),
        "{stderr}"
    );
    let s: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("line")).expect("json");
    assert_eq!(s["interrupted"], true);
    let step = s["global_step"].as_u64().expect("step");
    assert!((1000..3000).contains(&step), "interrupted at {step}");
    let latest = std::fs::read_to_string(dir.join("checkpoints/latest")).expect("latest");
    assert_eq!(latest, format!("step-{step:012}"));
    let ckpt = dir.join("checkpoints").join(&latest);
    for f in [
        "model.safetensors",
        "target.safetensors",
        "optimizer.safetensors",
        "state.json",
    ] {
        assert!(ckpt.join(f).is_file(), "{f} missing");
    }
    // replay.bin: 16-byte magic + env count (8) + per env: capacity (8), count (8), then
    // 4000 slots x (7056 frame + 1 action + 4 reward + 1 flags) bytes.
    let replay_len = std::fs::metadata(ckpt.join("replay.bin"))
        .expect("replay")
        .len();
    assert_eq!(replay_len, 16 + 8 + 8 + 8 + 4000 * (7056 + 1 + 4 + 1));
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ckpt.join("state.json")).expect("state"))
            .expect("json");
    // One gradient step every 4 agent steps after the first 500.
    assert_eq!(state["gradient_steps"].as_u64(), Some((step - 500) / 4));
    assert_eq!(state["iterations"].as_u64(), Some(0), "a PPO counter");
    assert!(!dir.join("model.onnx").exists());

    // 2. Resume with the saved replay memory and finish.
    let o = run(Command::new(bin("train"))
        .args(["dqn", "--resume"])
        .arg(&dir)
        .args(["--eval-episodes", "1", "--threads", "1"]));
    let (stdout, stderr) = texts(&o);
    assert!(o.status.success(), "resume failed\n{stdout}\n{stderr}");
    assert!(stderr.contains("with its saved replay memory"), "{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("line")).expect("json");
    assert_eq!(s["global_step"], 3000);
    assert_eq!(s["eval_episodes"], 1);
    let rows = metrics(&dir);
    let col = |name: &str| rows[0].iter().position(|c| c == name).expect(name);
    let steps: Vec<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(steps, ["1000", "2000", "3000"]);
    // Epsilon 1.0 -> 0.01 over 10% of 3000 steps: at the floor by every row.
    for r in &rows[1..] {
        assert_eq!(r[col("epsilon")], "0.01");
        assert!(r[col("td_loss")].parse::<f64>().is_ok_and(f64::is_finite));
        assert!(r[col("pg_loss")].is_empty(), "PPO columns stay empty");
    }
    for f in ["model.onnx", "eval.json", "curve.png", "episodes.jsonl"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // TensorBoard: DQN's CleanRL tags with metrics.csv's values, two files (run + resume).
    assert_eq!(event_files(&dir), 2, "a resume appends a new event file");
    let tb = tensorboard_scalars(&dir);
    let csv = metrics_columns(&dir);
    for (tag, column) in [
        ("losses/td_loss", "td_loss"),
        ("losses/q_values", "q_values"),
        ("charts/epsilon", "epsilon"),
        ("charts/learning_rate", "learning_rate"),
        ("charts/SPS", "sps"),
    ] {
        let want = as_f32(&csv[column]);
        assert_eq!(want.len(), 3, "{column}");
        assert_eq!(tb.get(tag), Some(&want), "{tag} vs metrics.csv {column}");
    }
    assert!(
        !tb.contains_key("losses/policy_loss"),
        "no PPO tags in a DQN run"
    );
    let eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("eval.json")).expect("eval")).expect("json");
    assert_eq!(eval["selection"], "epsilon_greedy(0.05)");
    let meta = onnx_metadata(&dir.join("model.onnx"));
    let get = |k: &str| meta.get(k).map(String::as_str);
    assert_eq!(get("cartridge.algo"), Some("dqn"));
    assert_eq!(get("cartridge.global_step"), Some("3000"));

    // 3. play runs the exported Q-network epsilon-greedily.
    let o = run(Command::new(bin("play")).arg(dir.join("model.onnx")).args([
        "--rom",
        "breakout",
        "--headless",
    ]));
    let s = summary(&o);
    assert_eq!(s["algo"], "dqn");
    assert_eq!(s["selection"], "epsilon_greedy(0.05)");

    // 4. Extending the finished run to 50,000 steps gives it the epsilon schedule of a
    // 50,000-step run (1.0 -> 0.01 over 10%: 5,000 steps), continued from step 3000: the row
    // at 4000 logs the epsilon of step 3999, 1 - 0.99 * 3999 / 5000 = 0.2081982, not the
    // floor the 3000-step schedule had reached. Stopped by Ctrl-C once that row is written.
    let out = interrupt_when(
        Command::new(bin("train"))
            .args(["dqn", "--resume"])
            .arg(&dir)
            .args([
                "--total-timesteps",
                "50000",
                "--eval-episodes",
                "0",
                "--threads",
                "1",
            ]),
        Duration::from_secs(180),
        || metrics(&dir).len() >= 5,
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let rows = metrics(&dir);
    let row = rows
        .iter()
        .find(|r| r[0] == "4000")
        .unwrap_or_else(|| panic!("no row at 4000: {rows:?}"));
    let eps: f64 = row[col("epsilon")].parse().expect("epsilon");
    let want = (0.01 - 1.0) / 5000.0 * 3999.0 + 1.0;
    assert!((eps - want).abs() < 1e-12, "epsilon {eps}, want {want}");
}

#[test]
fn a_replay_memory_the_machine_cannot_hold_is_refused_before_starting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    // 100M transitions x 7062 bytes = 706.2 GB: more than any test machine has.
    let o = run(Command::new(bin("train"))
        .args(["dqn", "--buffer-size", "100000000", "--out"])
        .arg(&dir));
    let err = assert_clean_failure(&o, "needs 706.20 GB for the replay memory");
    assert!(err.contains("lower --buffer-size"), "{err}");
    assert!(!dir.exists(), "nothing may be written before the check");
    let o = run(Command::new(bin("train"))
        .args(["dqn", "--tau", "1.5", "--out"])
        .arg(&dir));
    assert_clean_failure(&o, "--tau must be in (0, 1]");
}
