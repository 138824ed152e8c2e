//! Generalized Advantage Estimation (Schulman et al. 2016, eq. 16), as CleanRL's
//! `ppo_atari.py` and baselines' `ppo2/runner.py` compute it, with terminated and truncated
//! episodes kept apart: a truncated step's reward already includes `gamma * V(final obs)`
//! (the time-limit bootstrap of SB3's `OnPolicyAlgorithm.collect_rollouts`), and both end
//! the recursion at the episode boundary.

/// Advantages and returns for a rollout of `T` steps of `N` environments, row-major `[T, N]`.
///
/// - `rewards[t, n]`: reward after acting at step `t` (bootstrap already added on truncation);
/// - `values[t, n]`: `V(obs_t)`;
/// - `dones[t, n]`: the episode ended with step `t` (terminated or truncated), so
///   `obs_{t+1}` starts a new episode;
/// - `next_value[n]`: `V(obs_T)` after the rollout.
///
/// `delta_t = r_t + gamma * V_{t+1} * (1 - done_t) - V_t`,
/// `A_t = delta_t + gamma * lambda * (1 - done_t) * A_{t+1}`, returns `A_t + V_t`.
/// Panics if the lengths disagree.
pub fn gae(
    rewards: &[f32],
    values: &[f32],
    dones: &[bool],
    next_value: &[f32],
    gamma: f32,
    lambda: f32,
) -> (Vec<f32>, Vec<f32>) {
    let n = next_value.len();
    assert!(n > 0 && rewards.len() % n == 0);
    assert!(values.len() == rewards.len() && dones.len() == rewards.len());
    let t_len = rewards.len() / n;
    let mut adv = vec![0f32; rewards.len()];
    let mut last = vec![0f32; n];
    for t in (0..t_len).rev() {
        for e in 0..n {
            let i = t * n + e;
            let next_v = if t + 1 == t_len {
                next_value[e]
            } else {
                values[i + n]
            };
            let not_done = if dones[i] { 0.0 } else { 1.0 };
            let delta = rewards[i] + gamma * next_v * not_done - values[i];
            last[e] = delta + gamma * lambda * not_done * last[e];
            adv[i] = last[e];
        }
    }
    let returns = adv.iter().zip(values).map(|(a, v)| a + v).collect();
    (adv, returns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-5, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn three_steps_by_hand() {
        // One env, gamma 0.5, lambda 0.5, rewards 1, 0, 2, values 0.5, 1, 1.5, V(next) 2.
        // delta2 = 2 + 0.5*2 - 1.5 = 1.5;        A2 = 1.5
        // delta1 = 0 + 0.5*1.5 - 1 = -0.25;     A1 = -0.25 + 0.25*1.5 = 0.125
        // delta0 = 1 + 0.5*1 - 0.5 = 1.0;       A0 = 1.0 + 0.25*0.125 = 1.03125
        let (a, r) = gae(
            &[1.0, 0.0, 2.0],
            &[0.5, 1.0, 1.5],
            &[false; 3],
            &[2.0],
            0.5,
            0.5,
        );
        close(&a, &[1.03125, 0.125, 1.5]);
        close(&r, &[1.53125, 1.125, 3.0]);
    }

    #[test]
    fn constant_value_is_discounted_sum() {
        // V = c everywhere, reward 1 each step, lambda 1: A_t = sum_k gamma^k r - c + gamma^(T-t) c.
        // gamma 0.9, T 3, c 2: A2 = 1 + 0.9*2 - 2 = 0.8; A1 = 1 + 0.9*2 - 2 + 0.9*0.8 = 1.52;
        // A0 = 0.8 + 0.9*1.52 = 2.168.
        let (a, r) = gae(&[1.0; 3], &[2.0; 3], &[false; 3], &[2.0], 0.9, 1.0);
        close(&a, &[2.168, 1.52, 0.8]);
        // Returns = 1 + 0.9 + 0.81 + 0.729*2 at t=0 = 4.168.
        close(&r, &[4.168, 3.52, 2.8]);
    }

    #[test]
    fn episode_end_cuts_bootstrap_and_truncation_uses_added_value() {
        // Two envs interleaved [T=2, N=2]. Env 0 terminates at t=0; env 1 is truncated at
        // t=0 with V(final) = 4 added into its reward by the rollout: r = 1 + 0.5*4 = 3.
        // gamma 0.5, lambda 1, values all 1, next values 10.
        // env0: A1 = 0 + 0.5*10 - 1 = 4; A0 = 1 - 1 = 0 (done: no bootstrap, no carry).
        // env1: A1 = 0 + 0.5*10 - 1 = 4; A0 = 3 - 1 = 2.
        let rewards = [1.0, 3.0, 0.0, 0.0];
        let dones = [true, true, false, false];
        let (a, _) = gae(&rewards, &[1.0; 4], &dones, &[10.0, 10.0], 0.5, 1.0);
        close(&a, &[0.0, 2.0, 4.0, 4.0]);
    }

    #[test]
    fn done_at_the_last_step_ignores_next_value() {
        // One env, gamma 0.5, lambda 0.5, rewards 1, 2, values 0.5, 0.5, the episode ends at
        // the last step (T-1), V(next) = 100 belongs to the next episode and must not count.
        // delta1 = 2 - 0.5 = 1.5; A1 = 1.5.
        // delta0 = 1 + 0.5*0.5 - 0.5 = 0.75; A0 = 0.75 + 0.25*1.5 = 1.125.
        let (a, r) = gae(&[1.0, 2.0], &[0.5, 0.5], &[false, true], &[100.0], 0.5, 0.5);
        close(&a, &[1.125, 1.5]);
        close(&r, &[1.625, 2.0]);
    }
}
