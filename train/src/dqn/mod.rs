//! DQN (Mnih et al. 2015, "Human-level control through deep reinforcement learning"; with
//! `--double`, Double DQN, van Hasselt et al. 2016) for Atari from pixels, following CleanRL's
//! `dqn_atari.py` (vwxyzjn/cleanrl at fe8d8a0). Read top to bottom:
//!
//! 1. [`args`]: the flags and their defaults, validated into a [`DqnConfig`];
//! 2. [`network`]: the Nature CNN Q-network;
//! 3. [`replay`]: the replay memory (frames stored once, stacks rebuilt on sampling);
//! 4. [`targets`]: epsilon schedule, TD target, loss;
//! 5. [`agent`]: online and target networks, one gradient step, epsilon-greedy collection;
//! 6. [`train`] (below): check memory, environments, networks, replay memory; then per
//!    vector step: epsilon, act and store, and for each agent step past `learning_starts` a
//!    gradient step every `train_frequency` steps and a target update every
//!    `target_network_frequency` steps; log, checkpoint. At the end export `model.onnx`
//!    (output `q_values`) and evaluate it with epsilon 0.05.
//!
//! `--bench` ([`bench`]) times filling the memory and training beside the loop; [`memory`]
//! checks the machine can hold the replay memory before anything starts.
//!
//! Units: every counter is in agent steps summed over environments (1 agent step = 4 emulated
//! frames), so `--num-envs 4` takes 4 agent steps per vector step and trains on the same
//! schedule per agent step as one environment.
//!
//! Deliberate differences from `dqn_atari.py`:
//! - The default loss is Huber (smooth L1, delta 1: Nature DQN, SB3); `--loss mse` is
//!   CleanRL's. `--max-grad-norm` clips gradients (SB3 clips at 10; off by default, as in
//!   CleanRL).
//! - The replay memory stores each frame once and can be saved with `--save-replay`, so a
//!   resumed run continues with it instead of refilling.
//! - Initial weights are drawn on the CPU from the run's seed (PyTorch's default rule) and
//!   copied to the device, so CPU and CUDA runs start from the same weights.

pub mod agent;
pub mod args;
pub mod bench;
pub mod memory;
pub mod network;
pub mod replay;
pub mod targets;

use std::path::Path;
use std::time::Instant;

use cartridge_export::{Algo, Checkpoint};
use cartridge_infer::rom::{Rom, RomSearch};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::checkpoint::{self, Loaded, RunState, Snapshot};
use crate::logger::{MetricsRow, RunLog};
use crate::run::{
    bench_json, check_actions, finish, install_handler, make_envs, metadata, record_segment,
    setup_precision, setup_torch, start, Outcome, Saver, Start,
};
use crate::seeds::RunSeeds;
use crate::{Error, Result};
use memory::check_memory;

pub use agent::{collect, learn_due, start_episodes, DqnAgent, TdStats};
pub use args::{DqnArgs, DqnConfig};
pub use bench::DqnBenchReport;
pub use network::QNetwork;
pub use replay::ReplayMemory;
pub use targets::epsilon;

/// Agent steps between `metrics.csv` rows.
pub const LOG_EVERY: u64 = 1000;

/// Runs `train dqn` with these arguments.
pub fn train(args: &DqnArgs) -> Result<Outcome> {
    let Start {
        args: args_used,
        out,
        loaded,
        mut state,
    } = start(args)?;
    let cfg = DqnConfig::from_args(&args_used)?;
    let a = &cfg.args;
    check_memory(a)?;
    let choice = setup_torch(&a.run)?;
    let device = choice.device;
    let precision = setup_precision(&a.run, device)?;
    let rom = RomSearch::default().resolve(&a.run.rom)?;
    let (mut envs, actions, env_threads) = make_envs(
        &rom,
        &a.run,
        a.num_envs,
        RunSeeds {
            seed: a.run.seed,
            resume: state.resumes,
            rank: 0,
        },
    )?;

    let mut agent = DqnAgent::new(&cfg, actions.len(), device)?;
    agent.set_precision(precision.precision);
    let mut replay = ReplayMemory::new(a.buffer_size, a.num_envs)?;
    // Steps to collect in this process before training resumes (a run resumed without its
    // replay memory refills it first, as at the start of a run).
    let mut refill = 0;
    if let Some(l) = &loaded {
        check_actions(l, &rom, &actions)?;
        restore(&mut agent, l)?;
        match l.replay_path() {
            Some(p) => {
                replay.load(&p)?;
                replay.cut_episodes();
            }
            None => refill = a.learning_starts.min(a.buffer_size as u64),
        }
    }
    start_episodes(&envs, &mut replay);
    if a.run.bench {
        let report = bench::bench(&cfg, &mut agent, &mut envs, &mut replay, device)?;
        return Ok(Outcome::Bench(bench_json(&report)?));
    }

    record_segment(&mut state, device, precision.precision, 1);
    install_handler(None);
    let mut log = RunLog::open(
        &out,
        a.total_timesteps,
        loaded.as_ref().map(|l| l.state.global_step),
    )?;
    log.println(format!(
        "train dqn: {} on {device:?} ({}), {} ({}), {} envs on {env_threads} threads, {} steps, \
         replay {} transitions{}{}",
        rom.game,
        choice.reason,
        precision.precision,
        precision.reason,
        a.num_envs,
        a.total_timesteps,
        a.buffer_size,
        if state.global_step > 0 {
            format!(", resuming at step {}", state.global_step)
        } else {
            String::new()
        },
        match (loaded.is_some(), refill) {
            (false, _) => String::new(),
            (true, 0) => " with its saved replay memory".into(),
            (true, r) => format!(" (refilling the replay memory for {r} steps first)"),
        }
    ));
    let n = a.num_envs as u64;
    let seeds = RunSeeds {
        seed: a.run.seed,
        resume: state.resumes,
        rank: 0,
    };
    let mut act_rng = ChaCha8Rng::seed_from_u64(seeds.action_sampling());
    let mut sample_rng = ChaCha8Rng::seed_from_u64(seeds.replay_sampling());
    let mut saver = Saver::new(&state, a.run.save_every);
    let mut collected = 0u64;
    let mut interval = (Instant::now(), state.global_step);
    let title = format!(
        "{} {} (seed {})",
        if a.double { "Double DQN" } else { "DQN" },
        rom.game,
        a.run.seed
    );
    while state.global_step < a.total_timesteps {
        let eps = epsilon(a.start_e, a.end_e, cfg.exploration_steps, state.global_step);
        let games = collect(&agent, &mut envs, &mut replay, eps, &mut act_rng)?;
        let before = state.global_step;
        state.global_step += n;
        collected += n;
        state.episodes += games.len() as u64;
        log.games(state.global_step, &games)?;
        if collected >= refill {
            state.gradient_steps += learn_due(
                &mut agent,
                &replay,
                a,
                before,
                state.global_step,
                &mut sample_rng,
            )?;
        }

        if state.global_step / LOG_EVERY > before / LOG_EVERY {
            let stats = agent.take_stats();
            let (t0, s0) = interval;
            interval = (Instant::now(), state.global_step);
            log.row(MetricsRow {
                global_step: state.global_step,
                td_loss: stats.map(|s| s.td_loss),
                q_values: stats.map(|s| s.q_values),
                epsilon: Some(eps),
                learning_rate: agent.adam.lr,
                sps: (state.global_step - s0) as f64 / t0.elapsed().as_secs_f64(),
                ..MetricsRow::default()
            })?;
        }
        if let Some(o) = saver.tick(&mut state, &out, &log, &title, |st| {
            save(&out, &agent, &replay, st, &rom, &actions)
        })? {
            return Ok(o);
        }
    }

    saver.at_end(&mut state, loaded.is_some(), |st| {
        save(&out, &agent, &replay, st, &rom, &actions)
    })?;
    log.plot(&title)?;
    log.finish();
    let ckpt = checkpoint_of(&agent, &state, &rom, &actions)?;
    finish(out, &rom, &a.run, &ckpt, state.global_step)
}

/// The online network at `state` as a checkpoint (weights and metadata): what every save
/// writes as `model.safetensors` and what the end of a run exports.
fn checkpoint_of(
    agent: &DqnAgent,
    state: &RunState<DqnArgs>,
    rom: &Rom,
    actions: &[i32],
) -> Result<Checkpoint> {
    Ok(Checkpoint {
        meta: metadata(Algo::Dqn, rom, actions, state, state.args.run.seed)?,
        tensors: agent.online.tensors()?,
    })
}

/// Puts a checkpoint's online network, target network and Adam state (moments and step)
/// into `agent`, so a resumed run continues from exactly what [`save`] wrote.
fn restore(agent: &mut DqnAgent, l: &Loaded<DqnArgs>) -> Result<()> {
    agent.online.load(&l.model.tensors)?;
    let target = l.target.as_ref().ok_or_else(|| Error::Resume {
        path: l.dir.clone(),
        reason: "no target.safetensors; is this a `train dqn` run?".into(),
    })?;
    agent.target.load(target)?;
    checkpoint::restore_adam(&mut agent.adam, l, Algo::Dqn.into())
}

fn save(
    out: &Path,
    agent: &DqnAgent,
    replay: &ReplayMemory,
    state: &RunState<DqnArgs>,
    rom: &Rom,
    actions: &[i32],
) -> Result<()> {
    let a = &state.args;
    let snap = Snapshot {
        arch: Algo::Dqn.into(),
        model: checkpoint_of(agent, state, rom, actions)?,
        adam: &agent.adam,
        target: Some(agent.target.tensors()?),
        replay: a
            .save_replay
            .then_some(replay as &dyn checkpoint::SaveToFile),
    };
    checkpoint::save(out, &snap, state)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adam::zero_grad;
    use crate::dqn::args::tests::parse_dqn as parse;
    use crate::ppo::tests::bits;
    use tch::{Device, Kind, Tensor};

    #[test]
    fn resume_restores_both_networks_adam_counters_and_epsilon_bit_for_bit() {
        tch::manual_seed(5);
        let tmp = tempfile::tempdir().expect("tmp");
        let rom = RomSearch::default().resolve("pong").expect("rom");
        let actions = [0, 1, 3, 4, 11, 12];
        let args = parse(&["--total-timesteps", "100000", "--buffer-size", "1000"]);
        let cfg = DqnConfig::from_args(&args).expect("cfg");
        let mut agent = DqnAgent::new(&cfg, 6, Device::Cpu).expect("agent");
        let params = agent.online.params();
        for _ in 0..3 {
            zero_grad(&params);
            let obs = Tensor::randint(256, [4, 4, 84, 84], (Kind::Uint8, Device::Cpu));
            agent
                .online
                .forward(&obs)
                .square()
                .sum(Kind::Float)
                .backward();
            agent.adam.step(&params);
        }
        // A target between the initial and the current online weights: neither equals it.
        agent.update_target(0.5);
        let target = agent.target.params();
        let replay = ReplayMemory::new(1000, 1).expect("replay");
        let mut state = RunState::new(args.clone());
        (state.global_step, state.gradient_steps, state.episodes) = (6000, 250, 3);
        save(tmp.path(), &agent, &replay, &state, &rom, &actions).expect("save");

        let mut resume = parse(&["--resume", &tmp.path().display().to_string()]);
        resume.run.given = vec!["resume".into()];
        let Start {
            args: resumed,
            loaded,
            state: s,
            ..
        } = start(&resume).expect("start");
        let loaded = loaded.expect("a checkpoint");
        assert_eq!(
            (s.global_step, s.gradient_steps, s.episodes, s.resumes),
            (6000, 250, 3, 1)
        );
        // Epsilon continues from step 6000 of its 10,000-step decay (exploration_fraction
        // 0.1 of 100,000): 1 - 0.99 * 0.6 = 0.406.
        let rcfg = DqnConfig::from_args(&resumed).expect("cfg");
        let eps = epsilon(
            rcfg.args.start_e,
            rcfg.args.end_e,
            rcfg.exploration_steps,
            s.global_step,
        );
        assert!((eps - 0.406).abs() < 1e-12, "epsilon {eps}");

        let mut fresh = DqnAgent::new(
            &DqnConfig::from_args(&parse(&["--seed", "9", "--buffer-size", "1000"])).expect("cfg"),
            6,
            Device::Cpu,
        )
        .expect("fresh");
        assert!(bits(&fresh.online.params()) != bits(&params));
        restore(&mut fresh, &loaded).expect("restore");
        assert!(
            bits(&fresh.online.params()) == bits(&params),
            "online network"
        );
        assert!(
            bits(&fresh.target.params()) == bits(&target),
            "target network"
        );
        assert!(
            bits(&target) != bits(&params),
            "the target is not the online network"
        );
        assert!(bits(&fresh.adam.m) == bits(&agent.adam.m), "first moments");
        assert!(bits(&fresh.adam.v) == bits(&agent.adam.v), "second moments");
        assert_eq!(fresh.adam.step, 3);
    }
}
