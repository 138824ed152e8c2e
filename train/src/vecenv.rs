//! Vectorized environments: N environments stepped in parallel by persistent worker threads,
//! observations written straight into one contiguous u8 `[N, 4, 84, 84]` buffer.
//!
//! Auto-reset as gym's vector envs: when an episode ends, the environment resets at once and
//! the buffer holds the new episode's first observation; the final observation of the ended
//! episode is kept (PPO bootstraps truncated episodes from it; DQN stores it in the replay
//! memory).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use cartridge_infer::ale::{Emulator, EmulatorConfig};
use cartridge_infer::preprocess::{AtariConfig, AtariEnv, OBS_LEN};
use cartridge_infer::rom::Rom;

use crate::seeds::EnvSeeds;
use crate::{Error, Result};

/// A finished (real, full-game) episode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    /// Raw score of the whole game.
    pub ret: f64,
    /// Agent steps of the whole game.
    pub len: u64,
}

/// What one environment step produced.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Transition {
    /// Learning reward (clipped for Atari).
    pub reward: f32,
    /// The learning episode ended by the game (or a lost life under EpisodicLife).
    pub terminated: bool,
    /// The learning episode ended by the time limit.
    pub truncated: bool,
    /// A real game ended here.
    pub episode: Option<Episode>,
}

/// One environment of observations `[4, 84, 84]` u8 and a discrete action set.
pub trait Environment: Send + 'static {
    /// Number of discrete actions.
    fn num_actions(&self) -> usize;
    /// Starts an episode and writes its first observation into `obs` (`OBS_LEN` bytes).
    fn reset(&mut self, obs: &mut [u8]);
    /// Acts and writes the next observation into `obs`.
    fn step(&mut self, action: usize, obs: &mut [u8]) -> Transition;
}

/// An Atari game with the training wrappers (EpisodicLife, ClipReward) on top of infer's
/// preprocessing; reports raw full-game returns.
#[derive(Debug)]
pub struct AtariTrainEnv {
    env: AtariEnv,
    steps: u64,
}

impl AtariTrainEnv {
    /// A training env for `rom` with its emulator and NoopReset seeds.
    pub fn new(rom: &Rom, seeds: EnvSeeds, sticky: f32) -> Result<Self> {
        let emu = Emulator::new(rom, EmulatorConfig::seeded(seeds.emulator, sticky))?;
        let cfg = AtariConfig {
            episodic_life: true,
            clip_reward: true,
            fire_on_life_loss: false,
            ..AtariConfig::default()
        };
        Ok(Self {
            env: AtariEnv::new(emu, cfg, seeds.noop_reset),
            steps: 0,
        })
    }

    /// The game's minimal action set (ALE ids).
    pub fn actions(&self) -> Vec<i32> {
        self.env.emulator().minimal_action_set().to_vec()
    }
}

impl Environment for AtariTrainEnv {
    fn num_actions(&self) -> usize {
        self.env.num_actions()
    }

    fn reset(&mut self, obs: &mut [u8]) {
        self.env.reset();
        obs.copy_from_slice(self.env.obs());
    }

    fn step(&mut self, action: usize, obs: &mut [u8]) -> Transition {
        let s = self.env.step(action);
        self.steps += 1;
        obs.copy_from_slice(self.env.obs());
        let episode = s.game_over.then(|| {
            let e = Episode {
                ret: self.env.episode_return() as f64,
                len: self.steps,
            };
            self.steps = 0;
            e
        });
        Transition {
            reward: s.reward,
            terminated: s.terminated,
            truncated: s.truncated,
            episode,
        }
    }
}

enum Command {
    Reset,
    Step(Vec<usize>),
}

/// A worker's answer to a command: the seconds it spent on it, and its transitions or the
/// environment that panicked and the panic message (the worker exits after sending it).
type Reply = (f64, std::result::Result<Vec<Transition>, (usize, String)>);

/// A raw pointer to the shared observation buffers, handed to workers.
#[derive(Clone, Copy)]
struct Buffers {
    obs: *mut u8,
    final_obs: *mut u8,
}
// SAFETY: workers write only their own environments' disjoint slices, and only between
// receiving a command and replying; the owner reads environments' slices only while their
// worker has no command in flight (`VecEnv::idle_slice`, `VecEnv::obs`), and drops the buffers only
// after joining the workers.
unsafe impl Send for Buffers {}

/// N environments on persistent worker threads.
///
/// Each worker owns a contiguous chunk of environments, and the workers form
/// [`Self::groups`] contiguous groups (one by default, [`Self::with_groups`] for more).
/// [`Self::step`] steps every environment and waits; [`Self::send_step`] and [`Self::wait`]
/// step one group while the caller works on another (EnvPool's asynchronous mode). A group's
/// observations, final observations and transitions are readable only while it is not
/// stepping.
pub struct VecEnv {
    n: usize,
    num_actions: usize,
    obs: Vec<u8>,
    /// Owns the memory behind `bufs.final_obs` (read through it).
    _final_obs: Vec<u8>,
    bufs: Buffers,
    transitions: Vec<Transition>,
    senders: Vec<Sender<Command>>,
    replies: Vec<Receiver<Reply>>,
    /// Environments of each worker.
    ranges: Vec<std::ops::Range<usize>>,
    /// Workers of each group.
    groups: Vec<std::ops::Range<usize>>,
    in_flight: Vec<bool>,
    workers: Vec<JoinHandle<()>>,
    /// The first environment that failed and why.
    failed: Option<(usize, String)>,
    busy_s: Vec<f64>,
}

impl std::fmt::Debug for VecEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VecEnv")
            .field("n", &self.n)
            .field("threads", &self.workers.len())
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl VecEnv {
    /// Spreads `envs` over `threads` persistent workers (contiguous chunks).
    pub fn new<E: Environment>(envs: Vec<E>, threads: usize) -> Result<Self> {
        let n = envs.len();
        if n == 0 {
            return Err(Error::Config("at least one environment is needed".into()));
        }
        let num_actions = envs[0].num_actions();
        if envs.iter().any(|e| e.num_actions() != num_actions) {
            return Err(Error::Config(
                "environments disagree on the action count".into(),
            ));
        }
        let threads = threads.clamp(1, n);
        let mut obs = vec![0u8; n * OBS_LEN];
        let mut final_obs = vec![0u8; n * OBS_LEN];
        let bufs = Buffers {
            obs: obs.as_mut_ptr(),
            final_obs: final_obs.as_mut_ptr(),
        };
        let mut replies = Vec::new();
        let mut senders = Vec::new();
        let mut ranges = Vec::new();
        let mut workers = Vec::new();
        let mut envs = envs.into_iter();
        for w in 0..threads {
            let lo = w * n / threads;
            let hi = (w + 1) * n / threads;
            let mine: Vec<E> = envs.by_ref().take(hi - lo).collect();
            let (tx, rx) = channel::<Command>();
            let (reply_tx, reply_rx) = channel();
            let handle = std::thread::Builder::new()
                .name(format!("env-worker-{w}"))
                .spawn(move || worker(lo, mine, bufs, rx, reply_tx))
                .map_err(Error::Io)?;
            senders.push(tx);
            replies.push(reply_rx);
            ranges.push(lo..hi);
            workers.push(handle);
        }
        let mut v = Self {
            n,
            num_actions,
            obs,
            _final_obs: final_obs,
            bufs,
            transitions: vec![Transition::default(); n],
            senders,
            replies,
            in_flight: vec![false; threads],
            ranges,
            groups: std::iter::once(0..threads).collect(),
            workers,
            failed: None,
            busy_s: vec![0.0; threads],
        };
        v.broadcast(|_| Command::Reset)?;
        Ok(v)
    }

    /// Number of environments.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Always false.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Number of actions.
    pub fn num_actions(&self) -> usize {
        self.num_actions
    }

    /// Current observations `[N, 4, 84, 84]` u8.
    ///
    /// # Panics
    /// If a group is stepping ([`Self::send_step`] without [`Self::wait`]).
    pub fn obs(&self) -> &[u8] {
        assert!(
            !self.in_flight.contains(&true),
            "VecEnv::obs while a group is stepping"
        );
        &self.obs
    }

    /// The transitions of the last [`Self::step`].
    pub fn last_transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// Final observation `[4, 84, 84]` of env `i`'s last ended (terminated or truncated)
    /// episode.
    ///
    /// # Panics
    /// If env `i`'s group is stepping.
    pub fn final_obs(&self, i: usize) -> &[u8] {
        self.idle_slice(self.bufs.final_obs, i..i + 1)
    }

    /// The same environments in `groups` groups of contiguous workers (clamped to 1..=the
    /// number of workers), for [`Self::send_step`] and [`Self::wait`].
    pub fn with_groups(mut self, groups: usize) -> Self {
        let w = self.workers.len();
        let k = groups.clamp(1, w);
        self.groups = (0..k).map(|g| g * w / k..(g + 1) * w / k).collect();
        self
    }

    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The environments of group `g`, a contiguous range of indices.
    pub fn group(&self, g: usize) -> std::ops::Range<usize> {
        let w = &self.groups[g];
        self.ranges[w.start].start..self.ranges[w.end - 1].end
    }

    /// Current observations of group `g`, `[len of group, 4, 84, 84]` u8.
    ///
    /// # Panics
    /// If group `g` is stepping.
    pub fn group_obs(&self, g: usize) -> &[u8] {
        self.idle_slice(self.bufs.obs, self.group(g))
    }

    /// Bytes of environments `envs` in `base` (one of the shared buffers), whose workers must
    /// not be stepping.
    fn idle_slice(&self, base: *mut u8, envs: std::ops::Range<usize>) -> &[u8] {
        let stepping = self
            .ranges
            .iter()
            .zip(&self.in_flight)
            .any(|(r, &busy)| busy && r.start < envs.end && envs.start < r.end);
        assert!(
            envs.end <= self.n && !stepping,
            "VecEnv: environments {envs:?} are stepping or out of range"
        );
        // SAFETY: `base` is one of the two N * OBS_LEN buffers this VecEnv owns and the range
        // is inside it; no worker owning one of these environments has a command in flight
        // (checked above), so nothing writes these bytes while the returned borrow of `self`
        // lives (commands are sent only through `&mut self`).
        unsafe { std::slice::from_raw_parts(base.add(envs.start * OBS_LEN), envs.len() * OBS_LEN) }
    }

    /// Seconds the busiest worker spent stepping and resetting environments since the last
    /// `take_busy_s` (the critical path of the work itself: a caller's wall time beyond it is
    /// hand-over and waiting). Resets every worker's sum.
    pub fn take_busy_s(&mut self) -> f64 {
        let busiest = self.busy_s.iter().copied().fold(0.0, f64::max);
        self.busy_s.fill(0.0);
        busiest
    }

    /// Steps every environment with `actions[i]`; returns the N transitions.
    pub fn step(&mut self, actions: &[usize]) -> Result<&[Transition]> {
        if actions.len() != self.n {
            return Err(Error::Config(format!(
                "{} actions for {} environments",
                actions.len(),
                self.n
            )));
        }
        self.failure()?;
        for w in 0..self.workers.len() {
            let r = self.ranges[w].clone();
            self.send(w, Command::Step(actions[r].to_vec()));
        }
        self.wait_all()?;
        Ok(&self.transitions)
    }

    /// Starts stepping group `g` with `actions` (one per environment of the group) and
    /// returns at once; [`Self::wait`] collects the result.
    pub fn send_step(&mut self, g: usize, actions: &[usize]) -> Result<()> {
        let envs = self.group(g);
        let workers = self.groups[g].clone();
        if actions.len() != envs.len() || self.in_flight[workers.clone()].contains(&true) {
            return Err(Error::Config(format!(
                "group {g}: {} actions for {} environments{}",
                actions.len(),
                envs.len(),
                if self.in_flight[workers].contains(&true) {
                    ", and it is already stepping"
                } else {
                    ""
                }
            )));
        }
        self.failure()?;
        for w in workers {
            let r = self.ranges[w].clone();
            let cmd = Command::Step(actions[r.start - envs.start..r.end - envs.start].to_vec());
            self.send(w, cmd);
        }
        self.failure()
    }

    /// Waits for group `g`'s step (started by [`Self::send_step`]) and returns its
    /// transitions; a group that is not stepping returns its last ones.
    pub fn wait(&mut self, g: usize) -> Result<&[Transition]> {
        for w in self.groups[g].clone() {
            self.receive(w);
        }
        self.failure()?;
        Ok(&self.transitions[self.group(g)])
    }

    /// Sends `cmd` to worker `w`; a worker that is gone is recorded as the failure.
    fn send(&mut self, w: usize, cmd: Command) {
        if self.senders[w].send(cmd).is_ok() {
            self.in_flight[w] = true;
        } else {
            self.failed
                .get_or_insert((self.ranges[w].start, "its worker thread is gone".into()));
        }
    }

    /// Collects worker `w`'s reply if it has a command in flight. A worker whose environment
    /// panicked replies with the panic and exits.
    fn receive(&mut self, w: usize) {
        if !std::mem::take(&mut self.in_flight[w]) {
            return;
        }
        let Ok((busy, reply)) = self.replies[w].recv() else {
            self.failed
                .get_or_insert((self.ranges[w].start, "its worker thread is gone".into()));
            return;
        };
        self.busy_s[w] += busy;
        match reply {
            Ok(ts) => {
                let r = self.ranges[w].clone();
                self.transitions[r].copy_from_slice(&ts);
            }
            Err(e) => {
                self.failed.get_or_insert(e);
            }
        }
    }

    /// Waits for every worker with a command in flight (so no worker writes the buffers after
    /// this returns), then returns the first failure; once an environment has failed, every
    /// later call fails at once.
    fn wait_all(&mut self) -> Result<()> {
        for w in 0..self.workers.len() {
            self.receive(w);
        }
        self.failure()
    }

    fn failure(&self) -> Result<()> {
        match &self.failed {
            Some((env, message)) => Err(Error::Env {
                env: *env,
                message: message.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Sends one command per worker and waits for every reply.
    fn broadcast(&mut self, cmd: impl Fn(usize) -> Command) -> Result<()> {
        self.failure()?;
        for w in 0..self.workers.len() {
            self.send(w, cmd(w));
        }
        self.wait_all()
    }
}

impl Drop for VecEnv {
    fn drop(&mut self) {
        self.senders.clear();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker<E: Environment>(
    first: usize,
    mut envs: Vec<E>,
    bufs: Buffers,
    rx: Receiver<Command>,
    reply: Sender<Reply>,
) {
    let slice = |base: *mut u8, i: usize| {
        // SAFETY: env `first + i` owns bytes [(first+i)*OBS_LEN, +OBS_LEN) of an N*OBS_LEN
        // buffer that outlives the workers (VecEnv joins them on drop); see `Buffers`.
        unsafe { std::slice::from_raw_parts_mut(base.add((first + i) * OBS_LEN), OBS_LEN) }
    };
    while let Ok(cmd) = rx.recv() {
        let started = std::time::Instant::now();
        let mut out = Vec::with_capacity(envs.len());
        let mut failure = None;
        for (i, e) in envs.iter_mut().enumerate() {
            // The environment is not used again after a panic (this worker exits), so
            // observing it half-updated is impossible.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &cmd {
                Command::Reset => {
                    e.reset(slice(bufs.obs, i));
                    Transition::default()
                }
                Command::Step(actions) => {
                    let obs = slice(bufs.obs, i);
                    let t = e.step(actions[i], obs);
                    if t.terminated || t.truncated {
                        slice(bufs.final_obs, i).copy_from_slice(obs);
                        e.reset(obs);
                    }
                    t
                }
            }));
            match r {
                Ok(t) => out.push(t),
                Err(p) => {
                    failure = Some((first + i, panic_message(p.as_ref())));
                    break;
                }
            }
        }
        let dead = failure.is_some();
        let msg = match failure {
            Some(f) => Err(f),
            None => Ok(out),
        };
        let busy = started.elapsed().as_secs_f64();
        if reply.send((busy, msg)).is_err() || dead {
            return;
        }
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    match (p.downcast_ref::<&str>(), p.downcast_ref::<String>()) {
        (Some(s), _) => format!("panicked: {s}"),
        (_, Some(s)) => format!("panicked: {s}"),
        _ => "panicked".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Counts steps; env `bad` panics at its `at`-th step.
    struct Flaky {
        index: usize,
        bad: usize,
        at: u32,
        steps: u32,
    }

    impl Environment for Flaky {
        fn num_actions(&self) -> usize {
            2
        }
        fn reset(&mut self, obs: &mut [u8]) {
            obs.fill(0);
        }
        fn step(&mut self, _action: usize, obs: &mut [u8]) -> Transition {
            self.steps += 1;
            if self.index == self.bad && self.steps == self.at {
                panic!("emulator exploded in env {}", self.index);
            }
            obs.fill(self.steps as u8);
            Transition::default()
        }
    }

    /// Sleeps `ms` milliseconds per step.
    struct Slow {
        ms: u64,
    }

    impl Environment for Slow {
        fn num_actions(&self) -> usize {
            2
        }
        fn reset(&mut self, obs: &mut [u8]) {
            obs.fill(0);
        }
        fn step(&mut self, _action: usize, _obs: &mut [u8]) -> Transition {
            std::thread::sleep(Duration::from_millis(self.ms));
            Transition::default()
        }
    }

    #[test]
    fn busy_time_is_the_busiest_workers_total() {
        // Two workers: env 0 sleeps 3 ms a step, env 1 2 ms, in parallel. The busiest worker
        // took at least 3 ms a step, so 5 steps take at least 15 ms of busy time, and the busy
        // time cannot exceed the wall time of the steps (the two workers' sum, >= 25 ms, would).
        let envs = vec![Slow { ms: 3 }, Slow { ms: 2 }];
        let mut v = VecEnv::new(envs, 2).expect("vecenv");
        v.take_busy_s();
        let t0 = std::time::Instant::now();
        for _ in 0..5 {
            v.step(&[0, 0]).expect("step");
        }
        let wall = t0.elapsed().as_secs_f64();
        let busy = v.take_busy_s();
        assert!(busy >= 0.015, "busy {busy}");
        assert!(busy <= wall, "busy {busy} > wall {wall}");
        assert_eq!(v.take_busy_s(), 0.0, "taking resets the sum");
    }

    #[test]
    fn a_panicking_env_ends_the_run_with_its_index_and_message() {
        // 5 envs on 2 workers; env 3 (second worker) panics at its 3rd step. Before the fix
        // the first worker kept the reply channel open and `step` waited forever, so the test
        // runs in a thread and fails after 10 s instead of hanging.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let envs = (0..5)
                .map(|index| Flaky {
                    index,
                    bad: 3,
                    at: 3,
                    steps: 0,
                })
                .collect();
            let mut v = VecEnv::new(envs, 2).expect("vecenv");
            let mut results = Vec::new();
            for _ in 0..4 {
                results.push(v.step(&[0; 5]).map(|_| ()));
            }
            let _ = tx.send(results);
        });
        let results = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("VecEnv::step hung after a worker panicked");
        assert!(results[0].is_ok() && results[1].is_ok());
        for r in &results[2..] {
            match r {
                Err(Error::Env { env, message }) => {
                    assert_eq!(*env, 3);
                    assert!(message.contains("emulator exploded in env 3"), "{message}");
                }
                other => panic!("expected an environment error, got {other:?}"),
            }
        }
        let shown = match &results[2] {
            Err(e) => e.to_string(),
            Ok(()) => String::new(),
        };
        assert!(
            shown.starts_with("training environment 3 failed"),
            "{shown}"
        );
    }

    /// Shows its last action + 1 in every byte and gets it back as the reward.
    struct Mirror;

    impl Environment for Mirror {
        fn num_actions(&self) -> usize {
            9
        }
        fn reset(&mut self, obs: &mut [u8]) {
            obs.fill(0);
        }
        fn step(&mut self, action: usize, obs: &mut [u8]) -> Transition {
            obs.fill(action as u8 + 1);
            Transition {
                reward: action as f32,
                ..Transition::default()
            }
        }
    }

    #[test]
    fn a_group_of_several_workers_steps_alone_with_its_own_actions() {
        // 6 envs on 4 workers (envs 0..1, 1..3, 3..4, 4..6) in 2 groups: workers 0..2 (envs
        // 0..3) and 2..4 (envs 3..6). Group 1 steps with actions 7, 8, 6 while group 0's
        // observations stay readable and unchanged; each env must get its own action (an
        // action slice taken at the wrong offset of the group gives env 4 or 5 another one).
        let mut v = VecEnv::new((0..6).map(|_| Mirror).collect(), 4)
            .expect("vecenv")
            .with_groups(2);
        assert_eq!(v.groups(), 2);
        assert_eq!((v.group(0), v.group(1)), (0..3, 3..6));
        v.send_step(1, &[7, 8, 6]).expect("send");
        assert!(v.group_obs(0).iter().all(|&b| b == 0));
        assert!(v.send_step(1, &[1, 1, 1]).is_err(), "already stepping");
        let rewards: Vec<f32> = v.wait(1).expect("wait").iter().map(|t| t.reward).collect();
        assert_eq!(rewards, [7.0, 8.0, 6.0]);
        let firsts: Vec<u8> = v.obs().chunks(OBS_LEN).map(|o| o[0]).collect();
        assert_eq!(firsts, [0, 0, 0, 8, 9, 7]);
        assert!(
            v.send_step(0, &[1, 2]).is_err(),
            "group 0 has 3 environments"
        );
        // Groups are clamped to the number of workers.
        let v = VecEnv::new((0..2).map(|_| Mirror).collect(), 2)
            .expect("vecenv")
            .with_groups(5);
        assert_eq!(v.groups(), 2);
    }
}
