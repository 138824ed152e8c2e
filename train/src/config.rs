//! PPO arguments, named and defaulted as CleanRL's `ppo_atari.py` (which follows baselines'
//! `ppo2` Atari settings and the PPO paper's Table 5), and the validated configuration derived
//! from them.

use std::path::PathBuf;

use clap::{ArgAction, Args};
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
    /// are kept; only --device, --threads, --env-threads, --eval-episodes, --save-every and
    /// --total-timesteps (to extend the run) may be given, any other flag is refused.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Seed of the experiment (environments, initial weights, sampling).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Device: auto (CUDA when present), cpu or cuda.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "cuda"])]
    pub device: String,
    /// libtorch intra-op threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Environment worker threads (default: min(num_envs, cores)).
    #[arg(long)]
    pub env_threads: Option<usize>,
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
pub const RESUME_FLAGS: [&str; 7] = [
    "resume",
    "device",
    "threads",
    "env_threads",
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
        Ok(())
    }
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

impl AlgoArgs for PpoArgs {
    fn run(&self) -> &RunArgs {
        &self.run
    }
    fn run_mut(&mut self) -> &mut RunArgs {
        &mut self.run
    }
    fn total_timesteps_mut(&mut self) -> &mut u64 {
        &mut self.total_timesteps
    }
}

/// `train ppo` arguments as parsed.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
pub struct PpoArgs {
    /// Shared arguments.
    #[command(flatten)]
    #[serde(flatten)]
    pub run: RunArgs,
    /// Total agent steps (summed over environments; 1 agent step = 4 emulated frames). With
    /// --resume: the run's new total (to extend it); the schedules become those of a run
    /// started with this total (learning rate annealed to 0 at it; epsilon falling over
    /// exploration_fraction of it), continued from their values at the saved step.
    #[arg(long, default_value_t = 10_000_000)]
    pub total_timesteps: u64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 2.5e-4)]
    pub learning_rate: f64,
    /// Parallel environments.
    #[arg(long, default_value_t = 8)]
    pub num_envs: usize,
    /// Steps per environment per rollout.
    #[arg(long, default_value_t = 128)]
    pub num_steps: usize,
    /// Anneal the learning rate linearly to 0.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub anneal_lr: bool,
    /// Discount factor.
    #[arg(long, default_value_t = 0.99)]
    pub gamma: f64,
    /// GAE lambda.
    #[arg(long, default_value_t = 0.95)]
    pub gae_lambda: f64,
    /// Minibatches per epoch.
    #[arg(long, default_value_t = 4)]
    pub num_minibatches: usize,
    /// Epochs per update.
    #[arg(long, default_value_t = 4)]
    pub update_epochs: usize,
    /// Normalize advantages per minibatch.
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub norm_adv: bool,
    /// Surrogate clipping coefficient.
    #[arg(long, default_value_t = 0.1)]
    pub clip_coef: f64,
    /// Anneal clip_coef linearly to 0 like baselines' `ppo2` Atari `cliprange` schedule.
    #[arg(long, default_value_t = false, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub anneal_clip: bool,
    /// Clip the value loss (baselines / CleanRL).
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub clip_vloss: bool,
    /// Entropy coefficient.
    #[arg(long, default_value_t = 0.01)]
    pub ent_coef: f64,
    /// Value-loss coefficient.
    #[arg(long, default_value_t = 0.5)]
    pub vf_coef: f64,
    /// Global gradient-norm clip.
    #[arg(long, default_value_t = 0.5)]
    pub max_grad_norm: f64,
    /// Stop the epochs of an update once approx_kl exceeds this (off by default).
    #[arg(long)]
    pub target_kl: Option<f64>,
    /// Adam epsilon (CleanRL / baselines: 1e-5).
    #[arg(long, default_value_t = 1e-5)]
    pub adam_eps: f64,
}

/// A validated PPO configuration with the derived sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PpoConfig {
    /// The arguments, as given (stored in checkpoints as JSON).
    pub args: PpoArgs,
    /// `num_envs * num_steps`.
    pub batch_size: usize,
    /// `batch_size / num_minibatches`.
    pub minibatch_size: usize,
    /// `total_timesteps / batch_size`.
    pub num_iterations: u64,
}

impl PpoConfig {
    /// Checks ranges and combinations and derives batch sizes.
    pub fn from_args(a: &PpoArgs) -> Result<Self> {
        let bad = |m: String| Err(Error::Config(m));
        if a.num_envs == 0 || a.num_steps == 0 {
            return bad("--num-envs and --num-steps must be at least 1".into());
        }
        if a.num_minibatches == 0 || a.update_epochs == 0 {
            return bad("--num-minibatches and --update-epochs must be at least 1".into());
        }
        let batch_size = a.num_envs * a.num_steps;
        if batch_size % a.num_minibatches != 0 {
            return bad(format!(
                "the batch (num_envs * num_steps = {batch_size}) must split evenly into \
                 --num-minibatches {}; pick a divisor of {batch_size}",
                a.num_minibatches
            ));
        }
        if a.num_minibatches > batch_size {
            return bad(format!(
                "--num-minibatches {} exceeds the batch size {batch_size}",
                a.num_minibatches
            ));
        }
        if a.total_timesteps < batch_size as u64 {
            return bad(format!(
                "--total-timesteps {} is less than one rollout (num_envs * num_steps = {batch_size})",
                a.total_timesteps
            ));
        }
        for (name, v) in [("--gamma", a.gamma), ("--gae-lambda", a.gae_lambda)] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        for (name, v) in [
            ("--learning-rate", a.learning_rate),
            ("--clip-coef", a.clip_coef),
            ("--max-grad-norm", a.max_grad_norm),
            ("--adam-eps", a.adam_eps),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return bad(format!("{name} must be positive, got {v}"));
            }
        }
        if a.ent_coef < 0.0 || a.vf_coef < 0.0 {
            return bad("--ent-coef and --vf-coef must not be negative".into());
        }
        if a.target_kl.is_some_and(|k| k <= 0.0) {
            return bad("--target-kl must be positive when set".into());
        }
        a.run.validate()?;
        Ok(Self {
            args: a.clone(),
            batch_size,
            minibatch_size: batch_size / a.num_minibatches,
            num_iterations: a.total_timesteps / batch_size as u64,
        })
    }

    /// The fraction `1 - (iteration - 1) / num_iterations` CleanRL anneals by (iteration
    /// counts from 1).
    pub fn frac(&self, iteration: u64) -> f64 {
        1.0 - (iteration.saturating_sub(1)) as f64 / self.num_iterations as f64
    }
}

/// `train dqn` arguments as parsed: named and defaulted as CleanRL's `dqn_atari.py` (which
/// follows Mnih et al. 2015 except for Adam at 1e-4 and the MSE loss), plus `--loss`,
/// `--max-grad-norm` (SB3's DQN clips at 10) and `--double` (van Hasselt et al. 2016).
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
pub struct DqnArgs {
    /// Shared arguments.
    #[command(flatten)]
    #[serde(flatten)]
    pub run: RunArgs,
    /// Total agent steps (summed over environments; 1 agent step = 4 emulated frames). With
    /// --resume: the run's new total (to extend it); the schedules become those of a run
    /// started with this total (learning rate annealed to 0 at it; epsilon falling over
    /// exploration_fraction of it), continued from their values at the saved step.
    #[arg(long, default_value_t = 10_000_000)]
    pub total_timesteps: u64,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub learning_rate: f64,
    /// Parallel environments (each adds its own ring to the replay memory).
    #[arg(long, default_value_t = 1)]
    pub num_envs: usize,
    /// Replay memory capacity in transitions (all environments together).
    #[arg(long, default_value_t = 1_000_000)]
    pub buffer_size: usize,
    /// Discount factor.
    #[arg(long, default_value_t = 0.99)]
    pub gamma: f64,
    /// Target-network update rate: 1.0 copies the online network (Nature DQN).
    #[arg(long, default_value_t = 1.0)]
    pub tau: f64,
    /// Agent steps between target-network updates.
    #[arg(long, default_value_t = 1000)]
    pub target_network_frequency: u64,
    /// Transitions per gradient step.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Starting epsilon of the epsilon-greedy exploration.
    #[arg(long, default_value_t = 1.0)]
    pub start_e: f64,
    /// Final epsilon.
    #[arg(long, default_value_t = 0.01)]
    pub end_e: f64,
    /// Fraction of total_timesteps over which epsilon falls linearly from start_e to end_e.
    #[arg(long, default_value_t = 0.10)]
    pub exploration_fraction: f64,
    /// Agent steps of pure exploration before the first gradient step.
    #[arg(long, default_value_t = 80_000)]
    pub learning_starts: u64,
    /// Agent steps per gradient step.
    #[arg(long, default_value_t = 4)]
    pub train_frequency: u64,
    /// TD loss: huber (smooth L1 with delta 1: Nature DQN, SB3) or mse (CleanRL).
    #[arg(long, default_value = "huber", value_parser = ["huber", "mse"])]
    pub loss: String,
    /// Global gradient-norm clip (off by default as in CleanRL; SB3 uses 10).
    #[arg(long)]
    pub max_grad_norm: Option<f64>,
    /// Double DQN targets: the online network picks the next action, the target network
    /// values it.
    #[arg(long)]
    pub double: bool,
    /// Adam epsilon (PyTorch's default, which CleanRL keeps).
    #[arg(long, default_value_t = 1e-8)]
    pub adam_eps: f64,
    /// Also checkpoint the replay memory (`replay.bin`, as large as the memory itself), so a
    /// resumed run continues with it instead of refilling.
    #[arg(long)]
    pub save_replay: bool,
}

impl AlgoArgs for DqnArgs {
    fn run(&self) -> &RunArgs {
        &self.run
    }
    fn run_mut(&mut self) -> &mut RunArgs {
        &mut self.run
    }
    fn total_timesteps_mut(&mut self) -> &mut u64 {
        &mut self.total_timesteps
    }
}

/// A validated DQN configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct DqnConfig {
    /// The arguments, as given (stored in checkpoints as JSON).
    pub args: DqnArgs,
    /// Huber loss (else MSE).
    pub huber: bool,
    /// Agent steps over which epsilon falls: `exploration_fraction * total_timesteps`.
    pub exploration_steps: u64,
}

impl DqnConfig {
    /// Checks ranges and combinations.
    pub fn from_args(a: &DqnArgs) -> Result<Self> {
        let bad = |m: String| Err(Error::Config(m));
        a.run.validate()?;
        if a.num_envs == 0 || a.batch_size == 0 {
            return bad("--num-envs and --batch-size must be at least 1".into());
        }
        if a.train_frequency == 0 || a.target_network_frequency == 0 {
            return bad(
                "--train-frequency and --target-network-frequency must be at least 1".into(),
            );
        }
        if a.buffer_size < 8 * a.num_envs {
            return bad(format!(
                "--buffer-size {} is too small for {} envs (at least 8 per env)",
                a.buffer_size, a.num_envs
            ));
        }
        if a.total_timesteps < a.num_envs as u64 {
            return bad(format!(
                "--total-timesteps {} is less than one step of {} envs",
                a.total_timesteps, a.num_envs
            ));
        }
        for (name, v) in [
            ("--gamma", a.gamma),
            ("--start-e", a.start_e),
            ("--end-e", a.end_e),
            ("--exploration-fraction", a.exploration_fraction),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("{name} must be in [0, 1], got {v}"));
            }
        }
        if !(a.tau > 0.0 && a.tau <= 1.0) {
            return bad(format!("--tau must be in (0, 1], got {}", a.tau));
        }
        for (name, v) in [
            ("--learning-rate", a.learning_rate),
            ("--adam-eps", a.adam_eps),
            ("--max-grad-norm", a.max_grad_norm.unwrap_or(1.0)),
        ] {
            if !(v > 0.0 && v.is_finite()) {
                return bad(format!("{name} must be positive, got {v}"));
            }
        }
        Ok(Self {
            args: a.clone(),
            huber: a.loss == "huber",
            exploration_steps: (a.exploration_fraction * a.total_timesteps as f64) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ppo: PpoArgs,
    }

    #[derive(Parser)]
    struct DqnCli {
        #[command(flatten)]
        dqn: DqnArgs,
    }

    fn parse_dqn(extra: &[&str]) -> DqnArgs {
        let mut v = vec!["train"];
        v.extend_from_slice(extra);
        DqnCli::parse_from(v).dqn
    }

    #[test]
    fn dqn_defaults_are_cleanrl_dqn_atari() {
        // dqn_atari.py: 10M steps, buffer 1M, learning_starts 80k, train_frequency 4,
        // batch 32, gamma 0.99, target every 1000 (tau 1.0), Adam 1e-4, 1.0 -> 0.01 over 10%.
        let c = DqnConfig::from_args(&parse_dqn(&[])).expect("valid");
        let a = &c.args;
        assert_eq!(
            (
                a.total_timesteps,
                a.buffer_size,
                a.learning_starts,
                a.train_frequency
            ),
            (10_000_000, 1_000_000, 80_000, 4)
        );
        assert_eq!(
            (a.batch_size, a.target_network_frequency, a.num_envs),
            (32, 1000, 1)
        );
        assert_eq!((a.gamma, a.tau, a.learning_rate), (0.99, 1.0, 1e-4));
        assert_eq!(
            (a.start_e, a.end_e, a.exploration_fraction),
            (1.0, 0.01, 0.10)
        );
        assert_eq!(c.exploration_steps, 1_000_000);
        assert!(c.huber && !a.double && a.max_grad_norm.is_none() && !a.save_replay);
    }

    #[test]
    fn bad_dqn_arguments_are_rejected() {
        let e = DqnConfig::from_args(&parse_dqn(&["--tau", "0"])).expect_err("tau");
        assert!(e.to_string().contains("--tau must be in (0, 1]"), "{e}");
        let e = DqnConfig::from_args(&parse_dqn(&["--buffer-size", "10", "--num-envs", "2"]))
            .expect_err("tiny buffer");
        assert!(e.to_string().contains("at least 8 per env"), "{e}");
        let e = DqnConfig::from_args(&parse_dqn(&["--end-e", "2"])).expect_err("eps");
        assert!(e.to_string().contains("--end-e must be in [0, 1]"), "{e}");
        let e = DqnConfig::from_args(&parse_dqn(&["--max-grad-norm=-1"])).expect_err("clip");
        assert!(
            e.to_string().contains("--max-grad-norm must be positive"),
            "{e}"
        );
    }

    fn parse(extra: &[&str]) -> PpoArgs {
        let mut v = vec!["train"];
        v.extend_from_slice(extra);
        Cli::parse_from(v).ppo
    }

    #[test]
    fn cleanrl_defaults_derive_cleanrl_sizes() {
        let c = PpoConfig::from_args(&parse(&[])).expect("valid");
        // ppo_atari.py: 8 envs x 128 steps = 1024; 4 minibatches of 256; 10M / 1024 = 9765.
        assert_eq!(
            (c.batch_size, c.minibatch_size, c.num_iterations),
            (1024, 256, 9765)
        );
        let a = &c.args;
        assert_eq!(
            (a.learning_rate, a.gamma, a.gae_lambda, a.clip_coef),
            (2.5e-4, 0.99, 0.95, 0.1)
        );
        assert_eq!((a.ent_coef, a.vf_coef, a.max_grad_norm), (0.01, 0.5, 0.5));
        assert!(a.anneal_lr && a.norm_adv && a.clip_vloss && !a.anneal_clip);
        assert_eq!(a.target_kl, None);
        assert!((c.frac(1) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn bool_flags_take_values() {
        let a = parse(&["--anneal-lr", "false", "--norm-adv=false", "--anneal-clip"]);
        assert!(!a.anneal_lr && !a.norm_adv && a.anneal_clip);
    }

    #[test]
    fn bad_combinations_are_rejected() {
        let e = PpoConfig::from_args(&parse(&["--num-envs", "3", "--num-steps", "5"]))
            .expect_err("15 does not split into 4");
        assert!(e.to_string().contains("must split evenly"), "{e}");
        let e = PpoConfig::from_args(&parse(&["--total-timesteps", "100"])).expect_err("too few");
        assert!(e.to_string().contains("less than one rollout"), "{e}");
        let e = PpoConfig::from_args(&parse(&["--gamma", "1.5"])).expect_err("gamma");
        assert!(e.to_string().contains("--gamma must be in [0, 1]"), "{e}");
        let e = PpoConfig::from_args(&parse(&["--clip-coef", "0"])).expect_err("clip");
        assert!(
            e.to_string().contains("--clip-coef must be positive"),
            "{e}"
        );
    }
}
