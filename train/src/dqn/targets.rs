//! DQN's learning targets (Mnih et al. 2015; Double DQN, van Hasselt et al. 2016; CleanRL
//! `dqn_atari.py`): the epsilon schedule, the TD target, and the loss.

use tch::{Kind, Reduction, Tensor};

/// Linear epsilon schedule: `start` to `end` over `duration` steps, then `end` (CleanRL's
/// `linear_schedule(1.0, 0.01, exploration_fraction * total_timesteps, t)`).
pub fn epsilon(start: f64, end: f64, duration: u64, t: u64) -> f64 {
    if duration == 0 {
        return end;
    }
    let slope = (end - start) / duration as f64;
    (slope * t as f64 + start).max(end)
}

/// TD targets `r + gamma * (1 - terminated) * Q_target(s', a*)` `[B]`, where `a*` is the
/// argmax of the target network's `next_q_target` (Nature DQN) or, with `next_q_online`,
/// of the online network's values (Double DQN). Truncated transitions keep their bootstrap.
pub fn td_target(
    rewards: &Tensor,
    terminated: &Tensor,
    next_q_target: &Tensor,
    next_q_online: Option<&Tensor>,
    gamma: f64,
) -> Tensor {
    let next = match next_q_online {
        Some(online) => {
            let a = online.argmax(-1, true);
            next_q_target.gather(1, &a, false).squeeze_dim(-1)
        }
        None => next_q_target.max_dim(-1, false).0,
    };
    rewards + (1.0 - terminated) * next * gamma
}

/// Loss between `Q(s, a)` and the TD targets: Huber (smooth L1, delta 1: Nature DQN, SB3) or
/// mean squared error (CleanRL).
pub fn td_loss(q_taken: &Tensor, target: &Tensor, huber: bool) -> Tensor {
    if huber {
        q_taken.smooth_l1_loss(target, Reduction::Mean, 1.0)
    } else {
        (q_taken - target).square().mean(Kind::Float)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(t: &Tensor) -> Vec<f32> {
        Vec::try_from(t).expect("vec")
    }

    #[test]
    fn epsilon_schedule_by_hand() {
        // CleanRL defaults: 1.0 -> 0.01 over 0.10 * 10M = 1M steps.
        assert_eq!(epsilon(1.0, 0.01, 1_000_000, 0), 1.0);
        assert!((epsilon(1.0, 0.01, 1_000_000, 500_000) - 0.505).abs() < 1e-12);
        assert!((epsilon(1.0, 0.01, 1_000_000, 1_000_000) - 0.01).abs() < 1e-12);
        assert_eq!(epsilon(1.0, 0.01, 1_000_000, 5_000_000), 0.01);
    }

    #[test]
    fn nature_and_double_targets_by_hand() {
        // gamma 0.5. Target net Q(s') = [[1, 4], [3, 2]]; online net Q(s') = [[5, 0], [0, 5]].
        // Nature: max target = [4, 3]; Double: online argmax [0, 1] -> target [1, 2].
        // Sample 0: r 1, not terminated: Nature 1 + 0.5*4 = 3, Double 1 + 0.5*1 = 1.5.
        // Sample 1: r -1, terminated: -1 for both.
        let r = Tensor::from_slice(&[1.0f32, -1.0]);
        let term = Tensor::from_slice(&[0.0f32, 1.0]);
        let q_t = Tensor::from_slice(&[1.0f32, 4.0, 3.0, 2.0]).view([2, 2]);
        let q_o = Tensor::from_slice(&[5.0f32, 0.0, 0.0, 5.0]).view([2, 2]);
        assert_eq!(v(&td_target(&r, &term, &q_t, None, 0.5)), [3.0, -1.0]);
        assert_eq!(v(&td_target(&r, &term, &q_t, Some(&q_o), 0.5)), [1.5, -1.0]);
    }

    #[test]
    fn huber_vs_mse_by_hand() {
        // Errors 0.5 and 3: Huber = mean(0.5*0.25, 3 - 0.5) = mean(0.125, 2.5) = 1.3125;
        // MSE = mean(0.25, 9) = 4.625.
        let q = Tensor::from_slice(&[1.0f32, 5.0]);
        let y = Tensor::from_slice(&[1.5f32, 2.0]);
        assert!((td_loss(&q, &y, true).double_value(&[]) - 1.3125).abs() < 1e-6);
        assert!((td_loss(&q, &y, false).double_value(&[]) - 4.625).abs() < 1e-6);
    }
}
