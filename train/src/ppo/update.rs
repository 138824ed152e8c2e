//! PPO's update: GAE over the rollout, then `update_epochs` passes of shuffled minibatches
//! of the clipped-surrogate loss (CleanRL `ppo_atari.py`, "Optimizing the policy and value
//! network"). For the CNN-LSTM policy, minibatches are whole environments' sequences, as
//! CleanRL's `ppo_atari_lstm.py` does ([`minibatches`]).

use cartridge_export::Policy;
use tch::{no_grad, Device, Kind, Tensor};

use super::gae::gae;
use super::losses::{explained_variance, log_prob_entropy, policy_loss, value_loss};
use super::network::ActorCritic;
use super::storage::Storage;
use super::PpoConfig;
use crate::adam::{clip_grad_norm, zero_grad, Adam};
use crate::dist::Dist;
use crate::tensors::{self, obs_dims};
use crate::{Error, Result};

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
    /// `max |ratio - 1|` on the first minibatch of the first epoch, where the network still
    /// has the rollout's weights: how far the update's forward pass (a minibatch) drifts from
    /// the rollout's (batches of `num_envs`). About 1e-7 in fp32.
    pub first_ratio_drift: f64,
    /// Minibatch updates taken.
    pub minibatches: u32,
    /// Seconds spent averaging gradients across MPI ranks (0 in a single process).
    pub allreduce_s: f64,
}

/// One minibatch: flat `[T * N]` indices into the rollout, and for the CNN-LSTM the
/// environments whose whole sequences they are.
#[derive(Debug)]
pub struct Minibatch {
    /// Indices `t * N + n` into the flattened rollout (CleanRL's `mb_inds`).
    pub index: Tensor,
    /// CNN-LSTM: the environments `[E]` (CleanRL's `mbenvinds`); `index` is then every step
    /// of each, time-major (`t * N + envs[e]` at position `t * E + e`).
    pub envs: Option<Tensor>,
}

/// One epoch's minibatches, drawn from libtorch's generator.
///
/// CNN (`ppo_atari.py`): a permutation of the `T * N` steps cut into `num_minibatches` parts.
/// CNN-LSTM (`ppo_atari_lstm.py`): a permutation of the `N` environments cut into parts of
/// `envsperbatch = N / num_minibatches` environments; each minibatch is all `T` steps of its
/// environments (`flatinds[:, mbenvinds].ravel()`), so the update can re-run their sequences
/// from the rollout's initial state.
pub fn minibatches(cfg: &PpoConfig, policy: Policy, device: Device) -> Vec<Minibatch> {
    let (t_len, n) = (cfg.args.num_steps as i64, cfg.args.num_envs as i64);
    match policy {
        Policy::Cnn => {
            let b = cfg.batch_size as i64;
            let perm = tensors::randperm(b, device);
            (0..b)
                .step_by(cfg.minibatch_size)
                .map(|start| Minibatch {
                    index: perm.narrow(0, start, cfg.minibatch_size as i64),
                    envs: None,
                })
                .collect()
        }
        Policy::Lstm => {
            let per = n / cfg.args.num_minibatches as i64;
            let perm = tensors::randperm(n, device);
            let row_starts: Vec<i64> = (0..t_len).map(|t| t * n).collect();
            let rows = tensors::from_i64(&row_starts, &[t_len, 1], device);
            (0..n)
                .step_by(per as usize)
                .map(|start| {
                    let envs = perm.narrow(0, start, per);
                    Minibatch {
                        index: (&rows + envs.unsqueeze(0)).view(-1),
                        envs: Some(envs),
                    }
                })
                .collect()
        }
    }
}

/// What a minibatch's loss compares the network's new outputs with, gathered from the
/// rollout: `[M]` each (`actions` i64, the rest f32).
#[derive(Debug)]
pub struct Targets {
    /// Actions taken.
    pub actions: Tensor,
    /// Their log-probabilities under the rollout's policy.
    pub logprobs: Tensor,
    /// The rollout's value estimates.
    pub values: Tensor,
    /// GAE advantages (normalized here with `--norm-adv`).
    pub advantages: Tensor,
    /// GAE returns (value targets).
    pub returns: Tensor,
}

/// One minibatch's loss and the quantities logged from it.
#[derive(Debug)]
pub struct MinibatchLoss {
    /// `pg - ent_coef * ent + vf_coef * vl`, to differentiate.
    pub loss: Tensor,
    /// Clipped-surrogate loss.
    pub pg: Tensor,
    /// Value loss.
    pub vl: Tensor,
    /// Mean entropy.
    pub ent: Tensor,
    /// `log(pi_new / pi_old)` per sample.
    pub logratio: Tensor,
    /// `pi_new / pi_old` per sample.
    pub ratio: Tensor,
}

/// The PPO loss of one minibatch from the network's `logits` `[M, A]` and `new_value` `[M]`
/// (CleanRL `ppo_atari.py`): advantages normalized over the minibatch (`--norm-adv`), the
/// clipped surrogate, the (clipped) value loss, the entropy bonus.
pub fn minibatch_loss(
    logits: &Tensor,
    new_value: &Tensor,
    t: &Targets,
    cfg: &PpoConfig,
    clip_coef: f64,
) -> MinibatchLoss {
    let a = &cfg.args;
    let (new_logprob, entropy) = log_prob_entropy(logits, &t.actions);
    let logratio = new_logprob - &t.logprobs;
    let ratio = logratio.exp();
    let mut adv = t.advantages.shallow_clone();
    if a.norm_adv {
        adv = (&adv - adv.mean(Kind::Float)) / (adv.std(true) + 1e-8);
    }
    let pg = policy_loss(&adv, &ratio, clip_coef);
    let vl = value_loss(new_value, &t.values, &t.returns, clip_coef, a.clip_vloss);
    let ent = entropy.mean(Kind::Float);
    let loss = &pg - &ent * a.ent_coef + &vl * a.vf_coef;
    MinibatchLoss {
        loss,
        pg,
        vl,
        ent,
        logratio,
        ratio,
    }
}

/// Whether `--target-kl` stops the epochs: the last minibatch's `approx_kl`, averaged over
/// the MPI ranks, exceeds `target_kl` (Spinning Up's early stopping; CleanRL `ppo_atari.py`
/// breaks on its own `approx_kl > target_kl`). Deciding on the average makes every rank stop at
/// the same epoch, as it must: a rank that left the loop alone would leave the others waiting
/// in the next minibatch's gradient all-reduce. One all-reduce of one value under MPI; the
/// local value in a single process.
pub fn stop_epochs(local_kl: f64, target_kl: f64, dist: &Dist) -> bool {
    let mut kl = [local_kl as f32];
    dist.mean_in_place(&mut kl);
    f64::from(kl[0]) > target_kl
}

/// GAE over the rollout, then `update_epochs` passes of shuffled minibatches.
///
/// Under MPI (`dist` of more than one rank) each rank updates on minibatches of its own
/// rollout, and after each backward pass the gradients are averaged across ranks before the
/// clipping and the Adam step, which are then identical on every rank (CleanRL
/// `ppo_atari_multigpu.py`; baselines' `MpiAdamOptimizer`). Advantages are normalized per local
/// minibatch, as CleanRL's multi-GPU script does.
#[allow(clippy::too_many_arguments)]
pub fn update(
    model: &ActorCritic,
    adam: &mut Adam,
    storage: &Storage,
    next_value: &[f32],
    cfg: &PpoConfig,
    clip_coef: f64,
    device: Device,
    dist: &Dist,
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
    let policy = model.policy();
    // The CNN-LSTM re-runs each minibatch's sequences from the rollout's initial state with
    // the rollout's episode starts (`get_action_and_value(b_obs[mb_inds],
    // initial_lstm_state[:, mbenvinds], b_dones[mb_inds], ...)`).
    let recurrent = match policy {
        Policy::Cnn => None,
        Policy::Lstm => {
            let initial = storage.initial_lstm_state.as_ref().ok_or_else(|| {
                Error::Model("the CNN-LSTM update needs a rollout's initial state".into())
            })?;
            let starts: Vec<f32> = storage
                .starts
                .iter()
                .map(|&s| if s { 1.0 } else { 0.0 })
                .collect();
            let t_len = a.num_steps as i64;
            let starts = tensors::from_f32(&starts, &[t_len, a.num_envs as i64], device);
            Some((initial, starts))
        }
    };
    // Statistics stay on the device and are read once at the end (approx_kl once per epoch
    // with --target-kl), so a GPU never waits for the host inside the loop.
    let zero = || tensors::zeros(&[], Kind::Float, device);
    let (mut pg_last, mut vl_last, mut ent_last, mut kl_last) = (zero(), zero(), zero(), zero());
    let mut clipfrac_sum = zero();
    let mut first_drift = zero();
    let mut taken = 0u32;
    let mut allreduce_s = 0.0;
    'epochs: for _ in 0..a.update_epochs {
        for minibatch in minibatches(cfg, policy, device) {
            let mb = minibatch.index;
            let mb_obs = b_obs.index_select(0, &mb);
            let (logits, new_value) = match (&recurrent, &minibatch.envs) {
                (Some((initial, starts)), Some(envs)) => model.forward_sequences(
                    &mb_obs,
                    &initial.select(envs),
                    &starts.index_select(1, envs),
                ),
                _ => model.forward(&mb_obs),
            };
            let l = minibatch_loss(
                &logits,
                &new_value,
                &Targets {
                    actions: b_actions.index_select(0, &mb),
                    logprobs: b_logprobs.index_select(0, &mb),
                    values: b_values.index_select(0, &mb),
                    advantages: b_adv.index_select(0, &mb),
                    returns: b_ret.index_select(0, &mb),
                },
                cfg,
                clip_coef,
            );
            no_grad(|| {
                if taken == 0 {
                    first_drift = (&l.ratio - 1.0).abs().max();
                }
                kl_last = ((&l.ratio - 1.0) - &l.logratio).mean(Kind::Float);
                clipfrac_sum += (&l.ratio - 1.0)
                    .abs()
                    .gt(clip_coef)
                    .to_kind(Kind::Float)
                    .mean(Kind::Float);
            });
            taken += 1;
            let (pg, vl, ent) = (l.pg, l.vl, l.ent);
            zero_grad(&params);
            l.loss.backward();
            allreduce_s += dist.average_gradients(&params)?;
            clip_grad_norm(&params, a.max_grad_norm);
            adam.step(&params);
            (pg_last, vl_last, ent_last) = (pg.detach(), vl.detach(), ent.detach());
        }
        if let Some(target) = a.target_kl {
            if stop_epochs(kl_last.double_value(&[]), target, dist) {
                break 'epochs;
            }
        }
    }
    let stats = UpdateStats {
        pg_loss: pg_last.double_value(&[]),
        v_loss: vl_last.double_value(&[]),
        entropy: ent_last.double_value(&[]),
        approx_kl: kl_last.double_value(&[]),
        clipfrac: clipfrac_sum.double_value(&[]) / f64::from(taken.max(1)),
        first_ratio_drift: first_drift.double_value(&[]),
        explained_variance: explained_variance(&values_cpu, &ret),
        minibatches: taken,
        allreduce_s,
    };
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ppo::args::tests::parse;

    fn cfg(policy: &str) -> PpoConfig {
        let a = parse(&[
            "--policy",
            policy,
            "--num-envs",
            "6",
            "--num-steps",
            "5",
            "--num-minibatches",
            "3",
        ]);
        PpoConfig::from_args(&a).expect("config")
    }

    fn indices(t: &Tensor) -> Vec<i64> {
        Vec::try_from(t).expect("indices")
    }

    #[test]
    fn lstm_minibatches_are_whole_environment_sequences() {
        // 6 envs x 5 steps in 3 minibatches: each must be all 5 steps of 2 envs, time-major
        // (position t * 2 + e holds t * 6 + envs[e]), the envs of an epoch a permutation.
        tch::manual_seed(3);
        for _epoch in 0..3 {
            let mbs = minibatches(&cfg("lstm"), Policy::Lstm, Device::Cpu);
            assert_eq!(mbs.len(), 3);
            let mut all_envs = Vec::new();
            for mb in &mbs {
                let envs = indices(mb.envs.as_ref().expect("envs"));
                assert_eq!(envs.len(), 2, "num_envs / num_minibatches envs");
                let want: Vec<i64> = (0..5)
                    .flat_map(|t| envs.iter().map(move |e| t * 6 + e))
                    .collect();
                assert_eq!(indices(&mb.index), want, "every step of envs {envs:?}");
                all_envs.extend(envs);
            }
            all_envs.sort_unstable();
            assert_eq!(all_envs, (0..6).collect::<Vec<i64>>());
        }
        // The CNN keeps ppo_atari.py's shuffled steps: 3 x 10 of the 30, all covered.
        let mbs = minibatches(&cfg("cnn"), Policy::Cnn, Device::Cpu);
        let mut all: Vec<i64> = mbs.iter().flat_map(|m| indices(&m.index)).collect();
        assert!(mbs
            .iter()
            .all(|m| m.envs.is_none() && m.index.size() == [10]));
        all.sort_unstable();
        assert_eq!(all, (0..30).collect::<Vec<i64>>());
    }
}
