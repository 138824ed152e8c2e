//! PPO arguments, named and defaulted as CleanRL's `ppo_atari.py` (which follows baselines'
//! `ppo2` Atari settings and the PPO paper's Table 5), and the validated configuration derived
//! from them.
//!
//! `--policy lstm` selects CleanRL's `ppo_atari_lstm.py` instead (its network, its rollout state
//! and its whole-sequence minibatches); that file's `Args` are `ppo_atari.py`'s, default for
//! default (fe8d8a0), so every other flag means and defaults the same for both policies.

use cartridge_export::Policy;
use clap::{ArgAction, Args};
use serde::{Deserialize, Serialize};

use crate::config::{AlgoArgs, RunArgs};
use crate::{Error, Result};

/// `train ppo` arguments as parsed.
#[derive(Debug, Clone, PartialEq, Args, Serialize, Deserialize)]
pub struct PpoArgs {
    /// Shared arguments.
    #[command(flatten)]
    #[serde(flatten)]
    pub run: RunArgs,
    /// Policy network: `cnn`, the Nature CNN on 4 stacked frames (CleanRL ppo_atari.py), or
    /// `lstm`, the Nature CNN on the newest frame, then an LSTM of 128 units, whose state the
    /// rollout carries and zeroes at episode starts, trained on minibatches of whole
    /// environments' sequences (CleanRL ppo_atari_lstm.py; --num-envs must then be a multiple
    /// of --num-minibatches). A learning argument: kept by --resume.
    #[arg(long, default_value_t = Policy::Cnn)]
    #[serde(default, with = "policy_name")]
    pub policy: Policy,
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
        if a.policy == Policy::Lstm && a.num_envs % a.num_minibatches != 0 {
            return bad(format!(
                "--policy lstm trains on minibatches of whole environments' sequences \
                 (ppo_atari_lstm.py: num_envs / num_minibatches environments each): --num-envs {} \
                 must be a multiple of --num-minibatches {}",
                a.num_envs, a.num_minibatches
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

/// `policy` in `state.json` and the checkpoint's `args`: `"cnn"` or `"lstm"`; runs saved before
/// the flag existed have none and are CNN runs (`#[serde(default)]`).
mod policy_name {
    use cartridge_export::Policy;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(p: &Policy, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ppo: PpoArgs,
    }

    /// `PpoArgs` from the flags `extra` (the binary name is added).
    pub(crate) fn parse(extra: &[&str]) -> PpoArgs {
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

    #[test]
    fn policy_flag_is_saved_and_old_runs_without_it_are_cnn_runs() {
        assert_eq!(parse(&[]).policy, Policy::Cnn);
        let lstm = parse(&["--policy", "lstm"]);
        assert_eq!(lstm.policy, Policy::Lstm);
        let json = serde_json::to_value(&lstm).expect("json");
        assert_eq!(json["policy"], "lstm");
        let back: PpoArgs = serde_json::from_value(json).expect("back");
        assert_eq!(back, lstm);
        // runs/breakout-ppo's state.json args, written before --policy existed (and before
        // --env-groups): they must load, as a CNN run.
        let old = r#"{"rom": "breakout", "out": "runs/breakout-ppo", "resume": null, "seed": 1,
            "device": "auto", "threads": 2, "env_threads": 2, "save_every": 200000,
            "eval_episodes": 10, "sticky": 0.0, "bench": false, "total_timesteps": 10000000,
            "learning_rate": 0.00025, "num_envs": 8, "num_steps": 128, "anneal_lr": true,
            "gamma": 0.99, "gae_lambda": 0.95, "num_minibatches": 4, "update_epochs": 4,
            "norm_adv": true, "clip_coef": 0.1, "anneal_clip": false, "clip_vloss": true,
            "ent_coef": 0.01, "vf_coef": 0.5, "max_grad_norm": 0.5, "target_kl": null,
            "adam_eps": 0.00001}"#;
        let a: PpoArgs = serde_json::from_str(old).expect("old args");
        assert_eq!(a.policy, Policy::Cnn);
        assert!(
            serde_json::from_str::<PpoArgs>(&old.replace('}', r#", "policy": "gru"}"#)).is_err()
        );
    }

    #[test]
    fn lstm_needs_whole_environments_per_minibatch() {
        // ppo_atari_lstm.py asserts num_envs % num_minibatches == 0.
        let e = PpoConfig::from_args(&parse(&["--policy", "lstm", "--num-envs", "6"]))
            .expect_err("6 envs into 4 minibatches");
        assert!(
            e.to_string()
                .contains("must be a multiple of --num-minibatches 4"),
            "{e}"
        );
        // The CNN splits steps, not environments: 6 x 128 into 4 is fine.
        PpoConfig::from_args(&parse(&["--num-envs", "6"])).expect("cnn");
        PpoConfig::from_args(&parse(&["--policy", "lstm", "--num-envs", "8"])).expect("lstm");
    }
}
