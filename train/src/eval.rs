//! Evaluation of an exported ONNX model under the evaluation protocol (README, Contracts): full games (no
//! EpisodicLife, raw scores), NoopReset starts, at most 108,000 frames, PPO sampling from the
//! policy (DQN epsilon-greedy 0.05), through the same runtime as `play` (ONNX Runtime).

use std::path::Path;

use cartridge_infer::ale::{Emulator, EmulatorConfig};
use cartridge_infer::policy::{ModelOverrides, Policy};
use cartridge_infer::preprocess::{AtariConfig, AtariEnv};
use cartridge_infer::rom::Rom;
use cartridge_infer::select::{ActionSelector, Selection};
use cartridge_infer::stats::ReturnStats;
use serde::Serialize;

use crate::seeds::EnvSeeds;
use crate::Result;

/// What `eval.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Game name.
    pub game: String,
    /// Games played.
    pub episodes: usize,
    /// Raw score of each game.
    pub returns: Vec<f64>,
    /// Mean score.
    pub mean_return: f64,
    /// Population standard deviation of the scores.
    pub std_return: f64,
    /// Lowest score.
    pub min_return: f64,
    /// Highest score.
    pub max_return: f64,
    /// Sticky-action probability used.
    pub sticky: f32,
    /// Seed of the evaluation.
    pub seed: u64,
    /// How actions were chosen.
    pub selection: String,
    /// The protocol in words.
    pub protocol: String,
}

/// Plays `episodes` full games of `model` on `rom`.
pub fn evaluate(
    model: &Path,
    rom: &Rom,
    episodes: u32,
    seed: u64,
    sticky: f32,
) -> Result<EvalReport> {
    let mut policy = Policy::load(model, 1, &ModelOverrides::default())?;
    let seeds = EnvSeeds::split(seed);
    let emu = Emulator::new(rom, EmulatorConfig::seeded(seeds.emulator, sticky))?;
    policy.check_against(rom, emu.minimal_action_set())?;
    let selection = Selection::default_for(policy.info().algo);
    let mut selector = ActionSelector::new(selection, seeds.selector);
    let mut env = AtariEnv::new(emu, AtariConfig::default(), seeds.noop_reset);
    let mut returns = Vec::new();
    for _ in 0..episodes {
        env.reset();
        loop {
            let d = policy.decide(env.obs())?;
            if env.step(selector.select(&d.scores)).game_over {
                break;
            }
        }
        returns.push(env.episode_return() as f64);
    }
    let stats = ReturnStats::of(&returns);
    Ok(EvalReport {
        game: rom.game.clone(),
        episodes: returns.len(),
        mean_return: stats.mean,
        std_return: stats.std,
        min_return: stats.min,
        max_return: stats.max,
        returns,
        sticky,
        seed,
        selection: format!("{selection:?}"),
        protocol: "full games, NoopReset (1..=30 no-ops), max 108000 frames, frame skip 4, \
                   ONNX Runtime on the exported model"
            .into(),
    })
}
