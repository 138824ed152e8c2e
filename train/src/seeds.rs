//! Every seed a training run draws, from its `--seed` through [`cartridge_infer::seed`]'s
//! streams (the derivation and id ranges are tabled there). Each consumer has its own
//! stream, so no two share a seed: environment `i`'s emulator and NoopReset, the final
//! evaluation's emulator, sampling and NoopReset, libtorch per PPO iteration, DQN's
//! epsilon-greedy and replay draws. Environments and DQN's generators are reseeded on each
//! resume (`resume` counts them), as environments restart fresh games then.

use cartridge_infer::seed::{stream, Stream};

/// The seeds of one process of a run: `--seed`, the number of resumes before it, and its MPI
/// rank (0 in a single process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunSeeds {
    /// The run's `--seed`.
    pub seed: u64,
    /// Resumes of the run before this process.
    pub resume: u64,
    /// The process's MPI rank; its environments are `rank * num_envs ..` of the run's
    /// ([`Self::env`] takes the run-wide index), its libtorch streams its own.
    pub rank: u64,
}

/// The seeds of one environment (as `play --seed` splits its seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvSeeds {
    /// ALE's random seed (sticky actions).
    pub emulator: u64,
    /// NoopReset's generator.
    pub noop_reset: u64,
    /// Action selection (evaluation only).
    pub selector: u64,
}

impl EnvSeeds {
    /// The three streams of `seed`.
    pub fn split(seed: u64) -> Self {
        Self {
            emulator: stream(seed, Stream::Emulator),
            noop_reset: stream(seed, Stream::NoopReset),
            selector: stream(seed, Stream::Selector),
        }
    }
}

impl RunSeeds {
    /// Training environment `index`, counted over the whole run (rank `r`'s environment `i`
    /// of `n` is `r * n + i`).
    pub fn env(self, index: usize) -> EnvSeeds {
        EnvSeeds::split(stream(
            self.seed,
            Stream::Env {
                index: index as u64,
                resume: self.resume,
            },
        ))
    }

    /// The seed of the final evaluation (`play --seed` of this value replays it).
    pub fn eval(self) -> u64 {
        stream(self.seed, Stream::Eval)
    }

    /// libtorch's generator of this rank in PPO iteration `iteration`.
    pub fn torch(self, iteration: u64) -> u64 {
        stream(
            self.seed,
            Stream::Torch {
                iteration,
                rank: self.rank,
            },
        )
    }

    /// DQN's epsilon-greedy generator.
    pub fn action_sampling(self) -> u64 {
        stream(
            self.seed,
            Stream::ActionSampling {
                resume: self.resume,
            },
        )
    }

    /// DQN's replay-sampling generator.
    pub fn replay_sampling(self) -> u64 {
        stream(
            self.seed,
            Stream::ReplaySampling {
                resume: self.resume,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Inserts every seed, failing on the first one two consumers share.
    fn all_distinct(seeds: impl IntoIterator<Item = (String, u64)>) {
        let mut seen: HashMap<u64, String> = HashMap::new();
        for (who, s) in seeds {
            if let Some(other) = seen.insert(s, who.clone()) {
                panic!("{who} and {other} share the seed {s}");
            }
        }
    }

    fn env_seeds(r: RunSeeds, n: usize) -> Vec<(String, u64)> {
        (0..n)
            .flat_map(|i| {
                let e = r.env(i);
                [
                    (
                        format!("env {i} emulator (resume {})", r.resume),
                        e.emulator,
                    ),
                    (format!("env {i} noop (resume {})", r.resume), e.noop_reset),
                ]
            })
            .collect()
    }

    fn eval_seeds(r: RunSeeds) -> Vec<(String, u64)> {
        let e = EnvSeeds::split(r.eval());
        vec![
            ("eval emulator".into(), e.emulator),
            ("eval selector".into(), e.selector),
            ("eval noop".into(), e.noop_reset),
        ]
    }

    #[test]
    fn every_stream_of_a_ppo_run_is_distinct() {
        // CleanRL defaults: 8 envs, 9765 iterations; two resumes; a single process, and
        // (below) 2 MPI ranks of 8 envs each, whose environments are 0..8 and 8..16 of the run.
        let mut all = Vec::new();
        for resume in 0..3 {
            let r = RunSeeds {
                seed: 1,
                resume,
                rank: 0,
            };
            all.extend(env_seeds(r, 16));
        }
        let r = RunSeeds {
            seed: 1,
            resume: 0,
            rank: 0,
        };
        all.extend(eval_seeds(r));
        for rank in 0..2 {
            let r = RunSeeds { rank, ..r };
            all.extend(
                (1..=9765).map(|it| (format!("rank {rank} torch iteration {it}"), r.torch(it))),
            );
        }
        all_distinct(all);
        // Rank 0 draws exactly what a single process draws.
        assert_eq!(
            r.torch(7),
            stream(
                1,
                Stream::Torch {
                    iteration: 7,
                    rank: 0
                }
            )
        );
    }

    #[test]
    fn every_stream_of_a_dqn_run_is_distinct() {
        let mut all = Vec::new();
        for resume in 0..3 {
            let r = RunSeeds {
                seed: 1,
                resume,
                rank: 0,
            };
            all.extend(env_seeds(r, 4));
            all.push((format!("actions (resume {resume})"), r.action_sampling()));
            all.push((format!("replay (resume {resume})"), r.replay_sampling()));
        }
        all.extend(eval_seeds(RunSeeds {
            seed: 1,
            resume: 0,
            rank: 0,
        }));
        all_distinct(all);
    }
}
