//! `export --from sb3|cleanrl` on real foreign models: archives saved by Stable-Baselines3
//! itself on its own Atari environments, and state dicts saved by `torch.save` from CleanRL's
//! network layouts (`tests/foreign_models.py make`). After conversion, ONNX Runtime's outputs
//! equal PyTorch's on the same real frames, `play` plays the models with no flags, SB3's own
//! `predict(deterministic=True)` picks `play --greedy`'s actions on the observations `play`
//! made, and everything that does not fit is refused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cartridge_infer::policy::{ModelOverrides, OnnxPolicy};
use cartridge_infer::preprocess::AtariEnv;
use cartridge_infer::select::{argmax, Selection};
use cartridge_infer::session::{Observer, Session, SessionConfig};
use cartridge_tests::{
    assert_clean_failure, bin, onnx_metadata, rom, run, summary, texts, venv_python,
};
use serde_json::Value;

const OBS_LEN: usize = 4 * 84 * 84;

/// The fixtures folder, made once per test binary by SB3 and PyTorch themselves.
fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("foreign-models");
        let script = cartridge_tests::root().join("tests/foreign_models.py");
        let o = run(Command::new(venv_python())
            .arg(&script)
            .arg("make")
            .arg(&dir));
        let (out, err) = texts(&o);
        assert!(
            o.status.success(),
            "foreign_models.py make failed:\n{out}\n{err}"
        );
        dir
    })
}

fn refs() -> &'static Value {
    static REFS: OnceLock<Value> = OnceLock::new();
    REFS.get_or_init(|| {
        let text = std::fs::read_to_string(fixtures().join("refs.json")).expect("refs.json");
        serde_json::from_str(&text).expect("refs.json is JSON")
    })
}

/// Runs `export --from FORMAT FILE --rom GAME [extra] -o OUT` and returns OUT.
fn convert(format: &str, file: &str, game: &str, extra: &[&str]) -> PathBuf {
    let out = fixtures().join(format!("{file}.onnx"));
    let o = run(Command::new(bin("export"))
        .args(["--from", format])
        .arg(fixtures().join(file))
        .args(["--rom", game])
        .args(extra)
        .arg("-o")
        .arg(&out));
    let (stdout, err) = texts(&o);
    assert!(o.status.success(), "export failed: {stdout}\n{err}");
    assert!(
        stdout.starts_with(&format!("wrote {}", out.display())),
        "{stdout}"
    );
    out
}

fn export_fails(format: &str, file: &Path, game: &str, extra: &[&str], needle: &str) {
    let out = fixtures().join("refused.onnx");
    // The fixtures folder outlives a run: start without the file this call must not write.
    let _ = std::fs::remove_file(&out);
    let o = run(Command::new(bin("export"))
        .args(["--from", format])
        .arg(file)
        .args(["--rom", game])
        .args(extra)
        .arg("-o")
        .arg(&out));
    assert_clean_failure(&o, needle);
    assert!(
        !out.exists(),
        "a refused conversion wrote {}",
        out.display()
    );
}

fn observations(game: &str) -> Vec<u8> {
    let obs = std::fs::read(fixtures().join(format!("obs_{game}.u8"))).expect("observations");
    assert_eq!(obs.len() % OBS_LEN, 0);
    obs
}

/// A reference output as rows of f32.
fn reference(file: &str, output: &str) -> Vec<Vec<f32>> {
    let rows = refs()[file][output]
        .as_array()
        .unwrap_or_else(|| panic!("refs.json has no {file} {output}"));
    rows.iter()
        .map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_f64().expect("number") as f32)
                .collect()
        })
        .collect()
}

/// ONNX Runtime's named output for the batch of observations, as rows.
fn onnx_rows(model: &Path, obs: &[u8], output: &str) -> Vec<Vec<f32>> {
    let mut policy = OnnxPolicy::load(model, 1, &ModelOverrides::default()).expect("load");
    let batch = obs.len() / OBS_LEN;
    let outs = policy.forward(obs, batch).expect("forward");
    let out = outs
        .iter()
        .find(|o| o.name == output)
        .unwrap_or_else(|| panic!("no output {output}"));
    out.values
        .chunks(out.values.len() / batch)
        .map(<[f32]>::to_vec)
        .collect()
}

/// Within 1e-5 of PyTorch, relative to the value where it exceeds 1 (float32 rounding grows
/// with magnitude: the model trained on raw 0..255 pixels has values near 100).
fn assert_close(found: &[Vec<f32>], want: &[Vec<f32>], what: &str) {
    assert_eq!(found.len(), want.len(), "{what}: rows");
    let mut worst = 0f32;
    for (f, w) in found.iter().zip(want) {
        assert_eq!(f.len(), w.len(), "{what}: row length");
        for (a, b) in f.iter().zip(w) {
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
        }
    }
    assert!(
        worst <= 1e-5,
        "{what}: max |ONNX - PyTorch| / max(1, |PyTorch|) = {worst:e} > 1e-5"
    );
}

#[test]
fn sb3_models_compute_what_pytorch_computes() {
    let breakout = observations("breakout");
    for file in [
        "sb3_ppo_breakout.zip",
        "sb3_a2c_breakout.zip",
        "sb3_ppo_breakout_unnormalized.zip",
    ] {
        let model = convert("sb3", file, "breakout", &[]);
        for output in ["logits", "value"] {
            assert_close(
                &onnx_rows(&model, &breakout, output),
                &reference(file, output),
                file,
            );
        }
    }
    let model = convert("sb3", "sb3_dqn_pong.zip", "pong", &[]);
    let q = onnx_rows(&model, &observations("pong"), "q_values");
    assert_close(&q, &reference("sb3_dqn_pong.zip", "q_values"), "sb3 dqn");
}

#[test]
fn cleanrl_models_compute_what_pytorch_computes() {
    let model = convert(
        "cleanrl",
        "cleanrl_ppo_breakout.cleanrl_model",
        "breakout",
        &["--algo", "ppo"],
    );
    let obs = observations("breakout");
    for output in ["logits", "value"] {
        let want = reference("cleanrl_ppo_breakout.cleanrl_model", output);
        assert_close(&onnx_rows(&model, &obs, output), &want, "cleanrl ppo");
    }
    let model = convert(
        "cleanrl",
        "cleanrl_dqn_pong.cleanrl_model",
        "pong",
        &["--algo", "dqn"],
    );
    let want = reference("cleanrl_dqn_pong.cleanrl_model", "q_values");
    assert_close(
        &onnx_rows(&model, &observations("pong"), "q_values"),
        &want,
        "cleanrl dqn",
    );

    // The CNN-LSTM: one frame at a time, the state carried from step to step (PyTorch runs
    // the same sequence through nn.LSTM from zeros).
    let model = convert(
        "cleanrl",
        "cleanrl_lstm_pong.cleanrl_model",
        "pong",
        &["--algo", "ppo"],
    );
    let mut policy = OnnxPolicy::load(&model, 1, &ModelOverrides::default()).expect("load");
    let logits: Vec<Vec<f32>> = observations("pong")
        .chunks(OBS_LEN)
        .map(|obs| policy.decide(obs).expect("decide").scores)
        .collect();
    assert_close(
        &logits,
        &reference("cleanrl_lstm_pong.cleanrl_model", "logits"),
        "cleanrl lstm",
    );
}

#[test]
fn converted_models_describe_themselves() {
    let model = convert("sb3", "sb3_ppo_breakout.zip", "BreakoutNoFrameskip-v4", &[]);
    let meta = onnx_metadata(&model);
    let get = |k: &str| {
        meta.get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    // ale-py 0.12.1's breakout.bin and ALE's Breakout minimal set (NOOP FIRE RIGHT LEFT).
    assert_eq!(get("cartridge.algo"), "ppo");
    assert_eq!(get("cartridge.game"), "breakout");
    assert_eq!(get("cartridge.rom_md5"), "f34f08e5eb96e500e851a80be3277a56");
    assert_eq!(get("cartridge.actions"), "0,1,3,4");
    // The fixture's PPO learned for 128 steps (PPO rounds total_timesteps up to n_steps=64).
    assert_eq!(get("cartridge.global_step"), "128");
    assert_eq!(get("cartridge.source_format"), "sb3");
    assert_eq!(get("cartridge.source_file"), "sb3_ppo_breakout.zip");
    let info: Value = serde_json::from_str(get("cartridge.source_info")).expect("JSON");
    assert_eq!(info["sb3_version"], "2.9.2");
    assert_eq!(info["algo"], "PPO");
    assert_eq!(
        info["policy_class"],
        "stable_baselines3.common.policies.ActorCriticCnnPolicy"
    );
    assert!(get("cartridge.source_preprocessing").contains("same frames as Cartridge"));

    let model = convert(
        "cleanrl",
        "cleanrl_dqn_pong.cleanrl_model",
        "pong",
        &["--algo", "dqn"],
    );
    let meta = onnx_metadata(&model);
    assert_eq!(meta["cartridge.algo"], "dqn");
    assert_eq!(meta["cartridge.actions"], "0,1,3,4,11,12");
    assert_eq!(meta["cartridge.source_format"], "cleanrl");
    assert!(meta["cartridge.source_preprocessing"].contains("resize the max-pooled RGB frame"));
}

/// Every observation a session shows the policy.
#[derive(Default)]
struct Recorder {
    seen: Vec<u8>,
}

impl Observer for Recorder {
    fn observe(&mut self, env: &AtariEnv) -> cartridge_infer::Result<()> {
        self.seen.extend_from_slice(env.obs());
        Ok(())
    }
}

#[test]
fn sb3_predict_picks_plays_greedy_actions_and_play_plays_them() {
    for (file, game) in [
        ("sb3_ppo_breakout.zip", "breakout"),
        ("sb3_dqn_pong.zip", "pong"),
    ] {
        let model = convert("sb3", file, game, &[]);
        // `play` with no flags but greedy selection and a short time limit.
        let o = run(Command::new(bin("play")).arg(&model).args([
            "--rom",
            game,
            "--headless",
            "--greedy",
            "--max-frames",
            "1500",
            "--seed",
            "5",
        ]));
        let played = summary(&o);
        assert_eq!(played["episodes"], 1, "{played}");

        // The same game through play's session, recording each observation.
        let policy = OnnxPolicy::load(&model, 1, &ModelOverrides::default()).expect("load");
        let mut cfg = SessionConfig::protocol(5, 0.0);
        cfg.selection = Some(Selection::Greedy);
        cfg.env.max_episode_frames = 1500;
        let mut session = Session::new(policy, &rom(game), &cfg).expect("session");
        let mut recorder = Recorder::default();
        let games = session.play(Some(1), &mut recorder).expect("play");
        assert_eq!(
            played["returns"][0], games[0].score,
            "{file}: play and its session"
        );
        assert_eq!(
            played["frames"], games[0].frames,
            "{file}: play and its session"
        );

        // The session's greedy actions are the argmax of the converted model's scores;
        // SB3's predict(deterministic=True) on the same observations must pick them.
        let obs = &recorder.seen[..recorder.seen.len().min(200 * OBS_LEN)];
        let output = if game == "pong" { "q_values" } else { "logits" };
        let greedy: Vec<usize> = onnx_rows(&model, obs, output)
            .iter()
            .map(|r| argmax(r))
            .collect();
        let obs_file = fixtures().join(format!("{file}.session.u8"));
        std::fs::write(&obs_file, obs).expect("write observations");
        let script = cartridge_tests::root().join("tests/foreign_models.py");
        let o = run(Command::new(venv_python())
            .arg(script)
            .arg("predict")
            .arg(fixtures().join(file))
            .arg(&obs_file));
        let (out, err) = texts(&o);
        assert!(o.status.success(), "predict failed: {err}");
        let sb3: Vec<usize> = serde_json::from_str(out.trim()).expect("actions JSON");
        assert_eq!(sb3, greedy, "{file}: SB3's predict and play --greedy");
    }
}

#[test]
fn what_does_not_fit_is_refused() {
    let dir = fixtures();
    export_fails(
        "sb3",
        &dir.join("sb3_ppo_mlp_cartpole.zip"),
        "breakout",
        &[],
        "an MLP policy (MlpPolicy)",
    );
    export_fails(
        "sb3",
        &dir.join("sb3_ppo_stack3_breakout.zip"),
        "breakout",
        &[],
        "frame stack 3",
    );
    export_fails(
        "sb3",
        &dir.join("sb3_ppo_separate_breakout.zip"),
        "breakout",
        &[],
        "separate features extractors",
    );
    export_fails(
        "sb3",
        &dir.join("sb3_ppo_netarch_breakout.zip"),
        "breakout",
        &[],
        "hidden layers",
    );
    export_fails(
        "sb3",
        &dir.join("sb3_ppo_breakout.zip"),
        "pong",
        &[],
        "the model has 4 actions but pong's minimal action set has 6",
    );
    export_fails(
        "cleanrl",
        &dir.join("cleanrl_dqn_pong.cleanrl_model"),
        "breakout",
        &["--algo", "dqn"],
        "the model has 6 actions but breakout's",
    );
    export_fails(
        "cleanrl",
        &dir.join("cleanrl_ppo_breakout.cleanrl_model"),
        "breakout",
        &["--algo", "dqn"],
        "pass --algo ppo",
    );

    // A non-Atari observation space (the PPO archive with its `data` saying [8] float32).
    export_fails(
        "sb3",
        &dir.join("sb3_ppo_vector_obs.zip"),
        "breakout",
        &[],
        "is not Atari frames",
    );

    // A corrupt archive: the first half of a real one; and a CleanRL file that is not torch's.
    let src = std::fs::read(dir.join("sb3_ppo_breakout.zip")).expect("archive");
    let half = dir.join("sb3_half.zip");
    std::fs::write(&half, &src[..src.len() / 2]).expect("write");
    export_fails(
        "sb3",
        &half,
        "breakout",
        &[],
        "not a Stable-Baselines3 model archive",
    );
    export_fails(
        "cleanrl",
        &dir.join("obs_pong.u8"),
        "pong",
        &["--algo", "ppo"],
        "not a PyTorch file written by torch.save",
    );
    // A game play cannot run, and one that does not exist.
    export_fails(
        "sb3",
        &dir.join("sb3_ppo_breakout.zip"),
        "adventure",
        &[],
        "`play` cannot run adventure",
    );
    export_fails(
        "sb3",
        &dir.join("sb3_ppo_breakout.zip"),
        "tetris_3000",
        &[],
        "no game `tetris_3000`",
    );
}
