//! Adam (Kingma & Ba 2015) with PyTorch's update rule (`torch.optim.Adam`, no weight decay,
//! no amsgrad), kept in Rust so its moments can be checkpointed and resumed exactly, plus
//! global-norm gradient clipping as `torch.nn.utils.clip_grad_norm_`.

use tch::{no_grad, Device, Kind, Tensor};

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
    /// Update contiguous f32 CPU parameters in one pass ([`fused_cpu_step`]); off, every
    /// parameter takes the tensor path CUDA uses (tests compare the two).
    pub fused_cpu: bool,
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
            fused_cpu: true,
        }
    }

    /// A copy of the state with the moments on the host (what a checkpoint stores), to be
    /// written from another thread while this one keeps training.
    pub fn host_copy(&self) -> Self {
        let host = |ts: &[Tensor]| -> Vec<Tensor> {
            ts.iter()
                .map(|t| t.detach().to_device(Device::Cpu).copy())
                .collect()
        };
        Self {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            step: self.step,
            m: host(&self.m),
            v: host(&self.v),
            fused_cpu: self.fused_cpu,
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
                let step_size = self.lr / bc1;
                if self.fused_cpu
                    && fused_cpu_step(
                        p, &g, m, v, self.beta1, self.beta2, bc2, self.eps, step_size,
                    )
                {
                    continue;
                }
                // PyTorch's single-tensor Adam, in place: 9 elementwise passes per parameter
                // instead of 13. exp_avg.lerp_(grad, 1 - beta1);
                let _ = m.lerp_(&g, 1.0 - self.beta1);
                // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value = 1 - beta2);
                let _ = v.g_mul_scalar_(self.beta2);
                let _ = v.addcmul_(&g, &(&g * (1.0 - self.beta2)));
                // param.addcdiv_(exp_avg, sqrt(v) / sqrt(bc2) + eps, value = -step_size),
                // with -1 / step_size folded into the denominator (tch's addcdiv_ has no
                // value argument).
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

/// Gradients below this magnitude count as 0 in the CPU step: `(1 - beta2) * g * g` stays a
/// normal f32 (>= 1.2e-38) for `|g| >= G_FLUSH` and any `beta2 <= 0.999`.
const G_FLUSH: f32 = 3.5e-18;
/// First moments below this magnitude count as 0 in the CPU step (their products with
/// `1 - beta1` and the step size stay normal).
const M_FLUSH: f32 = 1e-28;
/// Second moments below this count as 0 in the CPU step (`beta2 * v` stays normal).
const V_FLUSH: f32 = 1e-37;

/// Adam's update of one contiguous f32 CPU parameter in a single pass over `p`, `g`, `m`, `v`
/// (the tensor path reads and writes them in 9 passes), with PyTorch's single-tensor
/// arithmetic per element: `m += (1 - beta1) * (g - m)` (`lerp_`), `v = beta2 * v +
/// (1 - beta2) * g * g`, `p -= step_size * m / (sqrt(v) / sqrt(bc2) + eps)`. Returns false,
/// touching nothing, for any other tensor (CUDA, another dtype, a strided view).
///
/// Inputs too small for their products to stay normal floats count as zero: `|g| <`
/// [`G_FLUSH`], `|m| <` [`M_FLUSH`], `v <` [`V_FLUSH`]. x86 cores take a microcode assist for
/// every subnormal operand or result, and training produces them (gradients near 1e-21,
/// second moments decaying below 1e-38): one step over DQN's 1.69M parameters took 30-43 ms
/// instead of 1 ms when they were subnormal. The flushed terms move a parameter by less than
/// `step_size * 1e-10`, far below f32 rounding of the parameters; CUDA computes through
/// subnormals at full speed, so the tensor path keeps them.
#[allow(clippy::too_many_arguments)]
fn fused_cpu_step(
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    beta1: f64,
    beta2: f64,
    bc2: f64,
    eps: f64,
    step_size: f64,
) -> bool {
    let n = p.numel();
    let fits = |t: &Tensor| {
        t.device() == Device::Cpu && t.kind() == Kind::Float && t.is_contiguous() && t.numel() == n
    };
    if ![p, g, m, v].into_iter().all(fits) {
        return false;
    }
    // SAFETY: the four tensors are distinct contiguous f32 CPU buffers of `n` elements (the
    // checks above; a parameter, its gradient and its two moments never alias), alive for
    // this call, and nothing else touches them during it (autograd is off, one thread).
    let (p, g, m, v) = unsafe {
        (
            std::slice::from_raw_parts_mut(p.data_ptr().cast::<f32>(), n),
            std::slice::from_raw_parts(g.data_ptr().cast::<f32>().cast_const(), n),
            std::slice::from_raw_parts_mut(m.data_ptr().cast::<f32>(), n),
            std::slice::from_raw_parts_mut(v.data_ptr().cast::<f32>(), n),
        )
    };
    let (w1, b2, w2) = ((1.0 - beta1) as f32, beta2 as f32, (1.0 - beta2) as f32);
    let (inv_sqrt_bc2, eps, step) = ((1.0 / bc2.sqrt()) as f32, eps as f32, step_size as f32);
    for i in 0..n {
        let gi = if g[i].abs() < G_FLUSH { 0.0 } else { g[i] };
        let m0 = if m[i].abs() < M_FLUSH { 0.0 } else { m[i] };
        let v0 = if v[i] < V_FLUSH { 0.0 } else { v[i] };
        let mi = m0 + w1 * (gi - m0);
        let vi = v0 * b2 + w2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= step * mi / (vi.sqrt() * inv_sqrt_bc2 + eps);
    }
    true
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

    /// The single-pass CPU loop and the tensor path (CUDA's) agree over five steps of a
    /// gradient that changes every step, moments included.
    #[test]
    fn fused_cpu_step_matches_the_tensor_path() {
        let run = |fused: bool| {
            let p =
                Tensor::from_slice(&[0.5f32, -1.5, 2.0, 1e-3, -7.0, 0.25]).set_requires_grad(true);
            let mut adam = Adam::new(&[p.shallow_clone()], 0.01, 1e-8);
            adam.fused_cpu = fused;
            for k in 1..=5 {
                zero_grad(&[p.shallow_clone()]);
                let c = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0, 1e-4, -0.7]) * f64::from(k);
                (&p * &p * &c).sum(tch::Kind::Float).backward();
                adam.step(&[p.shallow_clone()]);
            }
            let v = |t: &Tensor| Vec::<f32>::try_from(t.detach()).expect("vec");
            (v(&p), v(&adam.m[0]), v(&adam.v[0]))
        };
        let (fused, tensor) = (run(true), run(false));
        for (a, b) in [
            (fused.0, tensor.0),
            (fused.1, tensor.1),
            (fused.2, tensor.2),
        ] {
            for (x, y) in a.iter().zip(&b) {
                // Relative 1e-6, against at least the size of the updates (lr 0.01), where
                // cancellation leaves rounding differences larger than the value.
                assert!((x - y).abs() <= 1e-6 * y.abs().max(1e-2), "{a:?} vs {b:?}");
            }
        }
    }
    use tch::{Device, Kind};

    #[test]
    fn the_cpu_step_flushes_subnormal_moments_and_still_matches_the_tensor_path() {
        // Gradients of 1e-21 and 2e-18 (below G_FLUSH), 1e-3 and 5e-18 (above): the tensor path
        // makes second moments of about 1e-45 and 4e-39 (subnormal) for the first two; the CPU
        // step stores exact zeros there, keeps the others, and the parameters agree to f32
        // rounding (the flushed terms move them by ~1e-15).
        let grads = [1e-21f32, 2e-18, 1e-3, 5e-18];
        let run = |fused: bool| {
            let p = Tensor::from_slice(&[0.5f32, -0.25, 1.0, 2.0]).set_requires_grad(true);
            let mut adam = Adam::new(&[p.shallow_clone()], 0.01, 1e-8);
            adam.fused_cpu = fused;
            for _ in 0..3 {
                zero_grad(&[p.shallow_clone()]);
                (&p * Tensor::from_slice(&grads))
                    .sum(Kind::Float)
                    .backward();
                adam.step(&[p.shallow_clone()]);
            }
            let v = |t: &Tensor| Vec::<f32>::try_from(t.detach()).expect("vec");
            (v(&p), v(&adam.m[0]), v(&adam.v[0]))
        };
        let ((p, m, v), (p_t, m_t, v_t)) = (run(true), run(false));
        assert!(
            v_t[0] > 0.0 && v_t[0] < f32::MIN_POSITIVE,
            "tensor path: {v_t:?}"
        );
        assert_eq!([m[0], m[1], v[0], v[1]], [0.0; 4], "{m:?} {v:?}");
        assert!(v[2] > 0.0 && v[3] >= f32::MIN_POSITIVE, "{v:?}");
        assert!(
            (m[2] - m_t[2]).abs() <= 1e-6 * m_t[2].abs(),
            "{m:?} vs {m_t:?}"
        );
        for (a, b) in p.iter().zip(&p_t) {
            assert!((a - b).abs() <= 1e-6 * b.abs(), "{p:?} vs {p_t:?}");
        }
    }

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
