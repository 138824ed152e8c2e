//! PPO (Schulman et al. 2017) as CleanRL's `ppo_atari.py` / baselines' `ppo2`: storage,
//! rollout, GAE, minibatch update, each a small function. [`crate::run`] ties them to
//! checkpoints and logs.

use std::time::Instant;

use tch::{no_grad, Device, Kind, Tensor};

use crate::adam::{clip_grad_norm, zero_grad, Adam};
use crate::config::PpoConfig;
use crate::gae::gae;
use crate::model::ActorCritic;
use crate::tensors::{self, obs_dims, Uploader, OBS_DIMS};
use crate::vecenv::{Episode, Transition, VecEnv};
use crate::Result;

/// Clipped surrogate objective (PPO paper eq. 7), as a loss to minimise:
/// `mean(max(-A * ratio, -A * clip(ratio, 1 - c, 1 + c)))`.
pub fn policy_loss(advantages: &Tensor, ratio: &Tensor, clip_coef: f64) -> Tensor {
    let pg1 = -advantages * ratio;
    let pg2 = -advantages * ratio.clamp(1.0 - clip_coef, 1.0 + clip_coef);
    pg1.maximum(&pg2).mean(Kind::Float)
}

/// Value loss `0.5 * mean(...)`: with `clip_vloss`, baselines' clipped form
/// `max((V - R)^2, (V_old + clip(V - V_old, -c, c) - R)^2)`, else `(V - R)^2`.
pub fn value_loss(
    new_values: &Tensor,
    old_values: &Tensor,
    returns: &Tensor,
    clip_coef: f64,
    clip_vloss: bool,
) -> Tensor {
    let unclipped = (new_values - returns).square();
    if clip_vloss {
        let clipped = old_values + (new_values - old_values).clamp(-clip_coef, clip_coef);
        let clipped = (clipped - returns).square();
        unclipped.maximum(&clipped).mean(Kind::Float) * 0.5
    } else {
        unclipped.mean(Kind::Float) * 0.5
    }
}

/// Log-probabilities of `actions` `[B]` and entropies `[B]` of the categorical
/// distributions given by `logits` `[B, A]`.
pub fn log_prob_entropy(logits: &Tensor, actions: &Tensor) -> (Tensor, Tensor) {
    let logp = logits.log_softmax(-1, Kind::Float);
    let chosen = logp
        .gather(1, &actions.unsqueeze(-1), false)
        .squeeze_dim(-1);
    let entropy = -(logp.exp() * &logp).sum_dim_intlist(-1, false, Kind::Float);
    (chosen, entropy)
}

/// `1 - Var(y - y_hat) / Var(y)` (NaN when `Var(y)` is 0), as CleanRL logs it.
pub fn explained_variance(y_pred: &[f32], y_true: &[f32]) -> f64 {
    let var = |v: &mut dyn Iterator<Item = f64>, n: f64| {
        let xs: Vec<f64> = v.collect();
        let m = xs.iter().sum::<f64>() / n;
        xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n
    };
    let n = y_true.len() as f64;
    let vt = var(&mut y_true.iter().map(|&x| x as f64), n);
    if vt == 0.0 {
        return f64::NAN;
    }
    let vd = var(
        &mut y_true.iter().zip(y_pred).map(|(&t, &p)| (t - p) as f64),
        n,
    );
    1.0 - vd / vt
}

/// Whether a step's reward gets the time-limit bootstrap `gamma * V(final observation)`
/// (SB3's `OnPolicyAlgorithm.collect_rollouts`): a truncation that is not also a termination
/// (a life lost or the game ended on the time-limit frame has no future to bootstrap).
pub fn bootstraps(tr: &Transition) -> bool {
    tr.truncated && !tr.terminated
}

/// One rollout's storage, `[T, N]` per quantity (observations `[T, N, 4, 84, 84]` u8 on the
/// training device).
#[derive(Debug)]
pub struct Storage {
    obs: Tensor,
    actions: Tensor,
    logprobs: Tensor,
    values: Tensor,
    rewards: Vec<f32>,
    dones: Vec<bool>,
    uploader: Uploader,
}

impl Storage {
    /// Empty storage for `t` steps of `n` environments.
    pub fn new(t: usize, n: usize, device: Device) -> Self {
        let (t, n) = (t as i64, n as i64);
        Self {
            obs: tensors::zeros(&obs_dims(&[t, n]), Kind::Uint8, device),
            actions: tensors::zeros(&[t, n], Kind::Int64, device),
            logprobs: tensors::zeros(&[t, n], Kind::Float, device),
            values: tensors::zeros(&[t, n], Kind::Float, device),
            rewards: Vec::with_capacity((t * n) as usize),
            dones: Vec::with_capacity((t * n) as usize),
            uploader: Uploader::new(device),
        }
    }
}

/// Wall time spent in each phase of an iteration.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Stepping environments (workers) and copying observations.
    pub env_s: f64,
    /// Policy forward passes during the rollout.
    pub inference_s: f64,
    /// GAE and the minibatch updates.
    pub update_s: f64,
}

/// Losses and diagnostics of one update (CleanRL's logged values).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UpdateStats {
    /// Mean clipped-surrogate loss of the last minibatch.
    pub pg_loss: f64,
    /// Value loss of the last minibatch.
    pub v_loss: f64,
    /// Entropy of the last minibatch.
    pub entropy: f64,
    /// `mean((ratio - 1) - log ratio)` of the last minibatch (Schulman's k3 estimator).
    pub approx_kl: f64,
    /// Mean fraction of clipped ratios over all minibatches.
    pub clipfrac: f64,
    /// Of the value predictions on the batch.
    pub explained_variance: f64,
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
    let t0 = Instant::now();
    let obs = storage.uploader.upload(&[envs.obs()], &OBS_DIMS)?;
    let next_value: Vec<f32> =
        Vec::try_from(&no_grad(|| model.value(&obs)).to_device(Device::Cpu))?;
    timings.inference_s += t0.elapsed().as_secs_f64();
    Ok((episodes, next_value))
}

/// GAE over the rollout, then `update_epochs` passes of shuffled minibatches.
#[allow(clippy::too_many_arguments)]
pub fn update(
    model: &ActorCritic,
    adam: &mut Adam,
    storage: &Storage,
    next_value: &[f32],
    cfg: &PpoConfig,
    clip_coef: f64,
    device: Device,
) -> Result<UpdateStats> {
    let a = &cfg.args;
    let values_cpu: Vec<f32> = Vec::try_from(&storage.values.to_device(Device::Cpu).view(-1))?;
    let (adv, ret) = gae(
        &storage.rewards,
        &values_cpu,
        &storage.dones,
        next_value,
        a.gamma as f32,
        a.gae_lambda as f32,
    );
    let b = cfg.batch_size as i64;
    let b_obs = storage.obs.view(obs_dims(&[b]).as_slice());
    let b_actions = storage.actions.view(-1);
    let b_logprobs = storage.logprobs.view(-1);
    let b_values = storage.values.view(-1);
    let b_adv = tensors::from_f32(&adv, &[b], device);
    let b_ret = tensors::from_f32(&ret, &[b], device);
    let params = model.params();
    // Statistics stay on the device and are read once at the end (approx_kl once per epoch
    // with --target-kl), so a GPU never waits for the host inside the loop.
    let zero = || tensors::zeros(&[], Kind::Float, device);
    let (mut pg_last, mut vl_last, mut ent_last, mut kl_last) = (zero(), zero(), zero(), zero());
    let mut clipfrac_sum = zero();
    let mut minibatches = 0u32;
    'epochs: for _ in 0..a.update_epochs {
        let perm = tensors::randperm(b, device);
        for start in (0..b).step_by(cfg.minibatch_size) {
            let mb = perm.narrow(0, start, cfg.minibatch_size as i64);
            let (logits, new_value) = model.forward(&b_obs.index_select(0, &mb));
            let (new_logprob, entropy) = log_prob_entropy(&logits, &b_actions.index_select(0, &mb));
            let logratio = new_logprob - b_logprobs.index_select(0, &mb);
            let ratio = logratio.exp();
            no_grad(|| {
                kl_last = ((&ratio - 1.0) - &logratio).mean(Kind::Float);
                clipfrac_sum += (&ratio - 1.0)
                    .abs()
                    .gt(clip_coef)
                    .to_kind(Kind::Float)
                    .mean(Kind::Float);
            });
            minibatches += 1;
            let mut mb_adv = b_adv.index_select(0, &mb);
            if a.norm_adv {
                mb_adv = (&mb_adv - mb_adv.mean(Kind::Float)) / (mb_adv.std(true) + 1e-8);
            }
            let pg = policy_loss(&mb_adv, &ratio, clip_coef);
            let vl = value_loss(
                &new_value,
                &b_values.index_select(0, &mb),
                &b_ret.index_select(0, &mb),
                clip_coef,
                a.clip_vloss,
            );
            let ent = entropy.mean(Kind::Float);
            let loss = &pg - &ent * a.ent_coef + &vl * a.vf_coef;
            zero_grad(&params);
            loss.backward();
            clip_grad_norm(&params, a.max_grad_norm);
            adam.step(&params);
            (pg_last, vl_last, ent_last) = (pg.detach(), vl.detach(), ent.detach());
        }
        if a.target_kl.is_some_and(|k| kl_last.double_value(&[]) > k) {
            break 'epochs;
        }
    }
    let stats = UpdateStats {
        pg_loss: pg_last.double_value(&[]),
        v_loss: vl_last.double_value(&[]),
        entropy: ent_last.double_value(&[]),
        approx_kl: kl_last.double_value(&[]),
        clipfrac: clipfrac_sum.double_value(&[]) / f64::from(minibatches.max(1)),
        explained_variance: explained_variance(&values_cpu, &ret),
    };
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[f32]) -> Tensor {
        Tensor::from_slice(v)
    }

    fn val(x: &Tensor) -> f64 {
        x.double_value(&[])
    }

    #[test]
    fn clipped_surrogate_by_hand() {
        // clip 0.2. Sample 1: A=1, r=1.5 -> max(-1.5, -1.2) = -1.2.
        // Sample 2: A=-1, r=0.5 -> max(0.5, 0.8) = 0.8. Sample 3: A=2, r=0.9 -> max(-1.8, -1.8) = -1.8.
        // Mean = (-1.2 + 0.8 - 1.8) / 3 = -0.7333...
        let l = policy_loss(&t(&[1.0, -1.0, 2.0]), &t(&[1.5, 0.5, 0.9]), 0.2);
        assert!((val(&l) + 2.2 / 3.0).abs() < 1e-6, "{}", val(&l));
    }

    #[test]
    fn clipped_value_loss_by_hand() {
        // clip 0.1. V_old = 1, V = 1.5, R = 2: unclipped (1.5-2)^2 = 0.25; clipped V = 1.1,
        // (1.1-2)^2 = 0.81; max = 0.81. Second: V_old = 0, V = 0.05, R = 0: 0.0025 both.
        // 0.5 * mean(0.81, 0.0025) = 0.203125.
        let (new, old, ret) = (t(&[1.5, 0.05]), t(&[1.0, 0.0]), t(&[2.0, 0.0]));
        let l = value_loss(&new, &old, &ret, 0.1, true);
        assert!((val(&l) - 0.203125).abs() < 1e-6, "{}", val(&l));
        // Unclipped: 0.5 * mean(0.25, 0.0025) = 0.063125.
        let l = value_loss(&new, &old, &ret, 0.1, false);
        assert!((val(&l) - 0.063125).abs() < 1e-6, "{}", val(&l));
    }

    #[test]
    fn entropy_and_log_prob_by_hand() {
        // Uniform over 4 actions: log p = -ln 4, entropy = ln 4.
        // logits [0, ln 3]: p = [0.25, 0.75]; entropy = -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.562335.
        let logits =
            Tensor::from_slice(&[0f32, 0.0, 0.0, 0.0, 0.0, 3f32.ln(), -1e9, -1e9]).view([2, 4]);
        let (lp, ent) = log_prob_entropy(&logits, &Tensor::from_slice(&[2i64, 1]));
        let lp: Vec<f32> = Vec::try_from(&lp).expect("vec");
        let ent: Vec<f32> = Vec::try_from(&ent).expect("vec");
        assert!((lp[0] + 4f32.ln()).abs() < 1e-6 && (lp[1] - 0.75f32.ln()).abs() < 1e-6);
        assert!(
            (ent[0] - 4f32.ln()).abs() < 1e-6 && (ent[1] - 0.562_335).abs() < 1e-5,
            "{ent:?}"
        );
    }

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

    #[test]
    fn explained_variance_by_hand() {
        assert_eq!(explained_variance(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 1.0);
        // y = [1, 2, 3] (var 2/3), pred = [2, 2, 2] (residual var 2/3): 0.
        assert!(explained_variance(&[2.0; 3], &[1.0, 2.0, 3.0]).abs() < 1e-12);
        assert!(explained_variance(&[0.0; 2], &[5.0, 5.0]).is_nan());
    }
}
