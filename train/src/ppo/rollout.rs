//! PPO's rollout (CleanRL `ppo_atari.py`, "ALGO LOGIC: action logic"): `num_steps` steps of
//! every environment, actions sampled from the policy, with the time-limit bootstrap of
//! truncated steps; for the CNN-LSTM policy, `ppo_atari_lstm.py`'s recurrent state.

use std::time::Instant;

use tch::{no_grad, Device, Kind, Tensor};

use super::losses::log_prob_entropy;
use super::network::ActorCritic;
use super::storage::Storage;
use crate::lstm::LstmState;
use crate::tensors::{self, OBS_DIMS};
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
    /// Of `env_s`, the stepping on the critical path: per step, the longest time one thread
    /// stepped ([`VecEnv::take_busy_s`]); the rest is hand-over and waiting.
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
///
/// The CNN-LSTM (CleanRL `ppo_atari_lstm.py`) carries each environment's state across steps
/// and rollouts (`storage.lstm_state`, CleanRL's `next_lstm_state`; a group's rows with
/// `--env-groups`), saves it at the start (`initial_lstm_state`), records per step whether
/// the observation begins an episode (`starts`: CleanRL's `dones[step] = next_done`) and
/// zeroes the state of those environments before the step (`get_states`' `1 - done`). A
/// truncated step's bootstrap `V(final obs)` steps from the state after that step (the one
/// the episode would continue from), unmasked; `V(obs_T)` from the carried state masked by
/// the last step's flags, as CleanRL's `get_value(next_obs, next_lstm_state, next_done)`;
/// neither changes the carried state.
pub fn rollout(
    model: &ActorCritic,
    envs: &mut VecEnv,
    storage: &mut Storage,
    gamma: f32,
    timings: &mut Timings,
) -> Result<(Vec<Episode>, Vec<f32>)> {
    let n = envs.len();
    let t_len = storage.obs.size()[0] as usize;
    // The previous rollout's last flags start this one (CleanRL's `next_done`); none in a new
    // storage (a new run, or a resume, whose environments restart).
    let first_starts = if storage.dones.len() == t_len * n {
        storage.dones[(t_len - 1) * n..].to_vec()
    } else {
        vec![false; n]
    };
    storage.rewards.clear();
    storage.rewards.resize(t_len * n, 0.0);
    storage.dones.clear();
    storage.dones.resize(t_len * n, false);
    storage.starts.clear();
    storage.starts.resize(t_len * n, false);
    storage.starts[..n].copy_from_slice(&first_starts);
    storage.initial_lstm_state = model.zero_state(n as i64).map(|zeros| {
        let carried = storage.lstm_state.get_or_insert(zeros);
        carried.detach()
    });
    let weights = model.inference_weights();
    let value_of =
        |obs: &Tensor, state: Option<&LstmState>| model.step_with(obs, state, &weights).1;
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
                    &value_of,
                    envs,
                    storage,
                    gamma,
                    &transitions,
                    at,
                    envs_of_g.start,
                )?;
                episodes.extend(transitions.iter().filter_map(|tr| tr.episode));
                if t < t_len {
                    for k in envs_of_g.clone() {
                        storage.starts[t * n + k] = storage.dones[(t - 1) * n + k];
                    }
                }
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
            let starts = &storage.starts[t * n + envs_of_g.start..t * n + envs_of_g.end];
            let (action, logprob, value) = no_grad(|| {
                let carried = storage.lstm_state.as_ref().map(|s| LstmState {
                    h: s.h.narrow(0, lo, len),
                    c: s.c.narrow(0, lo, len),
                });
                let state = carried.as_ref().map(|s| masked(s, starts));
                let (logits, value, next) = model.step_with(&obs, state.as_ref(), &weights);
                if let (Some(carried), Some(next)) = (carried, next) {
                    carried.h.shallow_clone().copy_(&next.h);
                    carried.c.shallow_clone().copy_(&next.c);
                }
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
    let last_dones = &storage.dones[(t_len - 1) * n..];
    let state = storage.lstm_state.as_ref().map(|s| masked(s, last_dones));
    let next_value: Vec<f32> =
        Vec::try_from(&no_grad(|| value_of(&obs, state.as_ref())).to_device(Device::Cpu))?;
    timings.inference_s += t0.elapsed().as_secs_f64();
    Ok((episodes, next_value))
}

/// `state` with the rows where `starts` is true zeroed (multiplied by `1 - start`, as
/// CleanRL's `get_states` and [`crate::lstm::LstmCore::unroll`] do).
pub(crate) fn masked(state: &LstmState, starts: &[bool]) -> LstmState {
    let keep: Vec<f32> = starts.iter().map(|&s| if s { 0.0 } else { 1.0 }).collect();
    let keep = tensors::from_f32(&keep, &[keep.len() as i64, 1], state.h.device());
    LstmState {
        h: &state.h * &keep,
        c: &state.c * &keep,
    }
}

/// Writes the rewards (with the time-limit bootstrap) and dones of one group's step into
/// `storage` from flat index `at`; `first` is the group's first environment; `value_of` is
/// the critic (the rollout's cast-once weights).
fn record(
    value_of: &impl Fn(&Tensor, Option<&LstmState>) -> Tensor,
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
        // The CNN-LSTM continues from the state after this step's input (not zeroed: the
        // final observation belongs to the episode that was cut).
        let state = storage.lstm_state.as_ref().map(|s| {
            let rows: Vec<i64> = truncated.iter().map(|&k| (first + k) as i64).collect();
            s.select(&tensors::from_i64(
                &rows,
                &[rows.len() as i64],
                s.h.device(),
            ))
        });
        let v: Vec<f32> =
            Vec::try_from(&no_grad(|| value_of(&fo, state.as_ref())).to_device(Device::Cpu))?;
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
    /// Env `index` shows every byte = `30 * index + 20 * u + 7` before its step `u` (counted
    /// over its whole life), 200 + index after a reset, and ends its episode at the steps
    /// `ends` lists: `(u, terminated, truncated)`.
    struct Episodic {
        index: usize,
        u: usize,
        ends: Vec<(usize, bool, bool)>,
    }

    fn frame(index: usize, u: usize) -> u8 {
        (30 * index + 20 * u + 7) as u8
    }

    impl crate::vecenv::Environment for Episodic {
        fn num_actions(&self) -> usize {
            2
        }
        fn reset(&mut self, obs: &mut [u8]) {
            obs.fill(200 + self.index as u8);
        }
        fn step(&mut self, _action: usize, obs: &mut [u8]) -> Transition {
            let end = self.ends.iter().find(|e| e.0 == self.u).copied();
            self.u += 1;
            obs.fill(frame(self.index, self.u));
            Transition {
                reward: 1.0,
                terminated: end.is_some_and(|e| e.1),
                truncated: end.is_some_and(|e| e.2),
                episode: None,
            }
        }
    }

    #[test]
    fn lstm_rollout_zeroes_the_state_at_episode_starts_and_carries_it_otherwise() {
        // T = 4, N = 3, two rollouts (each env's steps u = 0..8). Env 0 terminates at u = 1
        // and at u = 3, the last step of the first rollout (so the second rollout's t = 0
        // starts an episode); env 1 is truncated at u = 5 (its reward gets 0.5 * V(final
        // obs) from the state after step 5, not zeroed); env 2 never ends (its state is
        // carried from the first rollout into the second). Every stored value must equal a
        // step-by-step unroll of each env alone from zeros, restarted from zeros exactly
        // where its episodes start; and the update's re-run of the sequences
        // (`forward_sequences` from `initial_lstm_state` with `starts`) must agree too.
        let ends = [
            vec![(1, true, false), (3, true, false)],
            vec![(5, false, true)],
            vec![],
        ];
        let ended = |i: usize, u: usize| ends[i].iter().any(|e| e.0 == u);
        for groups in [1, 2] {
            let envs = (0..3)
                .map(|index| Episodic {
                    index,
                    u: 0,
                    ends: ends[index].clone(),
                })
                .collect();
            let mut envs = VecEnv::new(envs, 2).expect("vecenv").with_groups(groups);
            let model = ActorCritic::with_policy(cartridge_export::Policy::Lstm, Device::Cpu, 2, 5)
                .expect("model");
            let mut storage = Storage::new(4, 3, Device::Cpu);
            let mut rollouts = Vec::new();
            for _ in 0..2 {
                let mut timings = Timings::default();
                rollout(&model, &mut envs, &mut storage, 0.5, &mut timings).expect("rollout");
                let initial = storage.initial_lstm_state.as_ref().expect("initial state");
                let starts: Vec<f32> = storage
                    .starts
                    .iter()
                    .map(|&s| f32::from(u8::from(s)))
                    .collect();
                let (_, rerun) = model.forward_sequences(
                    &storage.obs.view(obs_dims(&[12]).as_slice()),
                    initial,
                    &Tensor::from_slice(&starts).view([4, 3]),
                );
                let diff = (rerun.view([4, 3]) - &storage.values)
                    .abs()
                    .max()
                    .double_value(&[]);
                assert!(
                    diff < 1e-5,
                    "groups {groups}: the update's re-run differs by {diff}"
                );
                rollouts.push((
                    storage.obs.copy(),
                    storage.values.copy(),
                    storage.rewards.clone(),
                    storage.starts.clone(),
                ));
            }
            let zeros = || LstmState::zeros(1, 128, Device::Cpu);
            let mut seen_difference = 0f64;
            for i in 0..3 {
                let mut s = zeros();
                for u in 0..8 {
                    let (obs, values, rewards, starts) = &rollouts[u / 4];
                    let t = u % 4;
                    let start = u > 0 && ended(i, u - 1);
                    assert_eq!(starts[t * 3 + i], start, "groups {groups}: start {i} {u}");
                    let o = obs.get(t as i64).get(i as i64).unsqueeze(0);
                    if start {
                        // The test can tell: the carried state gives another value here.
                        let carried = model.step(&o, Some(&s)).1.double_value(&[0]);
                        let fresh = model.step(&o, Some(&zeros())).1.double_value(&[0]);
                        seen_difference = seen_difference.max((carried - fresh).abs());
                        s = zeros();
                    }
                    let (_, v, next) = model.step(&o, Some(&s));
                    let next = next.expect("state");
                    let got = values.double_value(&[t as i64, i as i64]);
                    assert!(
                        (v.double_value(&[0]) - got).abs() < 1e-5,
                        "groups {groups}: value of env {i} at step {u}: {got} vs {}",
                        v.double_value(&[0])
                    );
                    let want_reward = if i == 1 && u == 5 {
                        let fo = Tensor::full(
                            obs_dims(&[1]),
                            i64::from(frame(1, 6)),
                            (Kind::Uint8, Device::Cpu),
                        );
                        1.0 + 0.5 * model.step(&fo, Some(&next)).1.double_value(&[0])
                    } else {
                        1.0
                    };
                    let r = f64::from(rewards[t * 3 + i]);
                    assert!(
                        (r - want_reward).abs() < 1e-5,
                        "groups {groups}: reward of env {i} at step {u}: {r} vs {want_reward}"
                    );
                    s = next;
                }
            }
            assert!(
                seen_difference > 1e-4,
                "zeroing changes nothing here: {seen_difference}"
            );
        }
    }
}
