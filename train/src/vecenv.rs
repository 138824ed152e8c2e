//! Vectorized environments: N environments stepped in parallel by persistent worker threads,
//! observations written straight into one contiguous u8 `[N, 4, 84, 84]` buffer. The workers
//! of a group share its environments dynamically: each claims the next environment not yet
//! stepped, so a slow step (a reset's no-ops) is balanced by the other workers.
//!
//! Auto-reset as gym's vector envs: when an episode ends, the environment resets at once and
//! the buffer holds the new episode's first observation; the final observation of the ended
//! episode is kept (PPO bootstraps truncated episodes from it; DQN stores it in the replay
//! memory).

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
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

/// One reset (no actions) or step of the contiguous environments `envs`, sent to every worker
/// of their group: each worker claims the next unclaimed environment until none is left.
struct Job {
    envs: Range<usize>,
    actions: Vec<usize>,
    next: AtomicUsize,
}

/// A worker's answer to a job: the seconds it spent on it, and the transitions of the
/// environments it claimed, or the environment that panicked and the panic message (the
/// worker exits after sending it).
type Reply = (
    f64,
    std::result::Result<Vec<(usize, Transition)>, (usize, String)>,
);

/// A raw pointer to the shared observation buffers, handed to workers.
#[derive(Clone, Copy)]
struct Buffers {
    obs: *mut u8,
    final_obs: *mut u8,
}
// SAFETY: a worker writes only the slices of the environments it claimed in its current job
// (each claimed by exactly one worker), and only between receiving the job and replying; the
// owner reads environments' slices only while no worker of their group has a job in flight
// (`VecEnv::idle_slice`, `VecEnv::obs`), and drops the buffers only after joining the workers.
unsafe impl Send for Buffers {}

/// N environments on persistent worker threads.
///
/// The workers form [`Self::groups`] contiguous groups (one by default, [`Self::with_groups`]
/// for more), each with the environments of its workers' nominal chunks, which its workers
/// step in whatever order they claim them.
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
    senders: Vec<Sender<Arc<Job>>>,
    replies: Vec<Receiver<Reply>>,
    /// Each worker's nominal chunk of environments (its group's environments are the union of
    /// its workers' chunks).
    ranges: Vec<Range<usize>>,
    /// Workers of each group.
    groups: Vec<std::ops::Range<usize>>,
    in_flight: Vec<bool>,
    workers: Vec<JoinHandle<()>>,
    /// Each group's job in flight, which [`Self::wait`] helps with.
    jobs: Vec<Option<Arc<Job>>>,
    /// Claims and runs what is left of a job on the caller's thread.
    helper: Box<dyn Fn(&Job) -> Reply + Send>,
    /// The first environment that failed and why.
    failed: Option<(usize, String)>,
    /// Sum over collected jobs of the longest time one thread spent on the job.
    busy_s: f64,
    /// The longest time one thread spent on the job being collected.
    job_busy_s: f64,
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
        let envs: Arc<Vec<Mutex<E>>> = Arc::new(envs.into_iter().map(Mutex::new).collect());
        let mine = Arc::clone(&envs);
        let helper: Box<dyn Fn(&Job) -> Reply + Send> =
            Box::new(move |job| run_job(&mine, bufs, job));
        for w in 0..threads {
            let lo = w * n / threads;
            let hi = (w + 1) * n / threads;
            let (tx, rx) = channel::<Arc<Job>>();
            let (reply_tx, reply_rx) = channel();
            let shared = Arc::clone(&envs);
            let handle = std::thread::Builder::new()
                .name(format!("env-worker-{w}"))
                .spawn(move || worker(&shared, bufs, rx, reply_tx))
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
            busy_s: 0.0,
            job_busy_s: 0.0,
            jobs: vec![None],
            helper,
        };
        v.failure()?;
        let job = v.start_job(0..threads, 0..n, Vec::new());
        v.help(&job);
        v.wait_all()?;
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
        self.jobs = vec![None; k];
        self
    }

    /// Number of groups.
    pub fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The environments of group `g`, a contiguous range of indices.
    pub fn group(&self, g: usize) -> Range<usize> {
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

    /// Bytes of environments `envs` in `base` (one of the shared buffers), whose groups must
    /// not be stepping.
    fn idle_slice(&self, base: *mut u8, envs: Range<usize>) -> &[u8] {
        let stepping = (0..self.groups.len()).any(|g| {
            let r = self.group(g);
            r.start < envs.end
                && envs.start < r.end
                && self.in_flight[self.groups[g].clone()].contains(&true)
        });
        assert!(
            envs.end <= self.n && !stepping,
            "VecEnv: environments {envs:?} are stepping or out of range"
        );
        // SAFETY: `base` is one of the two N * OBS_LEN buffers this VecEnv owns and the range
        // is inside it; no worker that could claim one of these environments has a job in
        // flight (checked above), so nothing writes these bytes while the returned borrow of
        // `self` lives (jobs are sent only through `&mut self`).
        unsafe { std::slice::from_raw_parts(base.add(envs.start * OBS_LEN), envs.len() * OBS_LEN) }
    }

    /// Seconds of stepping and resetting on the critical path since the last `take_busy_s`:
    /// for each job collected, the longest time one thread (a worker or the caller) spent on
    /// it. A caller's wall time beyond it is hand-over and waiting. Resets the sum.
    pub fn take_busy_s(&mut self) -> f64 {
        std::mem::take(&mut self.busy_s)
    }

    /// Steps every environment with `actions[i]`, on the workers and this thread; returns the
    /// N transitions.
    pub fn step(&mut self, actions: &[usize]) -> Result<&[Transition]> {
        if actions.len() != self.n {
            return Err(Error::Config(format!(
                "{} actions for {} environments",
                actions.len(),
                self.n
            )));
        }
        self.failure()?;
        // The caller steps environments too, so a job of n environments wakes at most n - 1
        // workers: a single environment (DQN's) is stepped on this thread without a hand-over.
        let workers = self.workers.len().min(self.n - 1);
        let job = self.start_job(0..workers, 0..self.n, actions.to_vec());
        self.help(&job);
        self.wait_all()?;
        self.busy_s += std::mem::take(&mut self.job_busy_s);
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
        self.jobs[g] = Some(self.start_job(workers, envs, actions.to_vec()));
        self.failure()
    }

    /// Waits for group `g`'s step (started by [`Self::send_step`]), stepping on this thread
    /// the group's environments no worker has claimed yet, and returns its transitions; a
    /// group that is not stepping returns its last ones.
    pub fn wait(&mut self, g: usize) -> Result<&[Transition]> {
        if let Some(job) = self.jobs[g].take() {
            self.help(&job);
        }
        for w in self.groups[g].clone() {
            self.receive(w);
        }
        self.busy_s += std::mem::take(&mut self.job_busy_s);
        self.failure()?;
        Ok(&self.transitions[self.group(g)])
    }

    /// Sends one job over `envs` (a reset when `actions` is empty) to every worker of
    /// `workers`; a worker that is gone is recorded as the failure (the others still step
    /// every environment of the job).
    fn start_job(
        &mut self,
        workers: Range<usize>,
        envs: Range<usize>,
        actions: Vec<usize>,
    ) -> Arc<Job> {
        let job = Arc::new(Job {
            envs,
            actions,
            next: AtomicUsize::new(0),
        });
        for w in workers {
            if self.senders[w].send(Arc::clone(&job)).is_ok() {
                self.in_flight[w] = true;
            } else {
                self.failed
                    .get_or_insert((self.ranges[w].start, "its worker thread is gone".into()));
            }
        }
        job
    }

    /// Claims and runs, on the caller's thread, the environments of `job` that no worker has
    /// claimed yet: the caller would otherwise sleep while its workers step, and wake up
    /// only after the last of them has replied.
    fn help(&mut self, job: &Job) {
        let (busy, reply) = (self.helper)(job);
        self.job_busy_s = self.job_busy_s.max(busy);
        self.absorb(reply);
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
        self.job_busy_s = self.job_busy_s.max(busy);
        self.absorb(reply);
    }

    /// Stores a reply's transitions, or records its failure.
    fn absorb(&mut self, reply: std::result::Result<Vec<(usize, Transition)>, (usize, String)>) {
        match reply {
            Ok(ts) => {
                for (i, t) in ts {
                    self.transitions[i] = t;
                }
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
}

impl Drop for VecEnv {
    fn drop(&mut self) {
        self.senders.clear();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

/// A worker: runs each job it receives ([`run_job`]) and replies; exits after a panic.
fn worker<E: Environment>(
    envs: &[Mutex<E>],
    bufs: Buffers,
    rx: Receiver<Arc<Job>>,
    reply: Sender<Reply>,
) {
    while let Ok(job) = rx.recv() {
        let r = run_job(envs, bufs, &job);
        let dead = r.1.is_err();
        if reply.send(r).is_err() || dead {
            return;
        }
    }
}

/// Claims `job`'s environments one at a time until none is left, resets or steps each
/// (auto-resetting an ended episode), and returns the seconds spent and what it did: the
/// transitions of the claimed environments, or the first that panicked and the message.
fn run_job<E: Environment>(envs: &[Mutex<E>], bufs: Buffers, job: &Job) -> Reply {
    let slice = |base: *mut u8, i: usize| {
        // SAFETY: env `i` owns bytes [i * OBS_LEN, +OBS_LEN) of an N * OBS_LEN buffer that
        // outlives every job (VecEnv joins its workers on drop, and helps only through
        // `&mut self`), and this thread claimed env `i` in this job; see `Buffers`.
        unsafe { std::slice::from_raw_parts_mut(base.add(i * OBS_LEN), OBS_LEN) }
    };
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    loop {
        let k = job.next.fetch_add(1, Ordering::Relaxed);
        if k >= job.envs.len() {
            break;
        }
        let i = job.envs.start + k;
        // Claims are unique, so the lock is never contended; it is poisoned only after a
        // panic, after which the VecEnv fails every call.
        let mut e = envs[i].lock().unwrap_or_else(|p| p.into_inner());
        // The environment is not used again after a panic (the VecEnv fails every later
        // call), so observing it half-updated is impossible.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let obs = slice(bufs.obs, i);
            let Some(&action) = job.actions.get(k) else {
                e.reset(obs);
                return Transition::default();
            };
            let t = e.step(action, obs);
            if t.terminated || t.truncated {
                slice(bufs.final_obs, i).copy_from_slice(obs);
                e.reset(obs);
            }
            t
        }));
        match r {
            Ok(t) => out.push((i, t)),
            Err(p) => {
                let busy = started.elapsed().as_secs_f64();
                return (busy, Err((i, panic_message(p.as_ref()))));
            }
        }
    }
    (started.elapsed().as_secs_f64(), Ok(out))
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

    /// Env 0 waits in each step (up to 5 s, so that a wrong VecEnv fails instead of hanging)
    /// until every other env of the step has stepped, and answers reward 1 if they did.
    struct Waiter {
        index: usize,
        others: usize,
        stepped: Arc<AtomicUsize>,
    }

    impl Environment for Waiter {
        fn num_actions(&self) -> usize {
            2
        }
        fn reset(&mut self, obs: &mut [u8]) {
            obs.fill(0);
        }
        fn step(&mut self, _action: usize, _obs: &mut [u8]) -> Transition {
            let mut reward = 1.0;
            if self.index == 0 {
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while self.stepped.load(Ordering::SeqCst) < self.others {
                    if std::time::Instant::now() > deadline {
                        reward = 0.0;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                self.stepped.store(0, Ordering::SeqCst);
            } else {
                self.stepped.fetch_add(1, Ordering::SeqCst);
            }
            Transition {
                reward,
                ..Transition::default()
            }
        }
    }

    #[test]
    fn workers_claim_environments_so_a_slow_one_does_not_hold_up_its_chunk() {
        // 8 envs on 2 workers, env 0 slow until the other 7 have stepped: the worker that
        // claimed env 0 is busy, so the other must step envs 1..8 alone. With fixed chunks
        // (envs 0..4 on worker 0) envs 1..4 would wait behind env 0, which would time out.
        let stepped = Arc::new(AtomicUsize::new(0));
        let envs = (0..8)
            .map(|index| Waiter {
                index,
                others: 7,
                stepped: Arc::clone(&stepped),
            })
            .collect();
        let mut v = VecEnv::new(envs, 2).expect("vecenv");
        for round in 0..3 {
            let rewards: Vec<f32> = v
                .step(&[0; 8])
                .expect("step")
                .iter()
                .map(|t| t.reward)
                .collect();
            assert_eq!(rewards, [1.0; 8], "round {round}");
        }
        // The same within one of two groups (envs 4..8 on workers 2..4).
        let stepped = Arc::new(AtomicUsize::new(0));
        // Env 4 is the slow one (index 0 of its group); group 0 never steps.
        let envs = (0..8usize)
            .map(|i| Waiter {
                index: if i < 4 { 1 } else { i - 4 },
                others: 3,
                stepped: Arc::clone(&stepped),
            })
            .collect();
        let mut v = VecEnv::new(envs, 4).expect("vecenv").with_groups(2);
        v.send_step(1, &[0; 4]).expect("send");
        let rewards: Vec<f32> = v.wait(1).expect("wait").iter().map(|t| t.reward).collect();
        assert_eq!(rewards, [1.0; 4]);
    }

    #[test]
    fn busy_time_is_the_longest_thread_of_each_step() {
        // Two workers and the caller: env 0 sleeps 3 ms a step, env 1 2 ms. Whichever thread
        // steps env 0 takes at least 3 ms, so 5 steps take at least 15 ms of busy time, and
        // the busy time cannot exceed the wall time of the steps (the threads' sum, >= 25 ms,
        // would).
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
