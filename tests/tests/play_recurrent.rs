//! `play` with a recurrent (CNN-LSTM) model: the runtime feeds it the newest frame of the
//! 4-stack, carries `h` and `c` from one decision to the next, zeroes them at each game start
//! and each lost life, and refuses state inputs it cannot carry.

use std::path::{Path, PathBuf};
use std::process::Command;

use cartridge_export::{Algo, Checkpoint, Policy as Net};
use cartridge_infer::ale::{Emulator, EmulatorConfig};
use cartridge_infer::policy::{ModelOverrides, OnnxPolicy};
use cartridge_infer::preprocess::{AtariConfig, AtariEnv};
use cartridge_infer::seed::{stream, Stream};
use cartridge_infer::select::{ActionSelector, Selection};
use cartridge_infer::session::{Session, SessionConfig, Unobserved};
use cartridge_tests::{
    assert_clean_failure, bin, random_checkpoint_with, reference, run, summary, texts, venv_python,
};
use ndarray::{s, Array2, Array4};
use rand::{Rng, SeedableRng};

/// A random-init CNN-LSTM PPO checkpoint whose decisions depend on its state: random LSTM
/// and head biases (random_init's are zero) and actor weights scaled by `actor_gain` (the
/// init's 0.01 gain makes logits nearly uniform, so a wrong state would rarely change an
/// action).
fn lstm_checkpoint(game: &str, seed: u64, actor_gain: f32) -> Checkpoint {
    let mut ckpt = random_checkpoint_with(Algo::Ppo, Net::Lstm, game, seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    for name in [
        "lstm.bias_ih_l0",
        "lstm.bias_hh_l0",
        "actor.bias",
        "critic.bias",
    ] {
        for v in &mut ckpt.tensors.get_mut(name).expect(name).data {
            *v = rng.random_range(-0.5..0.5);
        }
    }
    for v in &mut ckpt.tensors.get_mut("actor.weight").expect("actor").data {
        *v *= actor_gain;
    }
    // Forget gates near 1 (PyTorch's gate order i, f, g, o: rows 128..256) make the state
    // remember for tens of steps, so where it is zeroed shows in later decisions.
    for v in &mut ckpt.tensors.get_mut("lstm.bias_ih_l0").expect("bias").data[128..256] {
        *v = 3.0;
    }
    ckpt
}

fn write_model(dir: &Path, ckpt: &Checkpoint, name: &str) -> PathBuf {
    let path = dir.join(name);
    cartridge_export::write_onnx(ckpt, &[], &path).expect("write onnx");
    path
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn decide_carries_h_and_c_on_the_newest_frame_and_reset_state_zeroes_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = lstm_checkpoint("breakout", 31, 1.0);
    let model = write_model(dir.path(), &ckpt, "lstm.onnx");
    let mut policy = OnnxPolicy::load(&model, 1, &ModelOverrides::default()).expect("load");
    let r = policy.info().recurrence.clone().expect("a recurrent model");
    assert_eq!((r.kind.as_str(), r.hidden_size), ("lstm", 128));
    assert_eq!(
        (r.inputs, r.outputs),
        (
            vec!["h".into(), "c".into()],
            vec!["h_out".to_string(), "c_out".into()]
        )
    );
    assert_eq!(policy.info().frame_stack, 1);
    assert!(policy
        .state()
        .iter()
        .all(|s| s.len() == 128 && s.iter().all(|&v| v == 0.0)));

    // The reference (tests/src/reference.rs) carries its own state; the runtime gets the
    // runtime's 4-frame stacks, of which only the newest frame (plane 3) may matter.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
    let zeros = || Array2::<f32>::zeros((1, 128));
    let (mut h, mut c) = (zeros(), zeros());
    let mut largest_h = 0f32;
    for step in 0..6 {
        if step == 4 {
            policy.reset_state();
            (h, c) = (zeros(), zeros());
        }
        let stack = Array4::from_shape_fn((1, 4, 84, 84), |_| rng.random::<u8>());
        let newest = stack.slice(s![.., 3..4, .., ..]).to_owned();
        let want = reference::forward_lstm(&ckpt.tensors, newest.view(), h.view(), c.view());
        let got = policy
            .decide(stack.as_slice().expect("contiguous"))
            .expect("decide");
        let d = max_abs_diff(&got.scores, want.logits.as_slice().expect("logits"));
        assert!(d < 1e-4, "step {step}: logits max |ORT - reference| = {d}");
        for (what, carried, w) in [
            ("h", &policy.state()[0], &want.h),
            ("c", &policy.state()[1], &want.c),
        ] {
            let d = max_abs_diff(carried, w.as_slice().expect("state"));
            assert!(
                d < 1e-4,
                "step {step}: carried {what} max |ORT - reference| = {d}"
            );
        }
        largest_h = want.h.iter().fold(largest_h, |m, v| m.max(v.abs()));
        (h, c) = (want.h, want.c);
    }
    assert!(
        largest_h > 0.05,
        "the state is not vanishingly small: {largest_h}"
    );
}

/// One game per entry of `(score, frames)`, played by hand with the library from `seed`'s
/// streams, zeroing the state at each game start and, when `zero_at_lost_life`, each lost life.
fn hand_games(
    model: &Path,
    game: &str,
    seed: u64,
    games: usize,
    zero_at_lost_life: bool,
) -> Vec<(i64, u64)> {
    let rom = cartridge_tests::rom(game);
    let mut policy = OnnxPolicy::load(model, 1, &ModelOverrides::default()).expect("policy");
    let emu = Emulator::new(
        &rom,
        EmulatorConfig::seeded(stream(seed, Stream::Emulator), 0.0),
    )
    .expect("emulator");
    let mut selector = ActionSelector::new(
        Selection::default_for(Algo::Ppo),
        stream(seed, Stream::Selector),
    );
    let mut env = AtariEnv::new(emu, AtariConfig::default(), stream(seed, Stream::NoopReset));
    let mut lost_lives = 0;
    let played = (0..games)
        .map(|_| {
            env.reset();
            policy.reset_state();
            loop {
                let d = policy.decide(env.obs()).expect("decide");
                let step = env.step(selector.select(&d.scores));
                if step.game_over {
                    break;
                }
                if step.terminated {
                    // EpisodicLife's end of a learning episode at a lost life: training's
                    // reset continues the game.
                    lost_lives += 1;
                    env.reset();
                    if zero_at_lost_life {
                        policy.reset_state();
                    }
                }
            }
            (env.episode_return(), env.episode_frames())
        })
        .collect();
    assert!(
        lost_lives >= 4 * games,
        "Breakout games lose 4 lives before the last: {lost_lives}"
    );
    played
}

const GAIN: f32 = 10.0;
#[test]
fn sessions_zero_the_state_at_each_game_and_each_lost_life() {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = write_model(
        dir.path(),
        &lstm_checkpoint("breakout", 5, GAIN),
        "lstm.onnx",
    );
    let policy = OnnxPolicy::load(&model, 1, &ModelOverrides::default()).expect("load");
    let mut session = Session::new(
        policy,
        &cartridge_tests::rom("breakout"),
        &SessionConfig::protocol(3, 0.0),
    )
    .expect("session");
    let games: Vec<(i64, u64)> = session
        .play(Some(2), &mut Unobserved)
        .expect("play")
        .iter()
        .map(|g| (g.score, g.frames))
        .collect();
    assert_eq!(games, hand_games(&model, "breakout", 3, 2, true));
    // The rule is visible in the games: carrying the state across lost lives plays others.
    assert_ne!(games, hand_games(&model, "breakout", 3, 2, false));

    // `play` is that session.
    let o = run(Command::new(bin("play")).arg(&model).args([
        "--rom",
        "breakout",
        "--headless",
        "--episodes",
        "2",
        "--seed",
        "3",
    ]));
    let s = summary(&o);
    let returns: Vec<i64> = s["returns"]
        .as_array()
        .expect("returns")
        .iter()
        .map(|r| r.as_i64().expect("int"))
        .collect();
    assert_eq!(returns, games.iter().map(|g| g.0).collect::<Vec<_>>());
    assert_eq!(s["frames"].as_u64(), Some(games.iter().map(|g| g.1).sum()));
    assert!(s["decision_ms_p99"].as_f64() >= s["decision_ms_p50"].as_f64());
}

/// Rewrites the `cartridge.*` metadata of the ONNX model at `src` into `dst` with Python's
/// `onnx`: `edits` are `key=value` (set) or `key=` (delete).
fn edit_metadata(src: &Path, dst: &Path, edits: &[&str]) {
    let script = r#"
import sys, onnx
m = onnx.load(sys.argv[1])
props = {p.key: p.value for p in m.metadata_props}
for e in sys.argv[3:]:
    k, v = e.split("=", 1)
    if v: props[k] = v
    else: props.pop(k)
del m.metadata_props[:]
for k, v in props.items():
    m.metadata_props.add(key=k, value=v)
onnx.save(m, sys.argv[2])
"#;
    let o = run(Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .arg(src)
        .arg(dst)
        .args(edits));
    assert!(o.status.success(), "{:?}", texts(&o));
}

#[test]
fn state_inputs_it_cannot_carry_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write_model(dir.path(), &lstm_checkpoint("pong", 2, 1.0), "lstm.onnx");
    let play = |model: &Path| {
        run(Command::new(bin("play"))
            .arg(model)
            .args(["--rom", "pong", "--headless"]))
    };
    let cases: [(&str, &[&str], &str); 4] = [
        (
            "no-recurrent-metadata",
            &["cartridge.recurrent=", "cartridge.state_inputs=", "cartridge.state_outputs=", "cartridge.hidden_size="],
            "inputs [\"obs\", \"h\", \"c\"] but no `cartridge.recurrent` metadata",
        ),
        (
            "wrong-hidden-size",
            &["cartridge.hidden_size=64"],
            "state input `h` is Float32 [1, -1, 128]; a lstm state of hidden_size 64 must be float32 [1, batch, 64]",
        ),
        (
            "unknown-state-input",
            &["cartridge.state_inputs=h,x"],
            "metadata names state input `x`, but the graph's inputs are [\"obs\", \"h\", \"c\"]",
        ),
        (
            "no-hidden-size",
            &["cartridge.hidden_size="],
            "has no `cartridge.hidden_size` metadata",
        ),
    ];
    for (name, edits, needle) in cases {
        let bad = dir.path().join(format!("{name}.onnx"));
        edit_metadata(&good, &bad, edits);
        assert_clean_failure(&play(&bad), needle);
    }
    // The untouched model plays.
    let o = run(Command::new(bin("play")).arg(&good).args([
        "--rom",
        "pong",
        "--headless",
        "--max-frames",
        "400",
    ]));
    assert_eq!(summary(&o)["episodes"], 1);
}
