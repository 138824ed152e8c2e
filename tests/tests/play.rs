//! `play` end to end on the real Breakout and Pong ROMs with real ONNX Runtime, and every bad
//! input the issue names: each a clear message, a non-zero exit, never a panic or abort.

use std::process::Command;

use cartridge_export::Algo;
use cartridge_tests::{assert_clean_failure, bin, random_model, run, summary};

fn play_one_episode(game: &str, algo: Algo, max_score: f64, min_score: f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path(), algo, game, 3);
    let out = run(Command::new(bin("play")).arg(&model).args([
        "--rom",
        game,
        "--headless",
        "--episodes",
        "1",
        "--seed",
        "5",
    ]));
    let s = summary(&out);
    assert_eq!(s["game"], game);
    assert_eq!(s["episodes"], 1);
    assert_eq!(s["algo"], algo.as_str());
    let returns = s["returns"].as_array().expect("returns");
    assert_eq!(returns.len(), 1);
    let score = returns[0].as_f64().expect("score");
    assert!(
        (min_score..=max_score).contains(&score),
        "{game} score {score}"
    );
    assert_eq!(s["mean_return"].as_f64(), Some(score));
    assert_eq!(s["min_return"].as_f64(), Some(score));
    assert_eq!(s["max_return"].as_f64(), Some(score));
    assert_eq!(s["std_return"].as_f64(), Some(0.0));
    // A full game takes hundreds of agent steps; the frame count is a multiple-of-1 total.
    let frames = s["frames"].as_u64().expect("frames");
    assert!(frames > 100 && frames <= 108_000, "frames {frames}");
    for key in [
        "wall_s",
        "emulator_fps",
        "decision_ms_p50",
        "decision_ms_p99",
    ] {
        let v = s[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing: {s}"));
        assert!(v > 0.0, "{key} = {v}");
    }
    assert!(s["decision_ms_p99"].as_f64() >= s["decision_ms_p50"].as_f64());
    // One line per episode before the JSON line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout
            .lines()
            .next()
            .is_some_and(|l| l.starts_with("episode 1: score ")),
        "{stdout}"
    );
}

#[test]
fn random_ppo_plays_breakout() {
    // Breakout scores are 0..=864 (two walls of 432 points).
    play_one_episode("breakout", Algo::Ppo, 864.0, 0.0);
}

#[test]
fn random_dqn_plays_pong() {
    // A Pong game ends at 21 points for either side: scores -21..=21.
    play_one_episode("pong", Algo::Dqn, 21.0, -21.0);
}

#[test]
fn same_seed_same_game() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path(), Algo::Ppo, "breakout", 4);
    let go = |seed: &str| {
        let o = run(Command::new(bin("play")).arg(&model).args([
            "--rom",
            "breakout",
            "--headless",
            "--episodes",
            "2",
            "--seed",
            seed,
        ]));
        let s = summary(&o);
        (s["returns"].clone(), s["frames"].clone())
    };
    let nine = go("9");
    assert_eq!(nine, go("9"));
    // --seed must reach the emulator, NoopReset and sampling: another seed, another game.
    assert_ne!(nine, go("10"), "seeds 9 and 10 played identical games");
}

/// Plays `episodes` games of `model` on `game` in this process with the library (the seed
/// split into `play`'s three streams, play's default preprocessing, headless); returns each
/// game's score and checks that the steps' `raw_reward`s add up to it.
fn library_replay(model: &std::path::Path, game: &str, seed: u64, episodes: usize) -> Vec<i64> {
    use cartridge_infer::ale::{Emulator, EmulatorConfig};
    use cartridge_infer::policy::{ModelOverrides, OnnxPolicy};
    use cartridge_infer::preprocess::{AtariConfig, AtariEnv};
    use cartridge_infer::seed::{stream, Stream};
    use cartridge_infer::select::{ActionSelector, Selection};

    let rom = cartridge_tests::rom(game);
    let mut policy = OnnxPolicy::load(model, 1, &ModelOverrides::default()).expect("policy");
    let emu = Emulator::new(
        &rom,
        EmulatorConfig::seeded(stream(seed, Stream::Emulator), 0.0),
    )
    .expect("emulator");
    let selection = Selection::default_for(policy.info().algo);
    let mut selector = ActionSelector::new(selection, stream(seed, Stream::Selector));
    let mut env = AtariEnv::new(emu, AtariConfig::default(), stream(seed, Stream::NoopReset));
    (0..episodes)
        .map(|_| {
            env.reset();
            let mut raw_sum = 0i64;
            loop {
                let d = policy.decide(env.obs()).expect("decide");
                let step = env.step(selector.select(&d.scores));
                raw_sum += step.raw_reward as i64;
                if step.game_over {
                    break;
                }
                if step.terminated {
                    // A lost life: training's reset continues the game (its frames' points
                    // count in the game's return too).
                    let before = env.episode_return();
                    env.reset();
                    raw_sum += env.episode_return() - before;
                }
            }
            assert_eq!(
                raw_sum,
                env.episode_return(),
                "raw_reward misses part of the score"
            );
            env.episode_return()
        })
        .collect()
}

#[test]
fn play_scores_are_the_library_replay_of_its_seed() {
    // The returns play prints are the games the library plays from the same seed streams,
    // not merely scores in the game's legal range.
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path(), Algo::Ppo, "breakout", 4);
    let o = run(Command::new(bin("play")).arg(&model).args([
        "--rom",
        "breakout",
        "--headless",
        "--episodes",
        "2",
        "--seed",
        "12",
    ]));
    let played: Vec<i64> = summary(&o)["returns"]
        .as_array()
        .expect("returns")
        .iter()
        .map(|r| r.as_i64().expect("integer"))
        .collect();
    assert_eq!(played, library_replay(&model, "breakout", 12, 2));
}

#[test]
fn ort_dylib_path_to_a_missing_file_is_refused() {
    // An explicit library setting is honoured or refused, never replaced by .venv's library.
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path(), Algo::Ppo, "breakout", 1);
    let missing = dir.path().join("no-such-libonnxruntime.so");
    let o = run(Command::new(bin("play"))
        .env("ORT_DYLIB_PATH", &missing)
        .arg(&model)
        .args(["--rom", "breakout", "--headless", "--episodes", "1"]));
    let err = assert_clean_failure(&o, "ORT_DYLIB_PATH is set to");
    assert!(err.contains("which is not a file"), "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");
}

#[test]
fn record_writes_an_animated_gif() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path(), Algo::Ppo, "breakout", 5);
    let gif = dir.path().join("out.gif");
    let o = run(Command::new(bin("play"))
        .arg(&model)
        .args([
            "--rom",
            "breakout",
            "--headless",
            "--episodes",
            "1",
            "--max-frames",
            "400",
        ])
        .arg("--record")
        .arg(&gif));
    let s = summary(&o);
    let bytes = std::fs::read(&gif).expect("gif written");
    assert_eq!(&bytes[..6], b"GIF89a");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&gif).expect("meta").permissions().mode();
        assert_eq!(
            mode & 0o044,
            0o044,
            "group/other cannot read the GIF: {mode:o}"
        );
    }
    // 400 frames at frame skip 4: the reset frame plus <= 100 steps (plus noops/fire).
    let frames = image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&bytes))
        .map(|d| image::AnimationDecoder::into_frames(d).count())
        .expect("decodable gif");
    assert!(frames > 50, "only {frames} GIF frames");
    // The limit is checked after each 4-frame step (plus play's automatic FIRE after a lost
    // life, 4 more), and NoopReset's single-frame no-ops shift the steps' phase: the game
    // stops less than 8 frames past 400.
    let played = s["frames"].as_u64().expect("frames");
    assert!((400..408).contains(&played), "{played} frames");
    // No temporary file left beside it.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn missing_rom_file_is_a_clear_error() {
    let o = run(Command::new(bin("play")).args([
        "model.onnx",
        "--rom",
        "/nonexistent/breakout.bin",
        "--headless",
    ]));
    assert_clean_failure(&o, "not found");
}

#[test]
fn no_roms_installed_says_where_it_looked_and_how_to_install() {
    // A copy of the binary outside the project, with no python3 on PATH: no ROMs anywhere.
    let dir = tempfile::tempdir().expect("tempdir");
    let play = dir.path().join("play");
    std::fs::copy(bin("play"), &play).expect("copy play");
    let o = run(Command::new(&play)
        .current_dir(dir.path())
        .env("PATH", dir.path())
        .env_remove("ALE_ROM_DIR")
        .args(["model.onnx", "--rom", "breakout", "--headless"]));
    let err = assert_clean_failure(&o, "ROM for game 'breakout' not found; searched:");
    assert!(err.contains("pip install ale-py==0.12.1"), "{err}");
}

#[test]
fn random_bytes_rom_is_refused_before_ale_sees_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path(), Algo::Ppo, "breakout", 1);
    let rom = dir.path().join("breakout.bin");
    let bytes: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(&rom, bytes).expect("write");
    let o = run(Command::new(bin("play"))
        .arg(&model)
        .arg("--rom")
        .arg(&rom)
        .arg("--headless"));
    let err = assert_clean_failure(&o, "is not a usable Atari ROM");
    assert!(err.contains("--allow-unknown-rom"), "{err}");
}

#[test]
fn truncated_onnx_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path(), Algo::Ppo, "breakout", 1);
    let bytes = std::fs::read(&model).expect("read");
    std::fs::write(&model, &bytes[..bytes.len() / 2]).expect("truncate");
    let o = run(Command::new(bin("play"))
        .arg(&model)
        .args(["--rom", "breakout", "--headless"]));
    assert_clean_failure(&o, "cannot be used");
}

#[test]
fn action_count_mismatch_is_refused() {
    // A Breakout-labelled model with Pong's 6 actions: Breakout's minimal action set has 4.
    let dir = tempfile::tempdir().expect("tempdir");
    let rom = cartridge_tests::rom("breakout");
    let mut meta =
        cartridge_export::Metadata::new(Algo::Ppo, "breakout", rom.md5, vec![0, 1, 3, 4, 11, 12]);
    meta.seed = 1;
    let ckpt = cartridge_export::Checkpoint::random(meta).expect("ckpt");
    let model = dir.path().join("six.onnx");
    cartridge_export::write_onnx(&ckpt, &[], &model).expect("write");
    let o = run(Command::new(bin("play"))
        .arg(&model)
        .args(["--rom", "breakout", "--headless"]));
    let err = assert_clean_failure(
        &o,
        "the model has 6 actions but breakout's minimal action set has 4",
    );
    assert!(err.contains("does not match"), "{err}");
}

#[test]
fn pong_model_on_breakout_rom_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = random_model(dir.path(), Algo::Ppo, "pong", 1);
    let o = run(Command::new(bin("play"))
        .arg(&model)
        .args(["--rom", "breakout", "--headless"]));
    assert_clean_failure(
        &o,
        "the model was trained on 'pong', not 'breakout'; play it with `--rom pong`",
    );
}

#[test]
fn no_onnx_runtime_names_every_place_searched() {
    // A copy of the binary outside the project, no python3 on PATH, no ORT_DYLIB_PATH; the ROM
    // is given by path so only the runtime is missing.
    let dir = tempfile::tempdir().expect("tempdir");
    let play = dir.path().join("play");
    std::fs::copy(bin("play"), &play).expect("copy play");
    let model = random_model(dir.path(), Algo::Ppo, "breakout", 1);
    let rom = cartridge_tests::rom("breakout").path;
    let o = run(Command::new(&play)
        .current_dir(dir.path())
        .env("PATH", dir.path())
        .env_remove("ORT_DYLIB_PATH")
        .arg(&model)
        .arg("--rom")
        .arg(&rom)
        .arg("--headless"));
    let err = assert_clean_failure(
        &o,
        "no ONNX Runtime library (libonnxruntime.so) found; searched:",
    );
    assert!(err.contains("$ORT_DYLIB_PATH (unset)"), "{err}");
    assert!(err.contains("/usr/lib"), "{err}");
    assert!(err.contains("pip install onnxruntime==1.31.1"), "{err}");
}

#[test]
fn bad_flags_are_clear_errors() {
    let o = run(Command::new(bin("play")).args([
        "m.onnx",
        "--rom",
        "breakout",
        "--sticky",
        "1.5",
        "--headless",
    ]));
    assert_clean_failure(&o, "--sticky must be in [0, 1)");
    let o = run(Command::new(bin("play")).args([
        "m.onnx",
        "--rom",
        "breakout",
        "--scale",
        "3",
        "--headless",
    ]));
    assert_clean_failure(&o, "--scale 3 is not supported");
}

/// A CleanRL-style PyTorch export: f32 input taking raw 0..=255 pixels (the graph divides by
/// 255), outputs `output0`, no metadata. Built with the `onnx` Python package.
fn foreign_model(path: &std::path::Path, n_actions: usize) {
    let script = r#"
import sys, numpy as np, onnx
from onnx import helper as h, numpy_helper as nh, TensorProto as T
rng = np.random.default_rng(0)
A = int(sys.argv[2])
def w(name, shape, scale): return nh.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
inits = [w("c0", [32, 4, 8, 8], 0.05), w("c1", [64, 32, 4, 4], 0.05), w("c2", [64, 64, 3, 3], 0.05),
         w("f", [512, 3136], 0.02), w("a", [A, 512], 0.01), nh.from_array(np.array(255, np.float32), "k")]
nodes = [h.make_node("Div", ["input", "k"], ["x"]),
         h.make_node("Conv", ["x", "c0"], ["y0"], strides=[4, 4]), h.make_node("Relu", ["y0"], ["r0"]),
         h.make_node("Conv", ["r0", "c1"], ["y1"], strides=[2, 2]), h.make_node("Relu", ["y1"], ["r1"]),
         h.make_node("Conv", ["r1", "c2"], ["y2"]), h.make_node("Relu", ["y2"], ["r2"]),
         h.make_node("Flatten", ["r2"], ["fl"]), h.make_node("Gemm", ["fl", "f"], ["hd"], transB=1),
         h.make_node("Relu", ["hd"], ["hr"]), h.make_node("Gemm", ["hr", "a"], ["output0"], transB=1)]
g = h.make_graph(nodes, "cleanrl", [h.make_tensor_value_info("input", T.FLOAT, ["N", 4, 84, 84])],
                 [h.make_tensor_value_info("output0", T.FLOAT, ["N", A])], inits)
onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)], ir_version=8), sys.argv[1])
"#;
    let o = run(Command::new(cartridge_tests::venv_python())
        .arg("-c")
        .arg(script)
        .arg(path)
        .arg(n_actions.to_string()));
    assert!(o.status.success(), "{:?}", cartridge_tests::texts(&o));
}

#[test]
fn foreign_f32_model_plays_with_explicit_algo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("cleanrl.onnx");
    foreign_model(&model, 4);
    let o = run(Command::new(bin("play"))
        .arg(&model)
        .args(["--rom", "breakout", "--headless"]));
    assert_clean_failure(&o, "pass --algo ppo|dqn");
    let o = run(Command::new(bin("play")).arg(&model).args([
        "--rom",
        "breakout",
        "--headless",
        "--algo",
        "dqn",
        "--max-frames",
        "2000",
    ]));
    let s = summary(&o);
    assert_eq!(s["algo"], "dqn");
    assert_eq!(s["selection"], "epsilon_greedy(0.05)");
    let frames = s["frames"].as_u64().expect("frames");
    assert!(frames > 0 && frames <= 2000, "frames {frames}");
    // The action count is still checked against the ROM without metadata.
    let six = dir.path().join("six.onnx");
    foreign_model(&six, 6);
    let o = run(Command::new(bin("play")).arg(&six).args([
        "--rom",
        "breakout",
        "--headless",
        "--algo",
        "ppo",
    ]));
    assert_clean_failure(
        &o,
        "the model has 6 actions but breakout's minimal action set has 4",
    );
}
