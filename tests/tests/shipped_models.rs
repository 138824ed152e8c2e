//! The shipped agents, `models/<name>.onnx` (`<game>` or `<game>-lstm`): each is a PPO policy
//! for its ROM, and the evaluation that its model card and the README quote
//! (`models/<name>.eval.jsonl`: play's two
//! JSON summary lines from `make eval`, sticky actions off then p = 0.25) is what `play`
//! reproduces on the shipped file. Play is deterministic for a seed (seeded emulator, NoopReset
//! and sampling), so the first games of a rerun must match the recorded returns exactly.

use std::path::PathBuf;
use std::process::Command;

use cartridge_tests::{bin, onnx_metadata, root, run, summary};
use serde_json::Value;

/// Games replayed per evaluation line; the full 30 are `make eval`'s job.
const REPLAYED: usize = 2;

fn model(name: &str) -> PathBuf {
    root().join("models").join(format!("{name}.onnx"))
}

fn evaluations(name: &str) -> Vec<Value> {
    let path = root().join("models").join(format!("{name}.eval.jsonl"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn returns(v: &Value) -> Vec<i64> {
    v["returns"]
        .as_array()
        .expect("returns")
        .iter()
        .map(|r| r.as_i64().expect("integer score"))
        .collect()
}

/// Checks the shipped model `name` for `game` and its evaluation; returns the sticky-off mean.
fn check_shipped(name: &str, game: &str) -> f64 {
    let meta = onnx_metadata(&model(name));
    let get = |k: &str| meta.get(k).map(String::as_str);
    assert_eq!(get("cartridge.algo"), Some("ppo"));
    assert_eq!(get("cartridge.game"), Some(game));
    let evals = evaluations(name);
    assert_eq!(evals.len(), 2, "sticky off, then sticky 0.25");
    for (eval, sticky) in evals.iter().zip([0.0, 0.25]) {
        let r = returns(eval);
        // The evaluation protocol (README): >= 30 full games, sampling from the policy.
        assert!(r.len() >= 30, "{} games", r.len());
        assert_eq!(eval["episodes"].as_u64(), Some(r.len() as u64));
        assert_eq!(eval["selection"], "sample");
        assert_eq!(eval["sticky"].as_f64(), Some(sticky));
        let mean = r.iter().sum::<i64>() as f64 / r.len() as f64;
        assert!((eval["mean_return"].as_f64().expect("mean") - mean).abs() < 1e-9);
        assert_eq!(eval["min_return"].as_i64(), r.iter().copied().min());
        assert_eq!(eval["max_return"].as_i64(), r.iter().copied().max());

        let seed = eval["seed"].as_u64().expect("seed").to_string();
        let out = run(Command::new(bin("play")).arg(model(name)).args([
            "--rom",
            game,
            "--headless",
            "--episodes",
            &REPLAYED.to_string(),
            "--seed",
            &seed,
            "--sticky",
            &sticky.to_string(),
        ]));
        assert_eq!(
            returns(&summary(&out)),
            r[..REPLAYED],
            "{name}, sticky {sticky}: play on the shipped model no longer gives the recorded games"
        );
    }
    // The model card quotes this mean; the ONNX metadata carries it too (README, ONNX model).
    let mean = evals[0]["mean_return"].as_f64().expect("mean");
    let meta_mean: f64 = get("cartridge.eval_mean_return")
        .expect("cartridge.eval_mean_return")
        .parse()
        .expect("number");
    assert!((meta_mean - mean).abs() < 1e-6, "{meta_mean} vs {mean}");
    assert_eq!(
        get("cartridge.eval_episodes"),
        Some(evals[0]["episodes"].to_string().as_str())
    );
    mean
}

#[test]
fn shipped_pong_agent_beats_the_ppo_paper() {
    // The PPO paper's Table 6 gives Pong 20.7 at 10M agent steps (CleanRL `ppo_atari`: 20.36);
    // 21 is a shutout in every game. The shipped 5.3M-step agent is above both.
    let mean = check_shipped("pong", "pong");
    assert!(mean > 20.7, "pong mean {mean}");
}

#[test]
fn shipped_pong_lstm_agent_is_recurrent_and_wins() {
    // The CNN-LSTM (train ppo --policy lstm): play carries its state; it ships because it wins
    // its games on average (random play: -19.9 ± 1.0).
    let meta = onnx_metadata(&model("pong-lstm"));
    assert_eq!(
        meta.get("cartridge.recurrent").map(String::as_str),
        Some("lstm")
    );
    assert_eq!(
        meta.get("cartridge.arch").map(String::as_str),
        Some("nature_cnn_lstm")
    );
    let mean = check_shipped("pong-lstm", "pong");
    assert!(mean > 0.0, "pong-lstm mean {mean}");
}

#[test]
fn shipped_breakout_agent_beats_the_ppo_paper() {
    // Random play scores 1.7 (Mnih et al. 2015, Extended Data Table 2); the PPO paper's
    // Table 6 gives 274.8 at 10M agent steps. The shipped 10M-step agent is above both.
    let mean = check_shipped("breakout", "breakout");
    assert!(mean > 274.8, "breakout mean {mean}");
}
