//! Seeds: one user seed spread into independent streams with splitmix64 (Steele et al. 2014),
//! one [`Stream`] per consumer.
//!
//! `derive(seed, id)` is splitmix64's output for the state `seed + id * 0x9E3779B97F4A7C15`,
//! i.e. the `id`-th output of a splitmix64 generator started at `seed`. For a fixed seed it is
//! a bijection of `id` (the increment is odd and every mixing step is invertible), so streams
//! with different ids never share a seed. [`Stream::id`] gives each consumer its own id range:
//!
//! | stream | id | consumer |
//! |---|---|---|
//! | [`Stream::Emulator`] | 1 | ALE's `random_seed` (sticky actions) of a played sequence of games |
//! | [`Stream::Selector`] | 2 | action selection (sampling, epsilon) of `play` / evaluation |
//! | [`Stream::NoopReset`] | 3 | NoopReset's no-op counts |
//! | [`Stream::Env`] | `1 << 56 \| resume << 32 \| i` | training environment `i` after `resume` resumes |
//! | [`Stream::Eval`] | `2 << 56` | the seed of a run's final evaluation |
//! | [`Stream::ActionSampling`] | `3 << 56 \| resume` | DQN's epsilon-greedy draws |
//! | [`Stream::ReplaySampling`] | `4 << 56 \| resume` | DQN's replay minibatch draws |
//! | [`Stream::Torch`] | `5 << 56 \| rank << 40 \| iteration` | libtorch's generator of MPI rank `rank` (0 in a single process) in PPO iteration `iteration` |
//!
//! A training environment's seed is itself split with the first three streams (its emulator
//! and its NoopReset), exactly as `play --seed S` splits `S`.

/// The `stream`-th seed derived from `seed`; different streams give unrelated seeds.
pub fn derive(seed: u64, stream: u64) -> u64 {
    let mut z = seed.wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A consumer of random numbers; see the module table for the id ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// The emulator's own seed (sticky actions) of a played sequence of games.
    Emulator,
    /// Action selection while playing or evaluating.
    Selector,
    /// NoopReset's no-op counts.
    NoopReset,
    /// Training environment `index` (< 2^32) after `resume` (< 2^24) resumes.
    Env {
        /// Environment index.
        index: u64,
        /// Resumes of the run so far (environments restart fresh games on every resume).
        resume: u64,
    },
    /// A training run's final evaluation (itself split like a `play` seed).
    Eval,
    /// DQN's epsilon-greedy action draws after `resume` resumes.
    ActionSampling {
        /// Resumes of the run so far.
        resume: u64,
    },
    /// DQN's replay sampling after `resume` resumes.
    ReplaySampling {
        /// Resumes of the run so far.
        resume: u64,
    },
    /// libtorch's generator for PPO iteration `iteration` (< 2^40) of MPI rank `rank`
    /// (< 2^16; 0 in a single process) (action sampling, minibatch order).
    Torch {
        /// The iteration, counted from 1.
        iteration: u64,
        /// The process's MPI rank.
        rank: u64,
    },
}

const KIND_SHIFT: u32 = 56;

impl Stream {
    /// The stream's id: distinct for distinct streams (see the module table).
    pub fn id(self) -> u64 {
        let kind = |k: u64, low: u64| (k << KIND_SHIFT) | (low & ((1 << KIND_SHIFT) - 1));
        match self {
            Self::Emulator => 1,
            Self::Selector => 2,
            Self::NoopReset => 3,
            Self::Env { index, resume } => {
                kind(1, ((resume & 0xff_ffff) << 32) | (index & 0xffff_ffff))
            }
            Self::Eval => kind(2, 0),
            Self::ActionSampling { resume } => kind(3, resume),
            Self::ReplaySampling { resume } => kind(4, resume),
            Self::Torch { iteration, rank } => {
                kind(5, ((rank & 0xffff) << 40) | (iteration & 0xff_ffff_ffff))
            }
        }
    }
}

/// The seed of `stream` under `seed`.
pub fn stream(seed: u64, stream: Stream) -> u64 {
    derive(seed, stream.id())
}

/// An ALE `random_seed` from any u64: positive and never 0 (ALE reads 0 as "from the clock").
pub fn ale(seed: u64) -> u32 {
    (seed % 0x7fff_fffe) as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ale_seeds_are_never_zero_and_fit_a_signed_int() {
        for s in [0, 1, 0x7fff_fffd, 0x7fff_fffe, u64::MAX] {
            let a = ale(s);
            assert!(a >= 1 && a <= i32::MAX as u32, "{s} -> {a}");
        }
    }

    #[test]
    fn derive_is_splitmix64() {
        // Rosetta Code, "Pseudo-random numbers/Splitmix64": the first five outputs of
        // splitmix64 seeded with 1234567 (the k-th output mixes seed + k * 0x9E3779B97F4A7C15,
        // which is derive(seed, k)); and the first output for seed 0, 0xE220A8397B1DCDAF.
        let want: [u64; 5] = [
            6457827717110365317,
            3203168211198807973,
            9817491932198370423,
            4593380528125082431,
            16408922859458223821,
        ];
        for (k, w) in (1..).zip(want) {
            assert_eq!(derive(1234567, k), w, "output {k}");
        }
        assert_eq!(derive(0, 1), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn stream_ids_of_different_consumers_differ() {
        let mut ids = std::collections::HashSet::new();
        let mut all = vec![
            Stream::Emulator,
            Stream::Selector,
            Stream::NoopReset,
            Stream::Eval,
        ];
        for r in 0..3 {
            for i in 0..64 {
                all.push(Stream::Env {
                    index: i,
                    resume: r,
                });
            }
            all.push(Stream::ActionSampling { resume: r });
            all.push(Stream::ReplaySampling { resume: r });
        }
        for it in 1..=10_000 {
            for rank in 0..3 {
                all.push(Stream::Torch {
                    iteration: it,
                    rank,
                });
            }
        }
        for s in &all {
            assert!(
                ids.insert(s.id()),
                "{s:?} shares id {} with another stream",
                s.id()
            );
        }
    }
}
