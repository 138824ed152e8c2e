//! PPO (Schulman et al. 2017, "Proximal Policy Optimization Algorithms") for Atari from pixels,
//! following CleanRL's `ppo_atari.py` (vwxyzjn/cleanrl at fe8d8a0), which reproduces OpenAI
//! baselines' `ppo2` Atari settings (the paper's Table 5). Read top to bottom:
//!
//! 1. [`args`]: the flags and their defaults, validated into a [`PpoConfig`];
//! 2. [`network`]: the Nature CNN actor-critic (`--policy lstm`: the CNN-LSTM one);
//! 3. [`storage`]: one rollout, `[T, N]` per quantity;
//! 4. [`rollout`]: `num_steps` steps of every environment;
//! 5. [`gae`]: generalized advantage estimation (Schulman et al. 2016);
//! 6. [`losses`]: clipped surrogate, value loss, entropy;
//! 7. [`update`]: epochs of shuffled minibatches, gradient clipping, Adam;
//! 8. [`train`] (below): the loop that anneals, rolls out, updates, logs and checkpoints.
//!
//! `--bench` ([`bench`]) runs the same iterations beside the loop, timing their phases.
//!
//! Deliberate differences from `ppo_atari.py`:
//! - A truncated step (ALE's 108,000-frame limit) that is not also a termination gets
//!   `gamma * V(final observation)` added to its reward, as SB3 does; CleanRL treats it as a
//!   termination. ([`rollout::bootstraps`])
//! - The environments are Cartridge's own ALE binding and wrappers (NoopReset, MaxAndSkip,
//!   EpisodicLife, FireReset, WarpFrame, ClipReward, FrameStack) with the same semantics as
//!   CleanRL's gym wrappers, stepped by worker threads instead of gym's `SyncVectorEnv`.
//! - libtorch is reseeded at the start of every iteration from `(seed, iteration)`, so a
//!   resumed run samples as an uninterrupted one would from that iteration on.
//! - Adam is written out (`crate::adam`, PyTorch's single-tensor algorithm) so its moments
//!   are checkpointed.
//!
//! `--policy lstm` follows CleanRL's `ppo_atari_lstm.py` (fe8d8a0) instead, whose arguments
//! and loop are `ppo_atari.py`'s except for the recurrent policy: the network
//! ([`network::ActorCritic`] with [`cartridge_export::Policy::Lstm`]: the trunk on the newest
//! frame, `nn.LSTM(512, 128)`, the heads on its output), the LSTM state carried through the
//! rollout and zeroed where an episode starts ([`rollout`]), and minibatches of whole
//! environments' sequences re-run from the rollout's initial state ([`update::minibatches`]).
//! The same deliberate differences apply. The exported `model.onnx` is not evaluated at the
//! end: `play`'s session cannot step a recurrent model yet.

pub mod args;
pub mod bench;
pub mod gae;
pub mod losses;
pub mod network;
pub mod rollout;
pub mod storage;
pub mod update;

use std::path::Path;
use std::time::Instant;

use cartridge_export::Algo;
use cartridge_infer::rom::{Rom, RomSearch};
use tch::Device;

use crate::adam::Adam;
use crate::checkpoint::{self, RunState, Snapshot};
use crate::logger::{MetricsRow, RunLog};
use crate::run::{
    bench_json, check_actions, finish, make_envs, metadata, setup_torch, start, Outcome, Saver,
    Start,
};
use crate::seeds::RunSeeds;
use crate::vecenv::{Episode, VecEnv};
use crate::Result;

pub use args::{PpoArgs, PpoConfig};
pub use bench::BenchReport;
pub use network::ActorCritic;
pub use rollout::{rollout, Timings};
pub use storage::Storage;
pub use update::{update, UpdateStats};

/// What a PPO iteration reads and changes.
#[derive(Debug)]
pub struct Learner {
    /// The validated arguments.
    pub cfg: PpoConfig,
    /// The actor-critic.
    pub model: ActorCritic,
    /// Its optimizer.
    pub adam: Adam,
    /// The rollout buffer.
    pub storage: Storage,
    /// The training environments.
    pub envs: VecEnv,
    /// The run's seeds.
    pub seeds: RunSeeds,
    /// The training device.
    pub device: Device,
}

/// What one iteration produced.
#[derive(Debug)]
pub struct Iteration {
    /// Games that ended during the rollout.
    pub games: Vec<Episode>,
    /// Losses and diagnostics of the update.
    pub stats: UpdateStats,
    /// Seconds per phase.
    pub timings: Timings,
    /// Wall seconds of the whole iteration.
    pub seconds: f64,
}

impl Learner {
    /// Iteration `iteration` (counted from 1): reseed libtorch, anneal the learning rate and
    /// (with `--anneal-clip`) the clip coefficient, roll out, then GAE + update.
    pub fn iteration(&mut self, iteration: u64) -> Result<Iteration> {
        let a = &self.cfg.args;
        tch::manual_seed(self.seeds.torch(iteration) as i64);
        let frac = self.cfg.frac(iteration);
        self.adam.lr = if a.anneal_lr {
            frac * a.learning_rate
        } else {
            a.learning_rate
        };
        let clip = if a.anneal_clip {
            frac * a.clip_coef
        } else {
            a.clip_coef
        };
        let started = Instant::now();
        let mut timings = Timings::default();
        let (games, next_value) = rollout(
            &self.model,
            &mut self.envs,
            &mut self.storage,
            a.gamma as f32,
            &mut timings,
        )?;
        let t_update = Instant::now();
        let stats = update(
            &self.model,
            &mut self.adam,
            &self.storage,
            &next_value,
            &self.cfg,
            clip,
            self.device,
        )?;
        timings.update_s = t_update.elapsed().as_secs_f64();
        Ok(Iteration {
            games,
            stats,
            timings,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Runs `train ppo` with these arguments: a new run, or `--resume`.
pub fn train(args: &PpoArgs) -> Result<Outcome> {
    let Start {
        args: args_used,
        out,
        loaded,
        mut state,
    } = start(args)?;
    let cfg = PpoConfig::from_args(&args_used)?;
    let run = cfg.args.run.clone();
    let choice = setup_torch(&run)?;
    let device = choice.device;
    let rom = RomSearch::default().resolve(&run.rom)?;
    let num_envs = cfg.args.num_envs;
    let (envs, actions, env_threads) = make_envs(&rom, &run, num_envs, state.resumes)?;

    let mut model = ActorCritic::with_policy(cfg.args.policy, device, actions.len(), run.seed)?;
    let mut adam = Adam::new(&model.params(), cfg.args.learning_rate, cfg.args.adam_eps);
    if let Some(l) = &loaded {
        check_actions(l, &rom, &actions)?;
        checkpoint::restore_adam(&mut adam, l, model.arch())?;
        model.load(&l.model.tensors)?;
    }
    let mut learner = Learner {
        storage: Storage::new(cfg.args.num_steps, num_envs, device),
        seeds: RunSeeds {
            seed: run.seed,
            resume: state.resumes,
        },
        cfg,
        model,
        adam,
        envs,
        device,
    };
    let first = state.iterations + 1;
    if run.bench {
        let report = bench::run(&mut learner, first, env_threads)?;
        return Ok(Outcome::Bench(bench_json(&report)?));
    }

    let (batch_size, num_iterations) = (learner.cfg.batch_size, learner.cfg.num_iterations);
    let mut log = RunLog::open(
        &out,
        num_iterations * batch_size as u64,
        loaded.as_ref().map(|l| l.state.global_step),
    )?;
    log.println(format!(
        "train ppo: {} on {device:?} ({}), {num_envs} envs on {env_threads} threads, \
         {num_iterations} iterations of {batch_size} steps{}",
        rom.game,
        choice.reason,
        if state.global_step > 0 {
            format!(", resuming at step {}", state.global_step)
        } else {
            String::new()
        }
    ));
    let mut saver = Saver::new(&state, run.save_every);
    let title = format!("PPO {} (seed {})", rom.game, run.seed);
    for iteration in first..=num_iterations {
        let it = learner.iteration(iteration)?;
        state.global_step += batch_size as u64;
        state.iterations = iteration;
        state.episodes += it.games.len() as u64;
        log.games(state.global_step, &it.games)?;
        log.row(MetricsRow {
            global_step: state.global_step,
            pg_loss: Some(it.stats.pg_loss),
            v_loss: Some(it.stats.v_loss),
            entropy: Some(it.stats.entropy),
            approx_kl: Some(it.stats.approx_kl),
            clipfrac: Some(it.stats.clipfrac),
            explained_variance: Some(it.stats.explained_variance),
            learning_rate: learner.adam.lr,
            sps: batch_size as f64 / it.seconds,
            ..MetricsRow::default()
        })?;
        if let Some(o) = saver.tick(&mut state, &out, &log, &title, |st| {
            save(&out, &learner.model, &learner.adam, st, &rom, &actions)
        })? {
            return Ok(o);
        }
    }

    saver.at_end(&mut state, loaded.is_some(), |st| {
        save(&out, &learner.model, &learner.adam, st, &rom, &actions)
    })?;
    log.plot(&title)?;
    log.finish();
    let ckpt = cartridge_export::Checkpoint {
        meta: metadata(Algo::Ppo, &rom, &actions, &state, run.seed)?
            .with_policy(learner.model.policy()),
        tensors: learner.model.tensors()?,
    };
    finish(out, &rom, &run, &ckpt, state.global_step)
}

fn save(
    out: &Path,
    model: &ActorCritic,
    adam: &Adam,
    state: &RunState<PpoArgs>,
    rom: &Rom,
    actions: &[i32],
) -> Result<()> {
    let snap = Snapshot {
        arch: model.arch(),
        model: cartridge_export::Checkpoint {
            meta: metadata(Algo::Ppo, rom, actions, state, state.args.run.seed)?
                .with_policy(model.policy()),
            tensors: model.tensors()?,
        },
        adam,
        target: None,
        replay: None,
    };
    checkpoint::save(out, &snap, state)?;
    Ok(())
}
