//! The DQN training loop (CleanRL `dqn_atari.py`'s order): check memory, environments,
//! networks, replay memory; then per vector step: epsilon, act and store, and for each agent
//! step past `learning_starts` a gradient step every `train_frequency` steps and a target
//! update every `target_network_frequency` steps; log, checkpoint. At the end export
//! `model.onnx` (output `q_values`) and evaluate it with epsilon 0.05.
//!
//! Units: every counter is in agent steps summed over environments (1 agent step = 4 emulated
//! frames), so `--num-envs 4` takes 4 agent steps per vector step and trains on the same
//! schedule per agent step as one environment.

use std::path::Path;
use std::time::Instant;

use cartridge_export::{Algo, Checkpoint};
use cartridge_infer::rom::{Rom, RomSearch};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::checkpoint::{self, RunState, Snapshot};
use crate::config::{DqnArgs, DqnConfig};
use crate::dqn::{collect, epsilon, learn_due, start_episodes, DqnAgent};
use crate::logger::{MetricsRow, RunLog};
use crate::replay::{bytes_needed, ReplayMemory};
use crate::run::{
    check_actions, finish, make_envs, metadata, setup_torch, start, Outcome, Saver, Start,
};
use crate::seeds::RunSeeds;
use crate::{Error, Result};

/// Agent steps between `metrics.csv` rows.
pub const LOG_EVERY: u64 = 1000;

/// Agent steps timed with training in `--bench`, after the memory is full.
const BENCH_TRAIN_STEPS: u64 = 4000;

/// Headroom besides the replay memory: libtorch, the networks, batches, environments.
const HEADROOM_BYTES: u64 = 1 << 30;

/// Figures printed by `train dqn --bench`.
#[derive(Debug, Clone, Serialize)]
pub struct DqnBenchReport {
    /// Device used.
    pub device: String,
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

/// Bytes the kernel says can be allocated without swapping (`MemAvailable`), if known.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    proc_kib(&text, "MemAvailable:")
}

/// Peak resident memory of this process (`VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    proc_kib(&text, "VmHWM:")
}

fn proc_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

/// Prints what the replay memory needs and refuses to start when the machine cannot hold it.
fn check_memory(a: &DqnArgs) -> Result<()> {
    let need = bytes_needed(a.buffer_size);
    let per = bytes_needed(1);
    match mem_available() {
        Some(avail) => {
            eprintln!(
                "replay memory: {} transitions x {per} bytes = {:.2} GB (+ ~{:.1} GB for \
                 libtorch and the networks); available now: {:.2} GB",
                a.buffer_size,
                gb(need),
                gb(HEADROOM_BYTES),
                gb(avail)
            );
            if need + HEADROOM_BYTES > avail {
                let fits = avail.saturating_sub(HEADROOM_BYTES) / per;
                return Err(Error::Config(format!(
                    "--buffer-size {} needs {:.2} GB for the replay memory plus ~{:.1} GB, but \
                     only {:.2} GB are available on this machine; lower --buffer-size (at most \
                     about {fits} fits now) or free memory",
                    a.buffer_size,
                    gb(need),
                    gb(HEADROOM_BYTES),
                    gb(avail)
                )));
            }
        }
        None => eprintln!(
            "replay memory: {} transitions x {per} bytes = {:.2} GB (available memory unknown)",
            a.buffer_size,
            gb(need)
        ),
    }
    Ok(())
}

/// Runs `train dqn` with these arguments.
pub fn train_dqn(args: &DqnArgs) -> Result<Outcome> {
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
    let rom = RomSearch::default().resolve(&a.run.rom)?;
    let (mut envs, actions, env_threads) = make_envs(&rom, &a.run, a.num_envs, state.resumes)?;

    let mut agent = DqnAgent::new(&cfg, actions.len(), device)?;
    let mut replay = ReplayMemory::new(a.buffer_size, a.num_envs)?;
    // Steps to collect in this process before training resumes (a run resumed without its
    // replay memory refills it first, as at the start of a run).
    let mut refill = 0;
    if let Some(l) = &loaded {
        check_actions(l, &rom, &actions)?;
        agent.online.load(&l.model.tensors)?;
        let target = l.target.as_ref().ok_or_else(|| Error::Resume {
            path: l.dir.clone(),
            reason: "no target.safetensors; is this a `train dqn` run?".into(),
        })?;
        agent.target.load(target)?;
        checkpoint::restore_adam(&mut agent.adam, l, Algo::Dqn)?;
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
        return bench(&cfg, &mut agent, &mut envs, &mut replay, device).map(Outcome::DqnBench);
    }

    let mut log = RunLog::open(
        &out,
        a.total_timesteps,
        loaded.as_ref().map(|l| l.state.global_step),
    )?;
    log.println(format!(
        "train dqn: {} on {device:?} ({}), {} envs on {env_threads} threads, {} steps, replay {} \
         transitions{}{}",
        rom.game,
        choice.reason,
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
            state.iteration += learn_due(
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
            log.iteration(MetricsRow {
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
    let ckpt = Checkpoint {
        meta: metadata(Algo::Dqn, &rom, &actions, &state, a.run.seed)?,
        tensors: agent.online.tensors()?,
    };
    finish(out, &rom, &a.run, &ckpt, state.global_step)
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
        algo: Algo::Dqn,
        model: Checkpoint {
            meta: metadata(Algo::Dqn, rom, actions, state, a.run.seed)?,
            tensors: agent.online.tensors()?,
        },
        adam: &agent.adam,
        target: Some(agent.target.tensors()?),
        replay: a.save_replay.then_some(replay),
    };
    checkpoint::save(out, &snap, state)?;
    Ok(())
}

/// Fills the memory to capacity with random actions (timed), then times
/// [`BENCH_TRAIN_STEPS`] agent steps of training at epsilon 0.01, and reads the peak RSS.
fn bench(
    cfg: &DqnConfig,
    agent: &mut DqnAgent,
    envs: &mut crate::vecenv::VecEnv,
    replay: &mut ReplayMemory,
    device: tch::Device,
) -> Result<DqnBenchReport> {
    let a = &cfg.args;
    let n = a.num_envs as u64;
    let seeds = RunSeeds {
        seed: a.run.seed,
        resume: 0,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse_in_kib() {
        let text = "MemTotal:       24592300 kB\nMemAvailable:   22000000 kB\n";
        assert_eq!(proc_kib(text, "MemAvailable:"), Some(22_000_000 * 1024));
        assert_eq!(proc_kib(text, "VmHWM:"), None);
        assert!(mem_available().is_some() && peak_rss().is_some());
    }
}
