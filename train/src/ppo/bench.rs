//! `train ppo --bench`: one warm-up iteration, then three timed ones, split by phase; under
//! MPI also every rank's throughput and the gradient all-reduce per minibatch.

use std::time::Instant;

use serde::Serialize;

use super::{Learner, Timings};
use crate::dist::Dist;
use crate::Result;

/// Iterations timed after the warm-up.
const MEASURED: u64 = 3;

/// Figures printed by `--bench`.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Device used.
    pub device: String,
    /// The trunk's precision (`fp32`, `bf16`).
    pub precision: String,
    /// Environments.
    pub num_envs: usize,
    /// Environment worker threads.
    pub env_threads: usize,
    /// Environment groups of the rollout pipeline (`--env-groups`).
    pub env_groups: usize,
    /// libtorch intra-op threads.
    pub torch_threads: i32,
    /// Iterations measured (after one warm-up iteration).
    pub iterations: u64,
    /// Agent steps per second over the measured iterations (of this rank, rank 0).
    pub steps_per_s: f64,
    /// MPI ranks (1 in a single process).
    pub ranks: usize,
    /// Each rank's agent steps per second, in rank order.
    pub rank_steps_per_s: Vec<f64>,
    /// The run's agent steps per second, all ranks together.
    pub total_steps_per_s: f64,
    /// Milliseconds per minibatch averaging the gradients across ranks (rank 0's; 0 in a
    /// single process).
    pub allreduce_ms_per_minibatch: f64,
    /// The largest `max |ratio - 1|` on an update's first minibatch over the measured
    /// iterations ([`crate::ppo::update::UpdateStats::first_ratio_drift`]).
    pub first_ratio_drift: f64,
    /// Seconds per iteration stepping environments.
    pub env_s: f64,
    /// Of `env_s`, the stepping on the critical path (per step, the longest time one thread
    /// stepped; the rest is hand-over and waiting).
    pub env_busy_s: f64,
    /// Seconds per iteration in rollout inference.
    pub inference_s: f64,
    /// Seconds per iteration in GAE + update.
    pub update_s: f64,
}

/// Runs iteration `first` as a warm-up and the next [`MEASURED`] timed; writes nothing.
pub fn run(
    learner: &mut Learner,
    first: u64,
    env_threads: usize,
    dist: &Dist,
) -> Result<BenchReport> {
    learner.iteration(first, dist)?;
    let started = Instant::now();
    let mut total = Timings::default();
    let (mut allreduce_s, mut minibatches) = (0.0, 0u32);
    let mut first_ratio_drift = 0f64;
    for iteration in first + 1..=first + MEASURED {
        let it = learner.iteration(iteration, dist)?;
        let t = it.timings;
        total.env_s += t.env_s;
        total.env_busy_s += t.env_busy_s;
        total.inference_s += t.inference_s;
        total.update_s += t.update_s;
        allreduce_s += it.stats.allreduce_s;
        minibatches += it.stats.minibatches;
        first_ratio_drift = first_ratio_drift.max(it.stats.first_ratio_drift);
    }
    let steps = MEASURED * learner.cfg.batch_size as u64;
    let steps_per_s = steps as f64 / started.elapsed().as_secs_f64();
    let rank_steps_per_s = dist.gather(steps_per_s);
    let per = |s: f64| s / MEASURED as f64;
    Ok(BenchReport {
        device: format!("{:?}", learner.device),
        precision: learner.model.precision().to_string(),
        num_envs: learner.cfg.args.num_envs,
        env_threads,
        env_groups: learner.envs.groups(),
        torch_threads: tch::get_num_threads(),
        iterations: MEASURED,
        steps_per_s,
        ranks: dist.size(),
        total_steps_per_s: rank_steps_per_s.iter().sum(),
        rank_steps_per_s,
        allreduce_ms_per_minibatch: 1e3 * allreduce_s / f64::from(minibatches.max(1)),
        first_ratio_drift,
        env_s: per(total.env_s),
        env_busy_s: per(total.env_busy_s),
        inference_s: per(total.inference_s),
        update_s: per(total.update_s),
    })
}
