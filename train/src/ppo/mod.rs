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
//! The same deliberate differences apply.
//!
//! Under `mpirun` ([`train_with`], [`crate::dist`]) the loop is CleanRL's
//! `ppo_atari_multigpu.py`: each rank rolls out its own environments and the gradients are
//! averaged across ranks before every Adam step.

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
use crate::checkpoint::{self, Loaded, RunState, Snapshot};
use crate::dist::Dist;
use crate::logger::{MetricsRow, RunLog};
use crate::run::{
    bench_json, check_actions, finish, install_handler, make_envs, metadata, record_segment,
    set_pending_save, setup_precision, setup_torch, start, Outcome, PendingSave, Saver, Start,
};
use crate::seeds::RunSeeds;
use crate::vecenv::{Episode, VecEnv};
use crate::{Error, Result};

pub use args::{PpoArgs, PpoConfig};
pub use bench::BenchReport;
pub use network::{ActorCritic, InferenceWeights};
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
    /// (with `--anneal-clip`) the clip coefficient, roll out, then GAE + update, averaging the
    /// gradients over `dist`'s ranks.
    pub fn iteration(&mut self, iteration: u64, dist: &Dist) -> Result<Iteration> {
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
            dist,
        )?;
        timings.update_s = t_update.elapsed().as_secs_f64();
        dist.check_params_agree(&self.model.params(), iteration)?;
        Ok(Iteration {
            games,
            stats,
            timings,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// Runs `train ppo` with these arguments in this single process: a new run, or `--resume`.
pub fn train(args: &PpoArgs) -> Result<Outcome> {
    train_with(args, &Dist::single())
}

/// Runs `train ppo` as one of `dist`'s ranks (all ranks run this with the same arguments).
///
/// Under MPI, as CleanRL's `ppo_atari_multigpu.py`: every rank steps its own `--num-envs`
/// environments (the run's environments `rank * num_envs ..`, so their seeds differ), starts
/// from rank 0's weights, and averages its gradients with the others' before every Adam step
/// ([`update`]); an iteration is `ranks * num_envs * num_steps` agent steps of the run, which
/// `global_step` counts. Rank 0 alone writes the run folder (logs of its own games,
/// checkpoints, `model.onnx`, the evaluation); a resume needs the same number of ranks.
pub fn train_with(args: &PpoArgs, dist: &Dist) -> Result<Outcome> {
    let Start {
        args: args_used,
        out,
        loaded,
        mut state,
    } = start(args)?;
    let ranks = dist.size() as u64;
    if loaded.is_some() && state.ranks != ranks {
        return Err(Error::Resume {
            path: out,
            reason: format!(
                "the run trains on {} MPI rank(s) and this is {ranks}: the global batch \
                 (ranks x num_envs x num_steps) is part of its learning arguments; resume it \
                 with `mpirun -np {}`{}",
                state.ranks,
                state.ranks,
                if state.ranks == 1 {
                    " or without mpirun"
                } else {
                    ""
                }
            ),
        });
    }
    state.ranks = ranks;
    let mut cfg = PpoConfig::from_args(&args_used)?;
    let global_batch = cfg.batch_size as u64 * ranks;
    cfg.num_iterations = cfg.args.total_timesteps / global_batch;
    if cfg.num_iterations == 0 {
        return Err(Error::Config(format!(
            "--total-timesteps {} is less than one iteration of {ranks} ranks x {} steps",
            cfg.args.total_timesteps, cfg.batch_size
        )));
    }
    let run = cfg.args.run.clone();
    let mut choice = setup_torch(&run)?;
    if let Device::Cuda(_) = choice.device {
        // One GPU per rank of a machine (CleanRL: `cuda:local_rank`).
        let gpus = tch::Cuda::device_count().max(1) as usize;
        choice.device = Device::Cuda(dist.local_rank() % gpus);
    }
    let device = choice.device;
    let precision = setup_precision(&run, device)?;
    let rom = RomSearch::default().resolve(&run.rom)?;
    let num_envs = cfg.args.num_envs;
    let seeds = RunSeeds {
        seed: run.seed,
        resume: state.resumes,
        rank: dist.rank() as u64,
    };
    let (envs, actions, env_threads) = make_envs(&rom, &run, num_envs, seeds)?;

    let mut model = ActorCritic::with_policy(cfg.args.policy, device, actions.len(), run.seed)?;
    model.set_precision(precision.precision);
    let mut adam = Adam::new(&model.params(), cfg.args.learning_rate, cfg.args.adam_eps);
    if let Some(l) = &loaded {
        check_actions(l, &rom, &actions)?;
        restore(&mut model, &mut adam, l)?;
    }
    dist.broadcast_params(&model.params())?;
    let mut learner = Learner {
        storage: Storage::new(cfg.args.num_steps, num_envs, device),
        seeds,
        cfg,
        model,
        adam,
        envs,
        device,
    };
    let first = state.iterations + 1;
    if run.bench {
        let report = bench::run(&mut learner, first, env_threads, dist)?;
        return Ok(Outcome::Bench(bench_json(&report)?));
    }

    record_segment(&mut state, device, precision.precision, ranks);
    install_handler(dist.interrupt());
    let num_iterations = learner.cfg.num_iterations;
    let mut log = match dist.is_root() {
        true => Some(RunLog::open(
            &out,
            num_iterations * global_batch,
            loaded.as_ref().map(|l| l.state.global_step),
        )?),
        false => None,
    };
    if let Some(log) = &log {
        log.println(format!(
            "train ppo: {} on {device:?} ({}), {} ({}), {num_envs} envs on {env_threads} \
             threads{}, {num_iterations} iterations of {global_batch} steps{}",
            rom.game,
            choice.reason,
            precision.precision,
            precision.reason,
            if ranks > 1 {
                format!(" on each of {ranks} MPI ranks")
            } else {
                String::new()
            },
            if state.global_step > 0 {
                format!(", resuming at step {}", state.global_step)
            } else {
                String::new()
            }
        ));
    }
    let mut saver = Saver::new(&state, run.save_every);
    let title = format!("PPO {} (seed {})", rom.game, run.seed);
    for iteration in first..=num_iterations {
        let it = learner.iteration(iteration, dist)?;
        state.global_step += global_batch;
        state.iterations = iteration;
        state.episodes += dist.gather(it.games.len() as f64).iter().sum::<f64>() as u64;
        let Some(log) = log.as_mut() else {
            continue;
        };
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
            sps: global_batch as f64 / it.seconds,
            ..MetricsRow::default()
        })?;
        if ranks > 1 {
            set_pending_save(pending_save(
                &out, &learner, &state, &saver, &rom, &actions,
            )?);
        }
        if let Some(o) = saver.tick(&mut state, &out, log, &title, |st| {
            save(&out, &learner.model, &learner.adam, st, &rom, &actions)
        })? {
            return Ok(o);
        }
    }
    let Some(log) = log else {
        return Ok(Outcome::Trained {
            out,
            global_step: state.global_step,
            interrupted: false,
            eval: None,
        });
    };

    saver.at_end(&mut state, loaded.is_some(), |st| {
        save(&out, &learner.model, &learner.adam, st, &rom, &actions)
    })?;
    log.plot(&title)?;
    log.finish();
    let ckpt = checkpoint_of(&learner.model, &state, &rom, &actions)?;
    finish(out, &rom, &run, &ckpt, state.global_step)
}

/// Under MPI: the checkpoint of the iteration just completed, copied to the host, for the
/// interrupt handler to write (see [`crate::run::install_handler`]).
fn pending_save(
    out: &Path,
    learner: &Learner,
    state: &RunState<PpoArgs>,
    saver: &Saver,
    rom: &Rom,
    actions: &[i32],
) -> Result<PendingSave> {
    let mut state = state.clone();
    state.train_seconds = saver.train_seconds();
    let model = checkpoint_of(&learner.model, &state, rom, actions)?;
    let arch = learner.model.arch();
    let adam = learner.adam.host_copy();
    let out = out.to_path_buf();
    Ok(Box::new(move || {
        let snap = Snapshot {
            arch,
            model,
            adam: &adam,
            target: None,
            replay: None,
        };
        checkpoint::save(&out, &snap, &state)?;
        Ok(format!(
            "interrupted: saved a checkpoint at step {}; continue with `mpirun -np {} train ppo \
             --resume {}`",
            state.global_step,
            state.ranks,
            out.display()
        ))
    }))
}

/// The network at `state` as a checkpoint (weights and metadata): what every save writes as
/// `model.safetensors` and what the end of a run exports.
fn checkpoint_of(
    model: &ActorCritic,
    state: &RunState<PpoArgs>,
    rom: &Rom,
    actions: &[i32],
) -> Result<cartridge_export::Checkpoint> {
    Ok(cartridge_export::Checkpoint {
        meta: metadata(Algo::Ppo, rom, actions, state, state.args.run.seed)?
            .with_policy(model.policy()),
        tensors: model.tensors()?,
    })
}

/// Puts a checkpoint's network and Adam state (moments and step) into `model` and `adam`,
/// so a resumed run continues from exactly what [`save`] wrote.
fn restore(model: &mut ActorCritic, adam: &mut Adam, l: &Loaded<PpoArgs>) -> Result<()> {
    model.load(&l.model.tensors)?;
    checkpoint::restore_adam(adam, l, model.arch())
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
        model: checkpoint_of(model, state, rom, actions)?,
        adam,
        target: None,
        replay: None,
    };
    checkpoint::save(out, &snap, state)?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::adam::zero_grad;
    use crate::ppo::args::tests::parse;
    use cartridge_infer::rom::RomSearch;
    use tch::{Kind, Tensor};

    /// The bits of every element of `ts`, tensor by tensor.
    pub(crate) fn bits(ts: &[Tensor]) -> Vec<Vec<u32>> {
        ts.iter()
            .map(|t| {
                Vec::<f32>::try_from(t.detach().contiguous().view(-1))
                    .expect("f32")
                    .into_iter()
                    .map(f32::to_bits)
                    .collect()
            })
            .collect()
    }

    #[test]
    fn resume_restores_weights_adam_counters_and_schedule_bit_for_bit() {
        tch::manual_seed(4);
        let tmp = tempfile::tempdir().expect("tmp");
        let rom = RomSearch::default().resolve("breakout").expect("rom");
        let actions = [0, 1, 3, 4];
        let args = parse(&["--total-timesteps", "10240", "--num-envs", "8"]);
        let model = ActorCritic::new(Device::Cpu, 4, 1).expect("model");
        let params = model.params();
        let mut adam = Adam::new(&params, 2.5e-4, 1e-5);
        // Three Adam steps, so the weights, moments and step all differ from a fresh start.
        for _ in 0..3 {
            zero_grad(&params);
            let obs = Tensor::randint(256, [4, 4, 84, 84], (Kind::Uint8, Device::Cpu));
            let (logits, value) = model.forward(&obs);
            (logits.square().sum(Kind::Float) + value.sum(Kind::Float)).backward();
            adam.step(&params);
        }
        let mut state = RunState::new(args.clone());
        (state.global_step, state.iterations, state.episodes) = (3072, 3, 17);
        state.train_seconds = 12.5;
        save(tmp.path(), &model, &adam, &state, &rom, &actions).expect("save");

        let mut resume = parse(&["--resume", &tmp.path().display().to_string()]);
        resume.run.given = vec!["resume".into()];
        let Start {
            args: resumed,
            loaded,
            state: resumed_state,
            ..
        } = start(&resume).expect("start");
        let loaded = loaded.expect("a checkpoint");
        // Counters and schedule: iteration 4 of 10 is next, at lr 2.5e-4 * (1 - 3 / 10).
        assert_eq!(
            (
                resumed_state.global_step,
                resumed_state.iterations,
                resumed_state.episodes,
                resumed_state.train_seconds,
                resumed_state.resumes
            ),
            (3072, 3, 17, 12.5, 1)
        );
        assert_eq!(resumed.total_timesteps, 10240);
        let cfg = PpoConfig::from_args(&resumed).expect("cfg");
        assert_eq!(cfg.frac(resumed_state.iterations + 1), 1.0 - 3.0 / 10.0);

        // A network of other weights and a fresh Adam take the saved ones exactly.
        let mut fresh = ActorCritic::new(Device::Cpu, 4, 99).expect("fresh");
        let mut fresh_adam = Adam::new(&fresh.params(), 2.5e-4, 1e-5);
        assert!(bits(&fresh.params()) != bits(&params));
        restore(&mut fresh, &mut fresh_adam, &loaded).expect("restore");
        assert!(bits(&fresh.params()) == bits(&params), "weights");
        assert!(bits(&fresh_adam.m) == bits(&adam.m), "first moments");
        assert!(bits(&fresh_adam.v) == bits(&adam.v), "second moments");
        assert_eq!(fresh_adam.step, 3, "Adam's step (its bias correction)");
    }
}
