//! Cartridge's Adam and gradient clipping against PyTorch's own (`torch.optim.Adam`,
//! `torch.nn.utils.clip_grad_norm_`), over five steps of a gradient that changes every step,
//! where the betas and both bias corrections matter (step 1 alone moves by `lr * sign(g)`
//! whatever they are). The reference numbers were printed by this script with the project's
//! torch (`.venv/bin/python`, torch 2.11.0+cu130, float32):
//!
//! ```python
//! import torch
//! p = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
//! c = torch.tensor([0.5, 2.0, 1.5]); d = torch.tensor([0.3, -1.0, 0.2])
//! opt = torch.optim.Adam([p], lr=0.1, eps=1e-8)
//! for step in range(1, 6):
//!     opt.zero_grad()
//!     (c * p * p + d * p).sum().backward()
//!     opt.step()
//!     print(step, [float(x) for x in p.detach()])
//! a = torch.zeros(2, requires_grad=True); b = torch.zeros(1, requires_grad=True)
//! ((a * torch.tensor([3.0, 4.0])).sum() + (b * torch.tensor([12.0])).sum()).backward()
//! n = torch.nn.utils.clip_grad_norm_([a, b], 6.5)
//! print("norm", float(n), [float(x) for x in a.grad], [float(x) for x in b.grad])
//! ```
//!
//! Sensitivity (same recursion in float32 NumPy): beta2 = 0.99 instead of 0.999 moves the
//! step-5 parameters by 7.5e-4, dropping the second-moment bias correction by up to 3.7; the
//! tolerance here is 1e-6.

// Test fixtures are CPU tensors built directly.
#![allow(clippy::disallowed_methods)]

use cartridge_train::adam::{clip_grad_norm, zero_grad, Adam};
use tch::{Kind, Tensor};

fn values(t: &Tensor) -> Vec<f32> {
    Vec::try_from(&t.detach()).expect("vec")
}

#[test]
fn five_adam_steps_match_torch_optim_adam() {
    // torch's printed values, as the nearest f32 (shortest round-trip form).
    let want: [[f32; 3]; 5] = [
        [0.9, -1.9, 0.4],
        [0.800_288_26, -1.800_144_2, 0.300_967_22],
        [0.701_094_75, -1.700_538_6, 0.203_905_88],
        [0.602_681_7, -1.601_296_8, 0.110_194_41],
        [0.505_346_36, -1.502_539_9, 0.021_649_063],
    ];
    let p = Tensor::from_slice(&[1.0f32, -2.0, 0.5]).set_requires_grad(true);
    let c = Tensor::from_slice(&[0.5f32, 2.0, 1.5]);
    let d = Tensor::from_slice(&[0.3f32, -1.0, 0.2]);
    let params = [p.shallow_clone()];
    let mut adam = Adam::new(&params, 0.1, 1e-8);
    for (step, w) in want.iter().enumerate() {
        zero_grad(&params);
        (&c * &p * &p + &d * &p).sum(Kind::Float).backward();
        adam.step(&params);
        let got = values(&p);
        for (g, w) in got.iter().zip(w) {
            assert!(
                (g - w).abs() <= 1e-6,
                "step {}: {got:?} vs torch {w:?}",
                step + 1
            );
        }
    }
    assert_eq!(adam.step, 5);
}

#[test]
fn clip_grad_norm_matches_torch_over_two_tensors() {
    // Gradients (3, 4) and (12): global norm 13; clipped to 6.5 every gradient halves (torch:
    // 1.4999999, 1.9999999, 5.9999995, from the coefficient 6.5 / (13 + 1e-6)).
    let a = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    let b = Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    ((&a * Tensor::from_slice(&[3.0f32, 4.0])).sum(Kind::Float)
        + (&b * Tensor::from_slice(&[12.0f32])).sum(Kind::Float))
    .backward();
    let norm = clip_grad_norm(&[a.shallow_clone(), b.shallow_clone()], 6.5).expect("grads");
    assert!((norm.double_value(&[]) - 13.0).abs() < 1e-6);
    let (ga, gb) = (values(&a.grad()), values(&b.grad()));
    for (g, w) in ga
        .iter()
        .chain(&gb)
        .zip([1.499_999_9f32, 1.999_999_9, 5.999_999_5])
    {
        assert!((g - w).abs() <= 1e-6, "{ga:?} {gb:?}");
    }
}
