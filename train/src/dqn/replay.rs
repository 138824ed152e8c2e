//! Replay memory for DQN that stores every 84x84 frame once and rebuilds the 4-frame stacks
//! at sample time (the layout of DeepMind's original DQN and Dopamine's
//! `OutOfGraphReplayBuffer`, rather than CleanRL's stacked storage, which needs about 28 GB
//! for 1M transitions).
//!
//! One ring of frames per environment. A slot holds the newest frame of one observation plus
//! the action, reward and flags of the transition taken from it. When an episode ends, the
//! final observation's frame goes into a *terminal* slot (never sampled, only read as the
//! next observation, which a truncated transition bootstraps from) and the next episode starts
//! in a new slot flagged *first*. A stack never reaches back past its episode's first slot:
//! older positions repeat the first frame, as FrameStack's reset fill does. Sampling draws a
//! transition uniformly and only from slots whose stack and next stack are still in the ring.
//!
//! Memory: `capacity * 7056` bytes of frames plus 6 bytes of metadata per slot
//! (1M transitions: 7.06 GB).

use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use rand::Rng;

use cartridge_contract::{FRAME_LEN, FRAME_STACK, OBS_LEN};

use crate::{Error, Result};

const FIRST: u8 = 1;
const TERMINAL_SLOT: u8 = 2;
const TERMINATED: u8 = 4;
const TRUNCATED: u8 = 8;

/// Bytes a memory of `capacity` transitions needs.
pub fn bytes_needed(capacity: usize) -> u64 {
    capacity as u64 * (FRAME_LEN as u64 + 6)
}

#[derive(Debug)]
struct Ring {
    frames: Vec<u8>,
    actions: Vec<u8>,
    rewards: Vec<f32>,
    flags: Vec<u8>,
    /// Slots written so far (logical index of the next slot).
    count: u64,
}

impl Ring {
    fn new(cap: usize) -> Self {
        Self {
            frames: vec![0; cap * FRAME_LEN],
            actions: vec![0; cap],
            rewards: vec![0.0; cap],
            flags: vec![0; cap],
            count: 0,
        }
    }

    fn cap(&self) -> u64 {
        self.flags.len() as u64
    }

    fn slot(&self, logical: u64) -> usize {
        (logical % self.cap()) as usize
    }

    fn oldest(&self) -> u64 {
        self.count.saturating_sub(self.cap())
    }

    fn write(&mut self, frame: &[u8], flags: u8) {
        let s = self.slot(self.count);
        self.frames[s * FRAME_LEN..(s + 1) * FRAME_LEN].copy_from_slice(frame);
        self.flags[s] = flags;
        self.actions[s] = 0;
        self.rewards[s] = 0.0;
        self.count += 1;
    }

    /// Logical indices of the 4 frames of the stack ending at `t`, oldest first.
    fn stack_indices(&self, t: u64) -> [u64; FRAME_STACK] {
        let mut idx = [t; FRAME_STACK];
        let mut cur = t;
        for k in (0..FRAME_STACK - 1).rev() {
            if self.flags[self.slot(cur)] & FIRST == 0 && cur > 0 {
                cur -= 1;
            }
            idx[k] = cur;
        }
        idx
    }

    fn write_stack(&self, t: u64, out: &mut [u8]) {
        for (k, l) in self.stack_indices(t).iter().enumerate() {
            let s = self.slot(*l);
            out[k * FRAME_LEN..(k + 1) * FRAME_LEN]
                .copy_from_slice(&self.frames[s * FRAME_LEN..(s + 1) * FRAME_LEN]);
        }
    }

    /// Sampleable logical range `[lo, hi]`: the stack of `t` (3 slots back) and `t + 1` must be
    /// in the ring.
    fn range(&self) -> Option<(u64, u64)> {
        let lo = self.oldest() + (FRAME_STACK as u64 - 1);
        let hi = self.count.checked_sub(2)?;
        (lo <= hi).then_some((lo, hi))
    }
}

/// A sampled minibatch. Observations are `[B, 4, 84, 84]` u8, oldest frame first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    /// Observations the actions were taken from.
    pub obs: Vec<u8>,
    /// Observations after the actions (the final observation at an episode end).
    pub next_obs: Vec<u8>,
    /// Action indices.
    pub actions: Vec<i64>,
    /// Rewards (as stored: clipped for Atari training).
    pub rewards: Vec<f32>,
    /// 1.0 where the episode terminated (no bootstrap), else 0.0; truncation is not termination.
    pub terminated: Vec<f32>,
}

/// Frame-deduplicating replay memory for `num_envs` environments.
#[derive(Debug)]
pub struct ReplayMemory {
    rings: Vec<Ring>,
}

impl ReplayMemory {
    /// A memory holding about `capacity` transitions in total (`capacity / num_envs` per
    /// environment, at least 8). Errors if it cannot hold a single stack.
    pub fn new(capacity: usize, num_envs: usize) -> Result<Self> {
        let per_env = capacity / num_envs.max(1);
        if num_envs == 0 || per_env < 8 {
            return Err(Error::Config(format!(
                "a replay memory of {capacity} transitions for {num_envs} envs is too small \
                 (at least 8 per environment)"
            )));
        }
        Ok(Self {
            rings: (0..num_envs).map(|_| Ring::new(per_env)).collect(),
        })
    }

    /// Starts an episode of env `env` with its first observation's newest frame `[84, 84]`.
    pub fn start_episode(&mut self, env: usize, frame: &[u8]) {
        self.rings[env].write(frame, FIRST);
    }

    /// Records the transition from env `env`'s latest observation: `action`, `reward`, how it
    /// ended, and the newest frame of the next observation (the final one if the episode
    /// ended; call [`Self::start_episode`] with the reset frame next).
    pub fn push(
        &mut self,
        env: usize,
        action: usize,
        reward: f32,
        terminated: bool,
        truncated: bool,
        next_frame: &[u8],
    ) {
        let ring = &mut self.rings[env];
        debug_assert!(ring.count > 0, "start_episode first");
        let s = ring.slot(ring.count - 1);
        ring.actions[s] = action as u8;
        ring.rewards[s] = reward;
        ring.flags[s] |=
            if terminated { TERMINATED } else { 0 } | if truncated { TRUNCATED } else { 0 };
        let flags = if terminated || truncated {
            TERMINAL_SLOT
        } else {
            0
        };
        ring.write(next_frame, flags);
    }

    /// Ends every environment's current episode without a transition (its last slot becomes a
    /// terminal slot, never sampled): for a memory loaded from a checkpoint, whose
    /// environments restart from fresh games.
    pub fn cut_episodes(&mut self) {
        for ring in &mut self.rings {
            if ring.count > 0 {
                let s = ring.slot(ring.count - 1);
                ring.flags[s] |= TERMINAL_SLOT;
            }
        }
    }

    /// Sampleable transitions now (terminal slots aside, an upper bound).
    pub fn len(&self) -> usize {
        self.rings
            .iter()
            .map(|r| r.range().map_or(0, |(lo, hi)| (hi - lo + 1) as usize))
            .sum()
    }

    /// Whether nothing can be sampled yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stack `[4, 84, 84]` ending at logical slot `t` of env `env` (for tests and tools).
    pub fn stack(&self, env: usize, t: u64) -> Vec<u8> {
        let mut out = vec![0; FRAME_STACK * FRAME_LEN];
        self.rings[env].write_stack(t, &mut out);
        out
    }

    /// Draws `batch` transitions uniformly (with replacement) over all environments'
    /// sampleable slots (terminal slots excluded). Errors if there is none.
    ///
    /// Draws over the sampleable ranges and rejects terminal slots (about one per episode,
    /// so almost never); after `64 * batch + 1024` rejections it lists the valid slots and
    /// draws from the list instead, so the call always ends.
    pub fn sample(&self, batch: usize, rng: &mut impl Rng) -> Result<Batch> {
        let sizes: Vec<u64> = self
            .rings
            .iter()
            .map(|r| r.range().map_or(0, |(lo, hi)| hi - lo + 1))
            .collect();
        let total: u64 = sizes.iter().sum();
        if total == 0 {
            return Err(Error::Replay(
                "no complete transition yet (sample after learning_starts steps)".into(),
            ));
        }
        let mut b = Batch {
            obs: vec![0; batch * OBS_LEN],
            next_obs: vec![0; batch * OBS_LEN],
            ..Batch::default()
        };
        let mut rejected = 0;
        let mut valid: Option<Vec<(usize, u64)>> = None;
        let mut i = 0;
        while i < batch {
            let (env, t) = match &valid {
                Some(list) => list[rng.random_range(0..list.len())],
                None => {
                    let mut k = rng.random_range(0..total);
                    let env = sizes
                        .iter()
                        .position(|&s| {
                            let hit = k < s;
                            if !hit {
                                k -= s;
                            }
                            hit
                        })
                        .unwrap_or(0);
                    let Some((lo, _)) = self.rings[env].range() else {
                        continue;
                    };
                    (env, lo + k)
                }
            };
            let ring = &self.rings[env];
            let s = ring.slot(t);
            if ring.flags[s] & TERMINAL_SLOT != 0 {
                rejected += 1;
                if rejected > 64 * batch + 1024 && valid.is_none() {
                    let list = self.valid_slots();
                    if list.is_empty() {
                        return Err(Error::Replay(format!(
                            "none of its {total} stored transitions can be sampled: every one \
                             is an episode's terminal slot; collect more steps before learning"
                        )));
                    }
                    valid = Some(list);
                }
                continue;
            }
            self.write_transition(env, t, i, &mut b);
            i += 1;
        }
        Ok(b)
    }

    /// Every sampleable `(env, logical slot)`.
    fn valid_slots(&self) -> Vec<(usize, u64)> {
        let mut out = Vec::new();
        for (env, ring) in self.rings.iter().enumerate() {
            if let Some((lo, hi)) = ring.range() {
                out.extend(
                    (lo..=hi)
                        .filter(|&t| ring.flags[ring.slot(t)] & TERMINAL_SLOT == 0)
                        .map(|t| (env, t)),
                );
            }
        }
        out
    }

    /// Writes the transition at logical slot `t` of env `env` into row `i` of `b`.
    fn write_transition(&self, env: usize, t: u64, i: usize, b: &mut Batch) {
        let ring = &self.rings[env];
        let s = ring.slot(t);
        ring.write_stack(t, &mut b.obs[i * OBS_LEN..(i + 1) * OBS_LEN]);
        ring.write_stack(t + 1, &mut b.next_obs[i * OBS_LEN..(i + 1) * OBS_LEN]);
        b.actions.push(ring.actions[s] as i64);
        b.rewards.push(ring.rewards[s]);
        b.terminated.push(if ring.flags[s] & TERMINATED != 0 {
            1.0
        } else {
            0.0
        });
    }
}

const MAGIC: &[u8; 16] = b"CARTRIDGE-REPLY1";

impl ReplayMemory {
    /// Writes the memory to `path` (`replay.bin`: a 16-byte magic, the env count, then per
    /// env its capacity, slots written, frames, actions, rewards (f32 LE) and flags), through
    /// a temporary file renamed into place, so a crash leaves no partial file behind.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        {
            let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
            w.write_all(MAGIC)?;
            w.write_all(&(self.rings.len() as u64).to_le_bytes())?;
            for r in &self.rings {
                w.write_all(&r.cap().to_le_bytes())?;
                w.write_all(&r.count.to_le_bytes())?;
                w.write_all(&r.frames)?;
                w.write_all(&r.actions)?;
                for x in &r.rewards {
                    w.write_all(&x.to_le_bytes())?;
                }
                w.write_all(&r.flags)?;
            }
            w.flush()?;
        }
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| Error::Io(e.error))?;
        Ok(())
    }

    /// Reads a memory written by [`Self::save`] into this one, which must have the same
    /// number of environments and capacity; errors name what differs.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let bad = |reason: String| Error::Resume {
            path: path.to_path_buf(),
            reason,
        };
        let mut r = BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
        let u64_of = |r: &mut BufReader<std::fs::File>| -> Result<u64> {
            let mut b = [0u8; 8];
            r.read_exact(&mut b)?;
            Ok(u64::from_le_bytes(b))
        };
        let mut magic = [0u8; 16];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(bad("not a Cartridge replay memory file".into()));
        }
        let envs = u64_of(&mut r)?;
        if envs != self.rings.len() as u64 {
            return Err(bad(format!(
                "saved for {envs} envs, the run has {}",
                self.rings.len()
            )));
        }
        for ring in &mut self.rings {
            let cap = u64_of(&mut r)?;
            if cap != ring.cap() {
                return Err(bad(format!(
                    "saved with {cap} slots per env, the run has {}",
                    ring.cap()
                )));
            }
            ring.count = u64_of(&mut r)?;
            r.read_exact(&mut ring.frames)?;
            r.read_exact(&mut ring.actions)?;
            let mut rewards = vec![0u8; ring.rewards.len() * 4];
            r.read_exact(&mut rewards)?;
            for (x, c) in ring.rewards.iter_mut().zip(rewards.chunks_exact(4)) {
                *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            r.read_exact(&mut ring.flags)?;
        }
        Ok(())
    }
}

impl crate::checkpoint::SaveToFile for ReplayMemory {
    fn save_to(&self, path: &Path) -> Result<()> {
        self.save(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn f(v: u8) -> Vec<u8> {
        vec![v; FRAME_LEN]
    }

    /// The first byte of each frame of a stack.
    fn ids(stack: &[u8]) -> Vec<u8> {
        stack.chunks(FRAME_LEN).map(|c| c[0]).collect()
    }

    /// Runs `f` in a thread; fails the test if it takes longer than 10 s (a hang).
    fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("sampling did not return")
    }

    /// One env, capacity 8: an episode 1 -> 2 -> 3 -> 4 (terminated), then episode 5 begins.
    /// Sampleable range [3, count - 2]; slot 3 is the first episode's terminal slot.
    fn terminal_heavy_memory(extra: &[u8]) -> ReplayMemory {
        let mut m = ReplayMemory::new(8, 1).expect("mem");
        m.start_episode(0, &f(1));
        m.push(0, 0, 0.0, false, false, &f(2));
        m.push(0, 0, 0.0, false, false, &f(3));
        m.push(0, 0, 1.0, true, false, &f(4));
        m.start_episode(0, &f(5));
        for &x in extra {
            m.push(0, 1, 0.5, false, false, &f(x));
        }
        m
    }

    #[test]
    fn sampling_a_memory_of_only_terminal_slots_errors_instead_of_spinning() {
        let r = within_10s(|| {
            let m = terminal_heavy_memory(&[]);
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            m.sample(4, &mut rng).map(|_| ())
        });
        match r {
            Err(Error::Replay(msg)) => assert!(msg.contains("terminal slot"), "{msg}"),
            other => panic!("expected a replay error, got {other:?}"),
        }
    }

    #[test]
    fn sampling_skips_terminal_slots() {
        // Range [3, 4]: slot 3 terminal, slot 4 the second episode's first transition
        // ([5 5 5 5] -> [5 5 5 6], action 1, reward 0.5): every draw must be slot 4.
        let b = within_10s(|| {
            let m = terminal_heavy_memory(&[6]);
            let mut rng = ChaCha8Rng::seed_from_u64(2);
            m.sample(64, &mut rng).expect("sample")
        });
        for i in 0..64 {
            assert_eq!(ids(&b.obs[i * OBS_LEN..(i + 1) * OBS_LEN]), [5, 5, 5, 5]);
            assert_eq!(
                ids(&b.next_obs[i * OBS_LEN..(i + 1) * OBS_LEN]),
                [5, 5, 5, 6]
            );
        }
        assert_eq!(b.actions, vec![1; 64]);
        assert_eq!(b.rewards, vec![0.5; 64]);
    }

    #[test]
    fn episode_start_repeats_the_first_frame() {
        let mut m = ReplayMemory::new(16, 1).expect("mem");
        m.start_episode(0, &f(10));
        m.push(0, 1, 0.0, false, false, &f(11));
        m.push(0, 2, 1.0, false, false, &f(12));
        // Slot 0: [10 10 10 10]; slot 1: [10 10 10 11]; slot 2: [10 10 11 12].
        assert_eq!(ids(&m.stack(0, 0)), [10, 10, 10, 10]);
        assert_eq!(ids(&m.stack(0, 1)), [10, 10, 10, 11]);
        assert_eq!(ids(&m.stack(0, 2)), [10, 10, 11, 12]);
    }

    #[test]
    fn stacks_never_mix_two_episodes() {
        let mut m = ReplayMemory::new(16, 1).expect("mem");
        m.start_episode(0, &f(1));
        m.push(0, 0, 0.0, false, false, &f(2));
        m.push(0, 0, 0.0, true, false, &f(3)); // final frame 3 in a terminal slot (slot 2)
        m.start_episode(0, &f(50)); // slot 3
        m.push(0, 0, 0.0, false, false, &f(51)); // slot 4
        assert_eq!(
            ids(&m.stack(0, 2)),
            [1, 1, 2, 3],
            "next obs of the terminated step"
        );
        assert_eq!(ids(&m.stack(0, 3)), [50, 50, 50, 50]);
        assert_eq!(ids(&m.stack(0, 4)), [50, 50, 50, 51]);
    }

    #[test]
    fn wrap_around_reads_the_right_slots() {
        // 8 slots; 13 frames of one episode: logical 5..=12 remain, frames 100..=112.
        let mut m = ReplayMemory::new(8, 1).expect("mem");
        m.start_episode(0, &f(100));
        for v in 101..=112 {
            m.push(0, 0, 0.0, false, false, &f(v));
        }
        assert_eq!(ids(&m.stack(0, 12)), [109, 110, 111, 112]);
        assert_eq!(ids(&m.stack(0, 8)), [105, 106, 107, 108]);
        // Sampleable t: 5 + 3 = 8 ..= 12 - 1 = 11 -> 4 transitions.
        assert_eq!(m.len(), 4);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let b = m.sample(200, &mut rng).expect("sample");
        for i in 0..200 {
            let o = ids(&b.obs[i * 4 * FRAME_LEN..(i + 1) * 4 * FRAME_LEN]);
            let n = ids(&b.next_obs[i * 4 * FRAME_LEN..(i + 1) * 4 * FRAME_LEN]);
            assert!(
                (108..=111).contains(&o[3]),
                "sampled an overwritten or unfinished slot: {o:?}"
            );
            assert_eq!(o, [o[3] - 3, o[3] - 2, o[3] - 1, o[3]]);
            assert_eq!(n, [o[3] - 2, o[3] - 1, o[3], o[3] + 1]);
        }
    }

    #[test]
    fn sampling_matches_a_naive_reference_across_envs_episodes_and_wraps() {
        // Two envs, random episode lengths, tiny rings that wrap many times. Every sampled
        // transition (both stacks, the action, the reward, the termination flag, which is 0
        // for a truncation) must equal what a naive log of whole episodes says.
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let mut m = ReplayMemory::new(2 * 23, 2).expect("mem");
        // The reference, per env: every frame written as (episode, frame id, first of its
        // episode, ends an episode, and for a frame pushed as a next observation, the
        // transition that led to it: action, reward, terminated).
        #[derive(Clone, Copy)]
        struct Entry {
            episode: u32,
            frame: u8,
            terminal: bool,
            action: i64,
            reward: f32,
            terminated: bool,
        }
        let mut frame_id: u32 = 0;
        let mut log: Vec<Vec<Entry>> = vec![Vec::new(), Vec::new()];
        let mut episode = [0u32; 2];
        let next = |v: &mut u32| {
            *v += 1;
            (*v % 251) as u8
        };
        let first = |episode: u32, frame: u8| Entry {
            episode,
            frame,
            terminal: false,
            action: -1,
            reward: f32::NAN,
            terminated: false,
        };
        for e in 0..2 {
            let fr = next(&mut frame_id);
            m.start_episode(e, &f(fr));
            log[e].push(first(episode[e], fr));
        }
        let (mut checked, mut truncations) = (0, 0);
        for step in 0..2000 {
            for e in 0..2 {
                let fr = next(&mut frame_id);
                let done = rng.random_range(0..9) == 0;
                let trunc = done && rng.random_bool(0.3);
                let action = rng.random_range(0..4usize);
                let reward = [-1.0f32, 0.0, 1.0, 0.5][rng.random_range(0..4)];
                m.push(e, action, reward, done && !trunc, trunc, &f(fr));
                log[e].push(Entry {
                    episode: episode[e],
                    frame: fr,
                    terminal: done,
                    action: action as i64,
                    reward,
                    terminated: done && !trunc,
                });
                if done {
                    episode[e] += 1;
                    let fr = next(&mut frame_id);
                    m.start_episode(e, &f(fr));
                    log[e].push(first(episode[e], fr));
                }
            }
            if step > 20 && step % 50 == 0 {
                let b = m.sample(64, &mut rng).expect("sample");
                for i in 0..64 {
                    let o = ids(&b.obs[i * 4 * FRAME_LEN..(i + 1) * 4 * FRAME_LEN]);
                    let n = ids(&b.next_obs[i * 4 * FRAME_LEN..(i + 1) * 4 * FRAME_LEN]);
                    let sampled = (b.actions[i], b.rewards[i], b.terminated[i]);
                    // Find the slot in either env's recent log whose stacks and transition
                    // match.
                    let found = (0..2).find_map(|e| {
                        let l = &log[e];
                        let oldest = l.len().saturating_sub(23);
                        (oldest + 3..l.len() - 1).find_map(|t| {
                            if l[t].terminal {
                                return None;
                            }
                            let stack = |t: usize| {
                                let ep = l[t].episode;
                                let mut out = Vec::new();
                                for k in (0..4).rev() {
                                    let mut j = t.saturating_sub(k);
                                    while l[j].episode != ep {
                                        j += 1;
                                    }
                                    out.push(l[j].frame);
                                }
                                out
                            };
                            let to = l[t + 1];
                            let transition =
                                (to.action, to.reward, if to.terminated { 1.0 } else { 0.0 });
                            (stack(t) == o && stack(t + 1) == n && transition == sampled)
                                .then_some(to)
                        })
                    });
                    let to = found.unwrap_or_else(|| {
                        panic!(
                            "step {step}: sampled {o:?} -> {n:?} with (action, reward, \
                             terminated) {sampled:?} is not a logged transition"
                        )
                    });
                    checked += 1;
                    truncations += usize::from(to.terminal && !to.terminated);
                }
            }
        }
        assert_eq!(checked, 39 * 64);
        assert!(truncations > 0, "no truncated transition was sampled");
    }

    #[test]
    fn memory_figure_for_one_million() {
        // 1M transitions: 1e6 * (7056 + 6) bytes = 7.062 GB <= 7.2 GB.
        assert_eq!(bytes_needed(1_000_000), 7_062_000_000);
    }

    #[test]
    fn save_and_load_round_trip() {
        let mut m = ReplayMemory::new(16, 2).expect("memory");
        for env in 0..2 {
            m.start_episode(env, &f(1 + env as u8));
            for k in 0..11u8 {
                let end = k == 5;
                m.push(
                    env,
                    (k % 3) as usize,
                    k as f32 - 2.5,
                    end,
                    false,
                    &f(10 + k),
                );
                if end {
                    m.start_episode(env, &f(100 + k));
                }
            }
        }
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("replay.bin");
        m.save(&path).expect("save");
        let mut back = ReplayMemory::new(16, 2).expect("memory");
        back.load(&path).expect("load");
        let mut r1 = ChaCha8Rng::seed_from_u64(5);
        let mut r2 = ChaCha8Rng::seed_from_u64(5);
        assert_eq!(
            m.sample(64, &mut r1).expect("a"),
            back.sample(64, &mut r2).expect("b")
        );
        let mut wrong = ReplayMemory::new(32, 2).expect("memory");
        let e = wrong.load(&path).expect_err("capacity differs");
        assert!(e.to_string().contains("8 slots per env"), "{e}");
    }
}
