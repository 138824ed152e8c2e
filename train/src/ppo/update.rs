//! PPO's update: GAE over the rollout, then `update_epochs` passes of shuffled minibatches
//! of the clipped-surrogate loss (CleanRL `ppo_atari.py`, "Optimizing the policy and value
//! network").

use tch::{no_grad, Device, Kind};

use super::gae::gae;
use super::losses::{explained_variance, log_prob_entropy, policy_loss, value_loss};
use super::network::ActorCritic;
use super::storage::Storage;
use super::PpoConfig;
use crate::adam::{clip_grad_norm, zero_grad, Adam};
use crate::tensors::{self, obs_dims};
use crate::Result;

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
