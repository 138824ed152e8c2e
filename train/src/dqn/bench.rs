//! `train dqn --bench`: fill the replay memory with random actions (timed), then time training.

use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::agent::{collect, learn_due, DqnAgent};
use super::memory::peak_rss;
use super::replay::{bytes_needed, ReplayMemory};
use super::DqnConfig;
use crate::seeds::RunSeeds;
use crate::vecenv::VecEnv;
use crate::Result;

/// Agent steps timed with training in `--bench`, after the memory is full.
const BENCH_TRAIN_STEPS: u64 = 4000;

/// Figures printed by `train dqn --bench`.
#[derive(Debug, Clone, Serialize)]
pub struct DqnBenchReport {
    /// Device used.
    pub device: String,
    /// The trunk's precision (`fp32`, `bf16`).
    pub precision: String,
    /// Environments.
    pub num_envs: usize,
    /// libtorch intra-op threads.
    pub torch_threads: i32,
    /// Replay capacity in transitions (filled completely before timing training).
    pub buffer_size: usize,
    /// Bytes the replay memory holds ([`bytes_needed`]).
    pub replay_bytes: u64,
    /// Agent steps per second while filling the memory (random actions, no training).
    pub fill_steps_per_s: f64,
    /// Agent steps per second while training (a gradient step every `train_frequency`).
    pub train_steps_per_s: f64,
    /// Gradient steps per second while training.
    pub gradient_steps_per_s: f64,
    /// Peak resident memory of the process (`VmHWM`), bytes.
    pub peak_rss_bytes: u64,
}

/// Fills the memory to capacity with random actions (timed), then times
/// [`BENCH_TRAIN_STEPS`] agent steps of training at epsilon 0.01, and reads the peak RSS.
pub(crate) fn bench(
    cfg: &DqnConfig,
    agent: &mut DqnAgent,
    envs: &mut VecEnv,
    replay: &mut ReplayMemory,
    device: tch::Device,
) -> Result<DqnBenchReport> {
    let a = &cfg.args;
    let n = a.num_envs as u64;
    let seeds = RunSeeds {
        seed: a.run.seed,
        resume: 0,
        rank: 0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seeds.action_sampling());
    let t0 = Instant::now();
    let mut filled = 0u64;
    while filled < a.buffer_size as u64 {
        collect(agent, envs, replay, 1.0, &mut rng)?;
        filled += n;
    }
    let fill_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    // Counted from learning_starts, so every step is past it.
    let mut steps = 0u64;
    let mut grads = 0u64;
    while steps < BENCH_TRAIN_STEPS {
        collect(agent, envs, replay, 0.01, &mut rng)?;
        let from = a.learning_starts + steps;
        grads += learn_due(agent, replay, a, from, from + n, &mut rng)?;
        steps += n;
    }
    let _ = agent.take_stats();
    let train_s = t1.elapsed().as_secs_f64();
    Ok(DqnBenchReport {
        device: format!("{device:?}"),
        precision: agent.online.precision().to_string(),
        num_envs: a.num_envs,
        torch_threads: tch::get_num_threads(),
        buffer_size: a.buffer_size,
        replay_bytes: bytes_needed(a.buffer_size),
        fill_steps_per_s: filled as f64 / fill_s,
        train_steps_per_s: steps as f64 / train_s,
        gradient_steps_per_s: grads as f64 / train_s,
        peak_rss_bytes: peak_rss().unwrap_or(0),
    })
}
