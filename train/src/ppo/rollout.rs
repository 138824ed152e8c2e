//! PPO's rollout (CleanRL `ppo_atari.py`, "ALGO LOGIC: action logic"): `num_steps` steps of
//! every environment, actions sampled from the policy, with the time-limit bootstrap of
//! truncated steps.

use std::time::Instant;

use tch::{no_grad, Device, Kind, Tensor};

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
///
/// With one group (the default) every step is one batched forward pass, then every
/// environment steps, as in CleanRL. With more ([`VecEnv::with_groups`]) the groups run in a
/// pipeline, as EnvPool's asynchronous mode does: the policy acts for group `g` while the
/// other groups step. Each environment's own sequence (observation, action from the current
/// policy, transition) is the same either way; only the order in which libtorch's generator
/// draws the groups' actions differs.
pub fn rollout(
    model: &ActorCritic,
    envs: &mut VecEnv,
    storage: &mut Storage,
    gamma: f32,
    timings: &mut Timings,
) -> Result<(Vec<Episode>, Vec<f32>)> {
    let n = envs.len();
    let t_len = storage.obs.size()[0] as usize;
    storage.rewards.clear();
    storage.rewards.resize(t_len * n, 0.0);
    storage.dones.clear();
    storage.dones.resize(t_len * n, false);
    envs.take_busy_s();
    let mut episodes = Vec::new();
    for t in 0..=t_len {
        for g in 0..envs.groups() {
            let t0 = Instant::now();
            let envs_of_g = envs.group(g);
            let transitions = envs.wait(g)?.to_vec();
            let t1 = Instant::now();
            if t > 0 {
                let at = (t - 1) * n + envs_of_g.start;
                record(
                    model,
                    envs,
                    storage,
                    gamma,
                    &transitions,
                    at,
                    envs_of_g.start,
                )?;
                episodes.extend(transitions.iter().filter_map(|tr| tr.episode));
            }
            timings.env_s += (t1 - t0).as_secs_f64();
            if t == t_len {
                continue;
            }
            let t2 = Instant::now();
            // The observations go straight into this step's storage, and the policy reads
            // them there.
            let lo = envs_of_g.start as i64;
            let len = envs_of_g.len() as i64;
            let mut obs = storage.obs.get(t as i64).narrow(0, lo, len);
            storage.uploader.upload_into(envs.group_obs(g), &mut obs)?;
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
            let at = |x: &Tensor| x.get(t as i64).narrow(0, lo, len);
            at(&storage.actions).copy_(&action);
            at(&storage.logprobs).copy_(&logprob);
            at(&storage.values).copy_(&value);
            let actions: Vec<usize> = actions.iter().map(|&a| a as usize).collect();
            envs.send_step(g, &actions)?;
            timings.inference_s += t2.elapsed().as_secs_f64();
        }
    }
    timings.env_busy_s += envs.take_busy_s();
    let t0 = Instant::now();
    let obs = storage.uploader.upload(&[envs.obs()], &OBS_DIMS)?;
    let next_value: Vec<f32> =
        Vec::try_from(&no_grad(|| model.value(&obs)).to_device(Device::Cpu))?;
    timings.inference_s += t0.elapsed().as_secs_f64();
    Ok((episodes, next_value))
}

/// Writes the rewards (with the time-limit bootstrap) and dones of one group's step into
/// `storage` from flat index `at`; `first` is the group's first environment.
fn record(
    model: &ActorCritic,
    envs: &VecEnv,
    storage: &mut Storage,
    gamma: f32,
    transitions: &[Transition],
    at: usize,
    first: usize,
) -> Result<()> {
    let truncated: Vec<usize> = (0..transitions.len())
        .filter(|&k| bootstraps(&transitions[k]))
        .collect();
    let mut bootstrap = vec![0f32; transitions.len()];
    if !truncated.is_empty() {
        let finals: Vec<&[u8]> = truncated
            .iter()
            .map(|&k| envs.final_obs(first + k))
            .collect();
        let fo = storage.uploader.upload(&finals, &OBS_DIMS)?;
        let v: Vec<f32> = Vec::try_from(&no_grad(|| model.value(&fo)).to_device(Device::Cpu))?;
        for (j, &k) in truncated.iter().enumerate() {
            bootstrap[k] = gamma * v[j];
        }
    }
    for (k, tr) in transitions.iter().enumerate() {
        storage.rewards[at + k] = tr.reward + bootstrap[k];
        storage.dones[at + k] = tr.terminated || tr.truncated;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensors::obs_dims;
    use cartridge_infer::preprocess::OBS_LEN;

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
        // Both the lock-step rollout (1 group) and the pipeline (2 groups) must do this.
        for groups in [1, 2] {
            let envs = scripts
                .clone()
                .into_iter()
                .enumerate()
                .map(|(index, script)| Scripted {
                    index,
                    t: 0,
                    script,
                })
                .collect();
            let mut envs = VecEnv::new(envs, 2).expect("vecenv").with_groups(groups);
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
                    "groups {groups}: {:?} vs {want_rewards:?}",
                    storage.rewards
                );
            }
            assert_eq!(
                storage.dones,
                [false, false, false, true, true, true, true, false, false]
            );
        }
    }

    /// Env `index` shows every byte = `40 * index + t` before its step `t`, gets reward
    /// `10 * index + t` for it, terminates at `t == end`, and logs the actions it receives.
    struct Echo {
        index: usize,
        t: usize,
        end: usize,
        log: std::sync::Arc<std::sync::Mutex<Vec<(usize, usize, usize)>>>,
    }

    impl crate::vecenv::Environment for Echo {
        fn num_actions(&self) -> usize {
            4
        }
        fn reset(&mut self, obs: &mut [u8]) {
            obs.fill((40 * self.index + self.t) as u8);
        }
        fn step(&mut self, action: usize, obs: &mut [u8]) -> Transition {
            if let Ok(mut log) = self.log.lock() {
                log.push((self.index, self.t, action));
            }
            let reward = (10 * self.index + self.t) as f32;
            let terminated = self.t == self.end;
            self.t += 1;
            obs.fill((40 * self.index + self.t) as u8);
            Transition {
                reward,
                terminated,
                truncated: false,
                episode: None,
            }
        }
    }

    #[test]
    fn lock_step_and_pipelined_rollouts_store_each_envs_own_step_in_its_slot() {
        // 5 envs on 2 workers (with 2 groups: 0..2 and 2..5), T = 4: storage[t][i] must hold
        // env i's observation before its step t, the action env i received at step t, its reward
        // 10 i + t, and done only for env 3 at t = 2. A group written at another group's
        // offset, or a step's result stored one step early or late, breaks one of these.
        for groups in [1, 2] {
            let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            let envs = (0..5)
                .map(|index| Echo {
                    index,
                    t: 0,
                    end: if index == 3 { 2 } else { 99 },
                    log: log.clone(),
                })
                .collect();
            let mut envs = VecEnv::new(envs, 2).expect("vecenv").with_groups(groups);
            if groups == 2 {
                assert_eq!((envs.group(0), envs.group(1)), (0..2, 2..5));
            }
            let model = ActorCritic::new(Device::Cpu, 4, 3).expect("model");
            let mut storage = Storage::new(4, 5, Device::Cpu);
            let mut timings = Timings::default();
            rollout(&model, &mut envs, &mut storage, 0.99, &mut timings).expect("rollout");
            let log = log.lock().expect("log").clone();
            assert_eq!(log.len(), 20, "every env steps once per step");
            for (i, t, action) in log {
                let obs = Vec::<u8>::try_from(&storage.obs.get(t as i64).get(i as i64).view(-1))
                    .expect("obs");
                assert!(
                    obs.iter().all(|&b| b as usize == 40 * i + t),
                    "obs of env {i} at step {t}"
                );
                let stored = storage.actions.int64_value(&[t as i64, i as i64]) as usize;
                assert_eq!(stored, action, "action of env {i} at step {t}");
                assert_eq!(storage.rewards[t * 5 + i], (10 * i + t) as f32);
                assert_eq!(storage.dones[t * 5 + i], i == 3 && t == 2, "done {i} {t}");
            }
            // The last observation (after step 3) is what V(obs_T) was computed from.
            assert!(envs
                .obs()
                .chunks(OBS_LEN)
                .enumerate()
                .all(|(i, o)| o[0] as usize == 40 * i + 4));
        }
    }
}
