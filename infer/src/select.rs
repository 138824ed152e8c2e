//! Action selection from a policy's output, seeded and reproducible.
//!
//! PPO: sample from `softmax(logits)` (the stochastic policy the PPO paper evaluates).
//! DQN: epsilon-greedy on `q_values` with epsilon 0.05 (Mnih et al. 2015 evaluation).
//! Greedy: argmax of either (ties go to the lowest index, as `torch.argmax`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::policy::Algo;

/// How an action is picked from the scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Selection {
    /// Sample from the softmax of the scores.
    Sample,
    /// Uniform random action with probability epsilon, else argmax.
    EpsilonGreedy(f32),
    /// Always argmax.
    Greedy,
}

impl Selection {
    /// The evaluation default for an algorithm: sampling for PPO, epsilon 0.05 for DQN.
    pub fn default_for(algo: Algo) -> Self {
        match algo {
            Algo::Ppo => Selection::Sample,
            Algo::Dqn => Selection::EpsilonGreedy(0.05),
        }
    }
}

/// The one spelling of a selection, in `play`'s summary and `eval.json`: `sample`, `greedy`,
/// `epsilon_greedy(0.05)`.
impl std::fmt::Display for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selection::Sample => f.write_str("sample"),
            Selection::Greedy => f.write_str("greedy"),
            Selection::EpsilonGreedy(e) => write!(f, "epsilon_greedy({e})"),
        }
    }
}

/// Picks actions with its own seeded RNG.
#[derive(Debug, Clone)]
pub struct ActionSelector {
    selection: Selection,
    rng: ChaCha8Rng,
    probs: Vec<f32>,
}

impl ActionSelector {
    /// A selector seeded with `seed`.
    pub fn new(selection: Selection, seed: u64) -> Self {
        Self {
            selection,
            rng: ChaCha8Rng::seed_from_u64(seed),
            probs: Vec::new(),
        }
    }

    /// The selection rule.
    pub fn selection(&self) -> Selection {
        self.selection
    }

    /// An action index for `scores` (non-empty).
    pub fn select(&mut self, scores: &[f32]) -> usize {
        match self.selection {
            Selection::Greedy => argmax(scores),
            Selection::EpsilonGreedy(eps) => {
                if self.rng.random::<f32>() < eps {
                    self.rng.random_range(0..scores.len())
                } else {
                    argmax(scores)
                }
            }
            Selection::Sample => {
                softmax(scores, &mut self.probs);
                let u: f32 = self.rng.random();
                let mut acc = 0.0;
                for (i, p) in self.probs.iter().enumerate() {
                    acc += p;
                    if u < acc {
                        return i;
                    }
                }
                // Rounding left u above the total: the last action with non-zero probability.
                self.probs.iter().rposition(|&p| p > 0.0).unwrap_or(0)
            }
        }
    }
}

/// Index of the largest score; the first one on ties; NaN never wins.
pub fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (i, &s) in scores.iter().enumerate() {
        if s > scores[best] || scores[best].is_nan() {
            best = i;
        }
    }
    best
}

/// Numerically stable softmax of `logits` into `out`.
pub fn softmax(logits: &[f32], out: &mut Vec<f32>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    out.clear();
    out.extend(logits.iter().map(|&l| (l - max).exp()));
    let sum: f32 = out.iter().sum();
    for p in out.iter_mut() {
        *p /= sum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_names() {
        assert_eq!(Selection::Sample.to_string(), "sample");
        assert_eq!(Selection::Greedy.to_string(), "greedy");
        assert_eq!(
            Selection::EpsilonGreedy(0.05).to_string(),
            "epsilon_greedy(0.05)"
        );
    }

    #[test]
    fn softmax_hand_values() {
        let mut p = Vec::new();
        // softmax([0, ln 3]) = [1/4, 3/4].
        softmax(&[0.0, 3f32.ln()], &mut p);
        assert!((p[0] - 0.25).abs() < 1e-6 && (p[1] - 0.75).abs() < 1e-6);
        // Large logits stay finite.
        softmax(&[1000.0, 1000.0], &mut p);
        assert_eq!(p, [0.5, 0.5]);
    }

    #[test]
    fn argmax_first_on_ties() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5]), 1);
    }

    #[test]
    fn sampling_follows_probabilities() {
        // p = [0.1, 0.2, 0.7]; 20,000 draws: each frequency within 0.015 (> 5 sigma).
        let logits: Vec<f32> = [0.1f32, 0.2, 0.7].iter().map(|p| p.ln()).collect();
        let mut s = ActionSelector::new(Selection::Sample, 7);
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            counts[s.select(&logits)] += 1;
        }
        for (c, p) in counts.iter().zip([0.1, 0.2, 0.7]) {
            assert!((*c as f64 / 20_000.0 - p).abs() < 0.015, "{counts:?}");
        }
    }

    #[test]
    fn epsilon_greedy_rate() {
        // eps = 0.05 over 4 actions: a non-greedy action with probability 0.05 * 3/4 = 0.0375.
        let mut s = ActionSelector::new(Selection::EpsilonGreedy(0.05), 3);
        let q = [0.0, 5.0, 1.0, 2.0];
        let n = 40_000;
        let other = (0..n).filter(|_| s.select(&q) != 1).count();
        assert!((other as f64 / n as f64 - 0.0375).abs() < 0.006, "{other}");
    }

    #[test]
    fn same_seed_same_actions() {
        let logits = [0.3, 0.1, -0.2, 0.5];
        let run = |seed| {
            let mut s = ActionSelector::new(Selection::Sample, seed);
            (0..50).map(|_| s.select(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(run(11), run(11));
        assert_ne!(run(11), run(12));
    }
}
