//! PPO's rollout (CleanRL `ppo_atari.py`, "ALGO LOGIC: action logic"): `num_steps` steps of
//! every environment, actions sampled from the policy, with the time-limit bootstrap of
//! truncated steps.

use std::time::Instant;

use tch::{no_grad, Device, Kind};

use super::losses::log_prob_entropy;
use super::network::ActorCritic;
use super::storage::Storage;
use crate::tensors::OBS_DIMS;
use crate::vecenv::{Episode, Transition, VecEnv};
use crate::Result;

/// Whether a step's reward gets the time-limit bootstrap `gamma * V(final observation)`
/// (SB3's `OnPolicyAlgorithm.collect_rollouts`): a truncation that is not also a termination
/// (a life lost or the game ended on the time-limit frame has no future to bootstrap).
pub fn bootstraps(tr: &Transition) -> bool {
    tr.truncated && !tr.terminated
}

/// Wall time spent in each phase of an iteration.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Stepping environments (workers) and copying observations.
    pub env_s: f64,
    /// Of `env_s`, the busiest worker's own stepping ([`VecEnv::take_busy_s`]); the rest is
    /// hand-over, waiting and the main thread's copies.
    pub env_busy_s: f64,
    /// Policy forward passes during the rollout.
    pub inference_s: f64,
    /// GAE and the minibatch updates.
    pub update_s: f64,
}

/// Fills `storage` with `num_steps` steps of every environment, sampling actions from the
/// policy; returns the finished games and `V(obs_T)`.
pub fn rollout(
    model: &ActorCritic,
    envs: &mut VecEnv,
    storage: &mut Storage,
    gamma: f32,
    timings: &mut Timings,
) -> Result<(Vec<Episode>, Vec<f32>)> {
    let n = envs.len();
    let t_len = storage.obs.size()[0];
    storage.rewards.clear();
    storage.dones.clear();
    envs.take_busy_s();
    let mut episodes = Vec::new();
    for t in 0..t_len {
        let t0 = Instant::now();
        // The observations go straight into this step's storage, and the policy reads them
        // there.
        let mut obs = storage.obs.get(t);
        storage.uploader.upload_into(envs.obs(), &mut obs)?;
        let t1 = Instant::now();
        let (action, logprob, value) = no_grad(|| {
            let (logits, value) = model.forward(&obs);
            let action = logits
                .softmax(-1, Kind::Float)
                .multinomial(1, true)
                .squeeze_dim(-1);
            let (logprob, _) = log_prob_entropy(&logits, &action);
            (action, logprob, value)
        });
        let actions: Vec<i64> = Vec::try_from(&action.to_device(Device::Cpu))?;
        let t2 = Instant::now();
        storage.actions.get(t).copy_(&action);
        storage.logprobs.get(t).copy_(&logprob);
        storage.values.get(t).copy_(&value);
        let actions: Vec<usize> = actions.iter().map(|&a| a as usize).collect();
        let transitions = envs.step(&actions)?.to_vec();
        let t3 = Instant::now();
        let truncated: Vec<usize> = (0..n).filter(|&i| bootstraps(&transitions[i])).collect();
        let mut bootstrap = vec![0f32; n];
        if !truncated.is_empty() {
            let finals: Vec<&[u8]> = truncated.iter().map(|&i| envs.final_obs(i)).collect();
            let fo = storage.uploader.upload(&finals, &OBS_DIMS)?;
            let v: Vec<f32> = Vec::try_from(&no_grad(|| model.value(&fo)).to_device(Device::Cpu))?;
            for (k, &i) in truncated.iter().enumerate() {
                bootstrap[i] = gamma * v[k];
            }
        }
        for (i, tr) in transitions.iter().enumerate() {
            storage.rewards.push(tr.reward + bootstrap[i]);
            storage.dones.push(tr.terminated || tr.truncated);
            if let Some(e) = tr.episode {
                episodes.push(e);
            }
        }
        timings.env_s += ((t1 - t0) + (t3 - t2) + t3.elapsed()).as_secs_f64();
        timings.inference_s += (t2 - t1).as_secs_f64();
    }
    timings.env_busy_s += envs.take_busy_s();
    let t0 = Instant::now();
    let obs = storage.uploader.upload(&[envs.obs()], &OBS_DIMS)?;
    let next_value: Vec<f32> =
        Vec::try_from(&no_grad(|| model.value(&obs)).to_device(Device::Cpu))?;
    timings.inference_s += t0.elapsed().as_secs_f64();
    Ok((episodes, next_value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensors::obs_dims;
    use tch::Tensor;

    /// Env `index` shows a constant observation (every byte = 10 * (index + 1)) and ends its
    /// episodes as `script[t]` says (reward, terminated, truncated) at step `t`.
    struct Scripted {
        index: usize,
        t: usize,
        script: Vec<(f32, bool, bool)>,
    }

    impl crate::vecenv::Environment for Scripted {
        fn num_actions(&self) -> usize {
            2
        }
        fn reset(&mut self, obs: &mut [u8]) {
            obs.fill(10 * (self.index as u8 + 1));
        }
        fn step(&mut self, _action: usize, obs: &mut [u8]) -> Transition {
            let (reward, terminated, truncated) = self.script[self.t];
            self.t += 1;
            obs.fill(10 * (self.index as u8 + 1));
            Transition {
                reward,
                terminated,
                truncated,
                episode: None,
            }
        }
    }

    #[test]
    fn rollout_bootstraps_only_pure_truncations_and_records_dones() {
        // T = 3, N = 3, gamma 0.5. At t = 1: env 0 is terminated and truncated on the same
        // step (no bootstrap), env 1 only truncated (reward 1 + 0.5 * V(its final obs)), env 2
        // only terminated. At the last step t = 2, env 0 terminates again.
        let script = |s: Vec<(f32, bool, bool)>| s;
        let scripts = vec![
            script(vec![
                (0.0, false, false),
                (1.0, true, true),
                (2.0, true, false),
            ]),
            script(vec![
                (0.0, false, false),
                (1.0, false, true),
                (0.0, false, false),
            ]),
            script(vec![
                (0.0, false, false),
                (1.0, true, false),
                (0.0, false, false),
            ]),
        ];
        let envs = scripts
            .into_iter()
            .enumerate()
            .map(|(index, script)| Scripted {
                index,
                t: 0,
                script,
            })
            .collect();
        let mut envs = VecEnv::new(envs, 2).expect("vecenv");
        let model = ActorCritic::new(Device::Cpu, 2, 1).expect("model");
        let mut storage = Storage::new(3, 3, Device::Cpu);
        let mut timings = Timings::default();
        rollout(&model, &mut envs, &mut storage, 0.5, &mut timings).expect("rollout");
        let v1 = model
            .value(&Tensor::full(
                obs_dims(&[1]),
                20,
                (Kind::Uint8, Device::Cpu),
            ))
            .double_value(&[0]) as f32;
        assert!(
            v1.abs() > 1e-4,
            "V must be non-zero for the test to see a bootstrap"
        );
        let want_rewards = [0.0, 0.0, 0.0, 1.0, 1.0 + 0.5 * v1, 1.0, 2.0, 0.0, 0.0];
        for (got, want) in storage.rewards.iter().zip(want_rewards) {
            assert!(
                (got - want).abs() < 1e-6,
                "{:?} vs {want_rewards:?}",
                storage.rewards
            );
        }
        assert_eq!(
            storage.dones,
            [false, false, false, true, true, true, true, false, false]
        );
    }
}
