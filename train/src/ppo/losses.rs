//! PPO's losses (Schulman et al. 2017; CleanRL `ppo_atari.py`'s update, baselines `ppo2`
//! `model.py`): the clipped surrogate, the (optionally clipped) value loss, log-probabilities
//! and entropy of the categorical policy, and the explained variance CleanRL logs.

use tch::{Kind, Tensor};

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

    #[test]
    fn explained_variance_by_hand() {
        assert_eq!(explained_variance(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), 1.0);
        // y = [1, 2, 3] (var 2/3), pred = [2, 2, 2] (residual var 2/3): 0.
        assert!(explained_variance(&[2.0; 3], &[1.0, 2.0, 3.0]).abs() < 1e-12);
        assert!(explained_variance(&[0.0; 2], &[5.0, 5.0]).is_nan());
    }
}
