//! DQN arguments, named and defaulted as CleanRL's `dqn_atari.py`, and the validated
//! configuration derived from them.

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::config::{AlgoArgs, RunArgs};
use crate::{Error, Result};

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
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct DqnCli {
        #[command(flatten)]
        dqn: DqnArgs,
    }

    /// `train dqn` arguments parsed from `extra` (for tests across the crate).
    pub(crate) fn parse_dqn(extra: &[&str]) -> DqnArgs {
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
}
