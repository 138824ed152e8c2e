//! `train ppo` end to end on the real Breakout ROM, on the CPU: a short run that Ctrl-C
//! interrupts (it must save and exit 0), a resume that finishes it (checkpoint, metrics.csv,
//! episodes.jsonl, TensorBoard events, curve.png, model.onnx, eval.json), `play` on the
//! exported model, and bad inputs refused cleanly.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cartridge_tests::{
    as_f32, assert_clean_failure, bin, event_files, interrupt_when, metrics_columns, onnx_metadata,
    run, summary, tensorboard_scalars, texts,
};

fn metrics_rows(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("metrics.csv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect()
}

fn train_args(dir: &Path) -> Vec<String> {
    [
        "ppo",
        "--rom",
        "breakout",
        "--total-timesteps",
        "4096",
        "--num-envs",
        "2",
        "--num-steps",
        "128",
        "--save-every",
        "1024",
        "--eval-episodes",
        "1",
        "--threads",
        "2",
        "--out",
    ]
    .iter()
    .map(ToString::to_string)
    .chain([dir.display().to_string()])
    .collect()
}

#[test]
fn ctrl_c_saves_then_resume_finishes_exports_and_plays() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");

    // 1. Interrupt after a few iterations: it finishes the iteration, saves, exits 0.
    let out = interrupt_when(
        Command::new(bin("train")).args(train_args(&dir)),
        Duration::from_secs(120),
        || metrics_rows(&dir).len() >= 3,
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "Ctrl-C must exit 0\n{stdout}\n{stderr}"
    );
    let s: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("line")).expect("json");
    assert_eq!(s["interrupted"], true);
    let step = s["global_step"].as_u64().expect("step");
    assert!(
        (768..4096).contains(&step) && step % 256 == 0,
        "interrupted at {step}"
    );
    let latest = std::fs::read_to_string(dir.join("checkpoints/latest")).expect("latest");
    assert_eq!(latest, format!("step-{step:012}"));
    let ckpt = dir.join("checkpoints").join(&latest);
    for f in ["model.safetensors", "optimizer.safetensors", "state.json"] {
        assert!(ckpt.join(f).is_file(), "{f} missing");
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ckpt.join("state.json")).expect("state"))
            .expect("json");
    assert_eq!(
        state["iterations"].as_u64(),
        Some(step / 256),
        "256 steps per iteration"
    );
    assert_eq!(state["gradient_steps"].as_u64(), Some(0), "a DQN counter");
    assert!(
        !dir.join("model.onnx").exists(),
        "an interrupted run exports nothing"
    );
    // The checkpoint is the contract's format (README, Checkpoint): export converts it.
    let onnx = tmp.path().join("mid.onnx");
    let o = run(Command::new(bin("export"))
        .arg("--onnx")
        .arg(ckpt.join("model.safetensors"))
        .arg("-o")
        .arg(&onnx));
    assert!(o.status.success(), "{:?}", texts(&o));

    // 2. Resume: continues at the saved step and finishes the schedule.
    let o = run(Command::new(bin("train"))
        .args(["ppo", "--resume"])
        .arg(&dir)
        .args(["--eval-episodes", "3"]));
    let (stdout, stderr) = texts(&o);
    assert!(o.status.success(), "resume failed\n{stdout}\n{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("line")).expect("json");
    assert_eq!(s["global_step"], 4096);
    assert_eq!(s["interrupted"], false);
    assert_eq!(s["eval_episodes"], 3);
    let rows = metrics_rows(&dir);
    assert_eq!(
        rows,
        (1..=16).map(|i| i * 256).collect::<Vec<u64>>(),
        "one row per iteration"
    );
    for f in ["model.onnx", "eval.json", "curve.png", "episodes.jsonl"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // TensorBoard: one event file per process (the interrupted run's and the resume's), and
    // the same values as metrics.csv and episodes.jsonl under CleanRL's and SB3's tags.
    assert_eq!(event_files(&dir), 2, "a resume appends a new event file");
    let tb = tensorboard_scalars(&dir);
    let csv = metrics_columns(&dir);
    for (tag, column) in [
        ("losses/policy_loss", "pg_loss"),
        ("losses/value_loss", "v_loss"),
        ("losses/entropy", "entropy"),
        ("losses/approx_kl", "approx_kl"),
        ("losses/clipfrac", "clipfrac"),
        ("losses/explained_variance", "explained_variance"),
        ("charts/learning_rate", "learning_rate"),
        ("charts/SPS", "sps"),
        ("rollout/ep_rew_mean", "episodic_return"),
        ("rollout/ep_len_mean", "episodic_length"),
    ] {
        let want = as_f32(&csv[column]);
        assert_eq!(tb.get(tag), Some(&want), "{tag} vs metrics.csv {column}");
    }
    assert_eq!(
        csv["pg_loss"].len(),
        16,
        "every iteration is in TensorBoard"
    );
    let games: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("episodes.jsonl"))
        .expect("episodes")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    for (tag, key) in [
        ("charts/episodic_return", "return"),
        ("charts/episodic_length", "length"),
    ] {
        let want: Vec<(i64, f64)> = games
            .iter()
            .map(|g| {
                let step = g["global_step"].as_i64().expect("step");
                (step, g[key].as_f64().expect("value"))
            })
            .collect();
        assert_eq!(
            tb.get(tag).cloned().unwrap_or_default(),
            as_f32(&want),
            "{tag}"
        );
    }
    assert!(
        !tb.contains_key("losses/td_loss"),
        "no DQN tags in a PPO run"
    );

    let png = std::fs::read(dir.join("curve.png")).expect("png");
    assert_eq!(&png[1..4], b"PNG");
    let eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("eval.json")).expect("eval")).expect("json");
    assert_eq!(eval["episodes"], 3);
    let meta = onnx_metadata(&dir.join("model.onnx"));
    let get = |k: &str| meta.get(k).map(String::as_str);
    assert_eq!(get("cartridge.global_step"), Some("4096"));
    assert_eq!(get("cartridge.eval_episodes"), Some("3"));
    assert_eq!(
        get("cartridge.eval_mean_return"),
        Some(format!("{:.3}", eval["mean_return"].as_f64().expect("mean")).as_str())
    );

    // `train plot` redraws the curve from metrics.csv.
    std::fs::remove_file(dir.join("curve.png")).expect("rm");
    let o = run(Command::new(bin("train")).arg("plot").arg(&dir));
    assert!(o.status.success(), "{:?}", texts(&o));
    assert_eq!(
        &std::fs::read(dir.join("curve.png")).expect("png")[1..4],
        b"PNG"
    );

    // 3. play runs the exported model, and replays eval.json's games from its seed.
    let eval_seed = eval["seed"].as_u64().expect("eval.json records its seed");
    let o = run(Command::new(bin("play"))
        .arg(dir.join("model.onnx"))
        .args([
            "--rom",
            "breakout",
            "--headless",
            "--episodes",
            "3",
            "--seed",
        ])
        .arg(eval_seed.to_string()));
    let s = summary(&o);
    let scores = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .expect("returns")
            .iter()
            .map(|r| r.as_f64().expect("number"))
            .collect()
    };
    assert_eq!(
        scores(&s["returns"]),
        scores(&eval["returns"]),
        "play --seed {eval_seed} must replay eval.json's games"
    );
    assert_eq!(
        s["selection"], eval["selection"],
        "one spelling of the selection"
    );
    assert_eq!(eval["selection"], "sample");

    // 4. Extending the finished run: flags a resume cannot change are refused by name, a
    // total that does not extend it is refused, a larger total continues it with the
    // learning-rate schedule of a 6144-step run: 2.5e-4 * (1 - (i - 1) / 24) at iteration i.
    let resume = |extra: &[&str]| {
        run(Command::new(bin("train"))
            .args(["ppo", "--resume"])
            .arg(&dir)
            .args(extra))
    };
    let o = resume(&["--total-timesteps", "6144", "--learning-rate", "1e-3"]);
    assert_clean_failure(&o, "--learning-rate cannot be given with --resume");
    let o = resume(&["--num-envs", "4"]);
    assert_clean_failure(&o, "--num-envs cannot be given with --resume");
    let o = resume(&["--total-timesteps", "4096"]);
    assert_clean_failure(&o, "does not extend the run: it is at agent step 4096");
    let o = resume(&["--total-timesteps", "6144", "--eval-episodes", "0"]);
    let (stdout, stderr) = texts(&o);
    assert!(o.status.success(), "extension failed\n{stdout}\n{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("line")).expect("json");
    assert_eq!(s["global_step"], 6144);
    let csv = std::fs::read_to_string(dir.join("metrics.csv")).expect("metrics");
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).expect("column");
    let (step_col, lr_col) = (col("global_step"), col("learning_rate"));
    let lrs: Vec<(u64, f64)> = lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (
                f[step_col].parse().expect("step"),
                f[lr_col].parse().expect("lr"),
            )
        })
        .collect();
    assert_eq!(lrs.len(), 24, "one row per iteration of the extended run");
    for (step, lr) in &lrs[16..] {
        let i = step / 256;
        let want = 2.5e-4 * (1.0 - (i - 1) as f64 / 24.0);
        assert!(
            (lr - want).abs() < 1e-12,
            "iteration {i}: lr {lr}, want {want}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("checkpoints/latest")).expect("latest"),
        "step-000000006144"
    );

    // 5. A second run into the same folder is refused; a corrupt checkpoint is refused.
    let o = run(Command::new(bin("train")).args(train_args(&dir)));
    assert_clean_failure(&o, "already holds a run");
    let latest = std::fs::read_to_string(dir.join("checkpoints/latest")).expect("latest");
    std::fs::write(
        dir.join("checkpoints")
            .join(latest)
            .join("model.safetensors"),
        b"garbage",
    )
    .expect("write");
    let o = run(Command::new(bin("train"))
        .args(["ppo", "--resume"])
        .arg(&dir));
    assert_clean_failure(&o, "cannot resume from");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let o = run(Command::new(bin("train"))
        .args(["ppo", "--num-envs", "3", "--num-steps", "5", "--out"])
        .arg(tmp.path()));
    assert_clean_failure(&o, "must split evenly into --num-minibatches 4");
    let o = run(Command::new(bin("train")).args(["ppo", "--total-timesteps", "1000"]));
    assert_clean_failure(&o, "--out RUN_DIR is required");
    let o = run(Command::new(bin("train"))
        .args(["ppo", "--resume"])
        .arg(tmp.path()));
    assert_clean_failure(&o, "no checkpoint pointer");
    if !std::path::Path::new("/dev/nvidia0").exists() {
        // No GPU on this machine: --device cuda is refused before anything is written.
        let out = tmp.path().join("cuda-run");
        let o = run(Command::new(bin("train"))
            .args(["ppo", "--device", "cuda", "--out"])
            .arg(&out));
        assert_clean_failure(&o, "--device cuda, but libtorch sees no CUDA device");
        assert!(!out.exists(), "a refused run must not create its folder");
    }
}

/// `train ppo --policy lstm` (CleanRL ppo_atari_lstm.py) end to end on Pong: the checkpoint is
/// the CNN-LSTM network (`nature_cnn_lstm`, frame stack 1, the recurrent keys), a resume
/// continues it and refuses to change the policy, the exported model takes `obs`, `h`, `c`, the
/// final evaluation plays it, and `play` replays that evaluation game for game.
#[test]
fn lstm_policy_trains_resumes_and_exports_a_recurrent_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("run");
    let first = run(Command::new(bin("train"))
        .args([
            "ppo",
            "--policy",
            "lstm",
            "--rom",
            "pong",
            "--total-timesteps",
            "1024",
            "--num-envs",
            "4",
            "--num-steps",
            "64",
            "--threads",
            "1",
            "--eval-episodes",
            "1",
            "--out",
        ])
        .arg(&dir));
    let (stdout, stderr) = texts(&first);
    assert!(first.status.success(), "{stdout}\n{stderr}");
    let latest = std::fs::read_to_string(dir.join("checkpoints/latest")).expect("latest");
    assert_eq!(latest, "step-000000001024");
    let ckpt = cartridge_export::Checkpoint::read(
        dir.join("checkpoints")
            .join(&latest)
            .join("model.safetensors"),
    )
    .expect("checkpoint");
    assert_eq!(ckpt.meta.arch, "nature_cnn_lstm");
    assert_eq!(ckpt.meta.frame_stack, 1);
    assert_eq!(ckpt.tensors["network.0.weight"].shape, [32, 1, 8, 8]);
    assert_eq!(ckpt.tensors["lstm.weight_hh_l0"].shape, [512, 128]);
    let args: serde_json::Value = serde_json::from_str(&ckpt.meta.args).expect("args");
    assert_eq!(args["policy"], "lstm");

    // The policy is a learning argument: a resume keeps it and refuses to change it.
    let o = run(Command::new(bin("train"))
        .args(["ppo", "--resume"])
        .arg(&dir)
        .args(["--policy", "cnn"]));
    assert_clean_failure(&o, "--policy cannot be given with --resume");
    let o = run(Command::new(bin("train"))
        .args(["ppo", "--resume"])
        .arg(&dir)
        .args(["--total-timesteps", "2048", "--eval-episodes", "1"]));
    let (stdout, stderr) = texts(&o);
    assert!(o.status.success(), "resume failed\n{stdout}\n{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("line")).expect("json");
    assert_eq!(s["global_step"], 2048);
    assert_eq!(s["eval_episodes"], 1);
    let eval: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("eval.json")).expect("eval.json"))
            .expect("eval json");
    assert_eq!(eval["episodes"], 1);
    let resumed = cartridge_export::Checkpoint::read(
        dir.join("checkpoints/step-000000002048/model.safetensors"),
    )
    .expect("checkpoint");
    assert_eq!(resumed.meta.arch, "nature_cnn_lstm");
    assert_ne!(
        resumed.tensors["lstm.weight_ih_l0"].data, ckpt.tensors["lstm.weight_ih_l0"].data,
        "the resumed run trained the LSTM"
    );

    let onnx = dir.join("model.onnx");
    let meta = onnx_metadata(&onnx);
    assert_eq!(meta["cartridge.arch"], "nature_cnn_lstm");
    assert_eq!(meta["cartridge.recurrent"], "lstm");
    cartridge_infer::runtime::init_runtime().expect("ONNX Runtime");
    let env = cartridge_infer::runtime::environment().expect("environment");
    let session = ort::session::Session::builder(env)
        .expect("builder")
        .commit_from_file(&onnx)
        .expect("ONNX Runtime loads model.onnx");
    let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
    assert_eq!(inputs, ["obs", "h", "c"]);
    let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
    assert_eq!(outputs, ["logits", "value", "h_out", "c_out"]);

    // `play` plays the trained model, and its seed replays the evaluation's game.
    let seed = eval["seed"].as_u64().expect("seed").to_string();
    let o = run(Command::new(bin("play")).arg(&onnx).args([
        "--rom",
        "pong",
        "--headless",
        "--episodes",
        "1",
        "--seed",
        &seed,
    ]));
    let played = summary(&o);
    let as_f64 = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .expect("returns")
            .iter()
            .map(|r| r.as_f64().expect("number"))
            .collect()
    };
    assert_eq!(as_f64(&played["returns"]), as_f64(&eval["returns"]));
}

/// `train plot RUN --compare OTHER` draws both runs' returns on one chart (RUN's in the first
/// colour, blue; OTHER's in the second, red), and refuses labels that do not match the runs.
#[test]
fn plot_compare_draws_every_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let header = "global_step,episodic_return,episodic_length,pg_loss,v_loss,entropy,approx_kl,\
                  clipfrac,explained_variance,td_loss,q_values,epsilon,learning_rate,sps";
    for (name, slope) in [("a", 1.0), ("b", -1.0)] {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let rows: String = (1..=50)
            .map(|i| {
                format!(
                    "{},{},100,,,,,,,,,,0.00025,100\n",
                    i * 1024,
                    slope * i as f64
                )
            })
            .collect();
        std::fs::write(dir.join("metrics.csv"), format!("{header}\n{rows}")).expect("csv");
    }
    let png = tmp.path().join("cmp.png");
    let o = run(Command::new(bin("train"))
        .arg("plot")
        .arg(tmp.path().join("a"))
        .arg("--compare")
        .arg(tmp.path().join("b"))
        .args(["--labels", "rising,falling", "--out"])
        .arg(&png));
    assert!(o.status.success(), "{:?}", texts(&o));
    let img = image::open(&png).expect("png").to_rgb8();
    let count = |c: [u8; 3]| img.pixels().filter(|p| p.0 == c).count();
    let (blue, red) = (count([0, 0, 255]), count([255, 0, 0]));
    assert!(blue > 200 && red > 200, "blue {blue}, red {red} pixels");

    let o = run(Command::new(bin("train"))
        .arg("plot")
        .arg(tmp.path().join("a"))
        .arg("--compare")
        .arg(tmp.path().join("b"))
        .args(["--labels", "only-one"]));
    assert_clean_failure(&o, "--labels has 1 labels for 2 runs");
}
