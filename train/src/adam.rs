//! Adam (Kingma & Ba 2015) with PyTorch's update rule (`torch.optim.Adam`, no weight decay,
//! no amsgrad), kept in Rust so its moments can be checkpointed and resumed exactly, plus
//! global-norm gradient clipping as `torch.nn.utils.clip_grad_norm_`.

use tch::{no_grad, Tensor};

/// Adam state for a fixed list of parameters.
#[derive(Debug)]
pub struct Adam {
    /// Learning rate (set each iteration by the annealing schedule).
    pub lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Updates taken.
    pub step: i64,
    /// First moments, one per parameter.
    pub m: Vec<Tensor>,
    /// Second moments, one per parameter.
    pub v: Vec<Tensor>,
}

impl Adam {
    /// Zero moments for `params`; betas (0.9, 0.999) as PyTorch's defaults.
    pub fn new(params: &[Tensor], lr: f64, eps: f64) -> Self {
        let zeros = || params.iter().map(Tensor::zeros_like).collect::<Vec<_>>();
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps,
            step: 0,
            m: zeros(),
            v: zeros(),
        }
    }

    /// One update: `p -= lr * m_hat / (sqrt(v_hat) + eps)`. Parameters without a gradient
    /// are skipped.
    pub fn step(&mut self, params: &[Tensor]) {
        self.step += 1;
        let bc1 = 1.0 - self.beta1.powi(self.step as i32);
        let bc2 = 1.0 - self.beta2.powi(self.step as i32);
        no_grad(|| {
            for ((p, m), v) in params.iter().zip(&mut self.m).zip(&mut self.v) {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                debug_assert!(
                    g.device() == m.device() && p.device() == v.device(),
                    "parameter, gradient and moments must share a device"
                );
                // PyTorch's single-tensor Adam, in place: 9 elementwise passes per parameter
                // instead of 13. exp_avg.lerp_(grad, 1 - beta1);
                let _ = m.lerp_(&g, 1.0 - self.beta1);
                // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value = 1 - beta2);
                let _ = v.g_mul_scalar_(self.beta2);
                let _ = v.addcmul_(&g, &(&g * (1.0 - self.beta2)));
                // param.addcdiv_(exp_avg, sqrt(v) / sqrt(bc2) + eps, value = -step_size),
                // with -1 / step_size folded into the denominator (tch's addcdiv_ has no
                // value argument).
                let step_size = self.lr / bc1;
                if step_size == 0.0 {
                    continue;
                }
                let mut denom = v.sqrt();
                let _ = denom.g_mul_scalar_(1.0 / bc2.sqrt());
                let _ = denom.g_add_scalar_(self.eps);
                let _ = denom.g_mul_scalar_(-1.0 / step_size);
                let _ = p.shallow_clone().addcdiv_(&*m, &denom);
            }
        });
    }
}

/// Zeroes the gradients of `params` (those that have one), as `optimizer.zero_grad()`.
pub fn zero_grad(params: &[Tensor]) {
    for p in params {
        let mut g = p.grad();
        if g.defined() {
            let _ = g.zero_();
        }
    }
}

/// Scales all gradients so their global L2 norm is at most `max_norm`, on their device
/// without a host sync, as `torch.nn.utils.clip_grad_norm_`: every gradient is multiplied by
/// `clamp_max(max_norm / (norm + 1e-6), 1)`. Returns the norm before clipping as a 0-dim
/// tensor on the gradients' device (undefined-gradient parameters are skipped; `None` when no
/// parameter has a gradient).
pub fn clip_grad_norm(params: &[Tensor], max_norm: f64) -> Option<Tensor> {
    no_grad(|| {
        let grads: Vec<Tensor> = params
            .iter()
            .map(Tensor::grad)
            .filter(Tensor::defined)
            .collect();
        if grads.is_empty() {
            return None;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm();
        let coef = ((&total + 1e-6).reciprocal() * max_norm).clamp_max(1.0);
        for g in &grads {
            let _ = g.shallow_clone().g_mul_(&coef);
        }
        Some(total)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn first_adam_step_moves_by_lr_times_sign() {
        // Step 1: m_hat = g, v_hat = g^2, so the update is lr * g / (|g| + eps) ~ lr * sign(g).
        let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let loss = (&p * Tensor::from_slice(&[3.0f32, -0.5])).sum(Kind::Float);
        loss.backward();
        let mut adam = Adam::new(std::slice::from_ref(&p), 0.1, 1e-8);
        adam.step(std::slice::from_ref(&p));
        let v: Vec<f32> = p.detach().to_device(Device::Cpu).try_into().expect("vec");
        assert!(
            (v[0] - 0.9).abs() < 1e-6 && (v[1] - (-1.9)).abs() < 1e-6,
            "{v:?}"
        );
    }

    #[test]
    fn clip_leaves_small_gradients_alone() {
        // Norm 5 under max_norm 10: coefficient clamps to 1, the gradient is unchanged.
        let p = Tensor::from_slice(&[0.0f32, 0.0]).set_requires_grad(true);
        (&p * Tensor::from_slice(&[3.0f32, 4.0]))
            .sum(Kind::Float)
            .backward();
        clip_grad_norm(std::slice::from_ref(&p), 10.0);
        let g: Vec<f32> = p.grad().try_into().expect("vec");
        assert_eq!(g, [3.0, 4.0]);
    }

    #[test]
    fn clip_scales_to_max_norm() {
        // Gradient (3, 4) has norm 5; clipping to 1 gives (0.6, 0.8) (coef 1/(5+1e-6)).
        let p = Tensor::from_slice(&[0.0f32, 0.0]).set_requires_grad(true);
        (&p * Tensor::from_slice(&[3.0f32, 4.0]))
            .sum(Kind::Float)
            .backward();
        let n = clip_grad_norm(std::slice::from_ref(&p), 1.0).expect("a gradient");
        assert!((n.double_value(&[]) - 5.0).abs() < 1e-5);
        let g: Vec<f32> = p.grad().try_into().expect("vec");
        assert!(
            (g[0] - 0.6).abs() < 1e-5 && (g[1] - 0.8).abs() < 1e-5,
            "{g:?}"
        );
    }
}
