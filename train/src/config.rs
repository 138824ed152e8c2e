//! The arguments every algorithm shares ([`RunArgs`]), the flags a resume may change, and the
//! [`AlgoArgs`] trait the shared run machinery reads an algorithm's arguments through. Each
//! algorithm's own arguments are [`crate::ppo::PpoArgs`] and [`crate::dqn::DqnArgs`].

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Arguments every `train` algorithm shares: what to play, where to write, devices, threads,
/// checkpoints and evaluation.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
pub struct RunArgs {
    /// Game name or ROM path (as `play --rom`).
    #[arg(long, default_value = "breakout")]
    pub rom: String,
    /// Run folder: checkpoints, metrics.csv, episodes.jsonl, curve.png, model.onnx, eval.json.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this folder at its saved global step. The saved learning arguments
    /// are kept; only --device, --precision, --threads, --env-threads, --env-groups, --eval-episodes,
    /// --save-every and --total-timesteps (to extend the run) may be given, any other flag is
    /// refused.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Seed of the experiment (environments, initial weights, sampling).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Device: auto (CUDA when present), cpu or cuda.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "cuda"])]
    pub device: String,
    /// Arithmetic of the CNN trunk: fp32; bf16 (mixed precision: bfloat16 convolutions and
    /// products, f32 weights, gradients, optimizer, heads and losses); or auto (bf16 where the
    /// hardware has native bf16: x86 avx512_bf16 / amx_bf16, CUDA compute capability >= 8.0;
    /// fp32 elsewhere). Run-time only: checkpoints are f32 either way. With --resume, omitted:
    /// the run's last --precision.
    #[arg(long, default_value = "fp32", value_parser = ["auto", "fp32", "bf16"])]
    #[serde(default = "fp32")]
    pub precision: String,
    /// libtorch intra-op threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Environment worker threads (default: min(num_envs, cores)).
    #[arg(long)]
    pub env_threads: Option<usize>,
    /// PPO's rollout in a pipeline of this many environment groups (EnvPool's asynchronous
    /// idea): the policy acts for one group while the others step. 1 steps all environments
    /// in lock-step with one batched forward pass (CleanRL's loop). At most --env-threads;
    /// run-time only, the learning is the same.
    #[arg(long, default_value_t = 1)]
    #[serde(default = "one")]
    pub env_groups: usize,
    /// Save a checkpoint every this many agent steps (and at the end, and on Ctrl-C).
    #[arg(long, default_value_t = 500_000)]
    pub save_every: u64,
    /// Full-game evaluation episodes of the exported model at the end (0: none).
    #[arg(long, default_value_t = 10)]
    pub eval_episodes: u32,
    /// Sticky-action probability of the training environments.
    #[arg(long, default_value_t = 0.0)]
    pub sticky: f32,
    /// Benchmark: run briefly, print throughput figures as JSON, write nothing.
    #[arg(long)]
    pub bench: bool,
    /// Ids of the flags given on the command line (filled by the binary; a resume refuses
    /// the ones it cannot change). Not saved.
    #[arg(skip)]
    #[serde(skip)]
    pub given: Vec<String>,
}

/// Flags a resume takes from its command line (clap ids); every other given flag is refused.
pub const RESUME_FLAGS: [&str; 9] = [
    "resume",
    "device",
    "precision",
    "threads",
    "env_threads",
    "env_groups",
    "eval_episodes",
    "save_every",
    "total_timesteps",
];

impl RunArgs {
    /// Checks the shared ranges.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..1.0).contains(&self.sticky) {
            return Err(Error::Config(format!(
                "--sticky must be in [0, 1), got {}",
                self.sticky
            )));
        }
        if self.save_every == 0 {
            return Err(Error::Config("--save-every must be at least 1".into()));
        }
        if self.env_groups == 0 {
            return Err(Error::Config("--env-groups must be at least 1".into()));
        }
        Ok(())
    }
}

fn one() -> usize {
    1
}

fn fp32() -> String {
    "fp32".into()
}

/// Arguments of one algorithm, holding the shared [`RunArgs`].
pub trait AlgoArgs: Clone + Serialize + serde::de::DeserializeOwned {
    /// The shared arguments.
    fn run(&self) -> &RunArgs;
    /// The shared arguments, mutable (resume replaces the run-time ones).
    fn run_mut(&mut self) -> &mut RunArgs;
    /// The run's total agent steps, mutable (a resume may extend it).
    fn total_timesteps_mut(&mut self) -> &mut u64;
}
