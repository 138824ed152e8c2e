//! Cartridge's Adam (`cartridge_train::adam::Adam`) and `clip_grad_norm` against PyTorch's own
//! `torch.optim.Adam` and `torch.nn.utils.clip_grad_norm_`, complementing `adam_reference.rs`
//! with a harder case: five steps over two parameter tensors (a vector and a 2x2 matrix) plus
//! one that never gets a gradient, on a quadratic loss whose gradient changes sign (so the
//! betas and both bias corrections matter; step 1 alone moves by `lr * sign(g)`), with one
//! gradient of ~3e-7 where `eps` = 1e-8 is 2-3% of the denominator (so where `eps` is added
//! matters too). After the last step the moments (`m`, `v`, which checkpoints save) must equal
//! torch's `exp_avg` / `exp_avg_sq`. Clipping is checked over two tensors and one without a
//! gradient.
//!
//! Every reference number below was printed by this script, run with the project's torch
//! (`.venv/bin/python`, torch 2.11.0+cu130, numpy 2.2.6, CPU, float32):
//!
//! ```python
//! import numpy as np, torch
//! f = lambda t: ", ".join(str(np.float32(x)) for x in t.detach().flatten())
//! p = torch.tensor([0.05, -2.0, 0.5], requires_grad=True)
//! c = torch.tensor([10.0, 2.0, 1e-7]); d = torch.tensor([0.3, -1.0, 3e-7])
//! q = torch.tensor([[0.3, -0.7], [1.5, 0.0]], requires_grad=True)
//! cq = torch.tensor([[1.0, 1.0], [0.25, 3.0]]); dq = torch.tensor([[0.0, 0.5], [-0.2, 0.1]])
//! r = torch.tensor([4.0, -4.0], requires_grad=True)  # never in the loss: no gradient
//! opt = torch.optim.Adam([p, q, r], lr=0.1, eps=1e-8)
//! for step in range(1, 6):
//!     opt.zero_grad()
//!     ((c * p * p + d * p).sum() + (cq * q * q + dq * q).sum()).backward()
//!     opt.step()
//!     print(step, "p", f(p), "q", f(q))
//! for name, t in (("p", p), ("q", q)):
//!     s = opt.state[t]
//!     print("m", name, f(s["exp_avg"]), "v", name, f(s["exp_avg_sq"]))
//! print("r", f(r), "state", len(opt.state[r]))
//! a = torch.zeros(3, requires_grad=True); b = torch.zeros(2, 1, requires_grad=True)
//! z = torch.zeros(2, requires_grad=True)  # no gradient
//! ((a * torch.tensor([2.0, -1.0, 2.0])).sum() + (b * torch.tensor([[0.0], [4.0]])).sum()).backward()
//! n = torch.nn.utils.clip_grad_norm_([a, b, z], 2.0)
//! print("norm", str(np.float32(n)), "a", f(a.grad), "b", f(b.grad))
//! print("torch", torch.__version__)
//! ```
//!
//! Sensitivity, checked with a hand-written float32 Adam in torch on the same problem: in
//! Rust's order of operations it stays within 0.19 times the tolerance of torch (max |diff|
//! 6.0e-8), while a second-moment bias correction of 1 is off by up to 3.7 (3e7 times the
//! tolerance), a first-moment one of 1 by 0.37, beta2 = 0.99 by 8.8e-4, beta1 = 0.8 by 2.0e-2,
//! and `eps` added before the bias correction by 0.15.

// Test fixtures are CPU tensors built directly.
#![allow(clippy::disallowed_methods)]

use cartridge_train::adam::{clip_grad_norm, zero_grad, Adam};
use tch::{Kind, Tensor};

fn values(t: &Tensor) -> Vec<f32> {
    Vec::try_from(&t.detach().flatten(0, -1)).expect("f32 values")
}

/// Within 1e-6 relative, or 1e-7 absolute near zero.
fn close(got: f32, want: f32) -> bool {
    (got - want).abs() <= (1e-6 * want.abs()).max(1e-7)
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs torch {want:?}");
    assert!(
        got.iter().zip(want).all(|(&g, &w)| close(g, w)),
        "{what}: {got:?} vs torch {want:?}"
    );
}

#[test]
fn adam_matches_torch_over_two_tensors_five_steps() {
    // The script's lines "1 p ... q ..." to "5 p ... q ...".
    let want_p: [[f32; 3]; 5] = [
        [-0.049999993, -1.9, 0.40243903],
        [-0.07369686, -1.8001442, 0.30509427],
        [-0.04825182, -1.7005386, 0.2080844],
        [-0.009256411, -1.6012968, 0.11153714],
        [0.020517, -1.5025399, 0.015589401],
    ];
    let want_q: [[f32; 4]; 5] = [
        [0.20000002, -0.6, 1.4, -0.1],
        [0.1029648, -0.50141895, 1.3003612, -0.040164586],
        [0.013288982, -0.40590936, 1.2013824, 0.021446556],
        [-0.062182665, -0.31589675, 1.103414, 0.04468794],
        [-0.11617778, -0.23463783, 1.0068636, 0.031845853],
    ];
    let p = Tensor::from_slice(&[0.05f32, -2.0, 0.5]).set_requires_grad(true);
    let c = Tensor::from_slice(&[10.0f32, 2.0, 1e-7]);
    let d = Tensor::from_slice(&[0.3f32, -1.0, 3e-7]);
    let q = Tensor::from_slice(&[0.3f32, -0.7, 1.5, 0.0])
        .reshape([2, 2])
        .set_requires_grad(true);
    let cq = Tensor::from_slice(&[1.0f32, 1.0, 0.25, 3.0]).reshape([2, 2]);
    let dq = Tensor::from_slice(&[0.0f32, 0.5, -0.2, 0.1]).reshape([2, 2]);
    // Never in the loss: no gradient, so Adam must leave it (and its moments) alone.
    let r = Tensor::from_slice(&[4.0f32, -4.0]).set_requires_grad(true);
    let params = [p.shallow_clone(), q.shallow_clone(), r.shallow_clone()];
    let mut adam = Adam::new(&params, 0.1, 1e-8);
    for (step, (wp, wq)) in want_p.iter().zip(&want_q).enumerate() {
        zero_grad(&params);
        ((&c * &p * &p + &d * &p).sum(Kind::Float) + (&cq * &q * &q + &dq * &q).sum(Kind::Float))
            .backward();
        adam.step(&params);
        assert_close(&format!("p after step {}", step + 1), &values(&p), wp);
        assert_close(&format!("q after step {}", step + 1), &values(&q), wq);
    }
    assert_eq!(adam.step, 5);
    assert!(!r.grad().defined(), "r got a gradient");
    assert_eq!(
        values(&r),
        [4.0, -4.0],
        "a parameter without gradient moved"
    );

    // The script's "m p ... v p ..." and "m q ... v q ..." lines (torch's exp_avg, exp_avg_sq).
    assert_close(
        "m of p",
        &values(&adam.m[0]),
        &[-0.109192, -3.3243895, 1.4620036e-07],
    );
    assert_close(
        "m of q",
        &values(&adam.m[1]),
        &[0.075161785, -0.19205192, 0.18023305, 0.016084917],
    );
    // Second moments span 6.5e-16 to 0.34: relative 1e-6 only.
    for (what, got, want) in [
        (
            "v of p",
            values(&adam.v[0]),
            vec![0.0040021813f32, 0.33717945, 6.5423967e-16],
        ),
        (
            "v of q",
            values(&adam.v[1]),
            vec![0.0005765775, 0.0016621401, 0.0010368908, 0.0004668085],
        ),
    ] {
        assert!(
            got.len() == want.len()
                && got
                    .iter()
                    .zip(&want)
                    .all(|(g, w)| (g - w).abs() <= 1e-6 * w.abs()),
            "{what}: {got:?} vs torch {want:?}"
        );
    }
    // torch keeps no state for r ("state 0").
    assert_eq!(values(&adam.m[2]), [0.0, 0.0]);
    assert_eq!(values(&adam.v[2]), [0.0, 0.0]);
}

#[test]
fn clip_grad_norm_matches_torch_with_a_gradientless_parameter() {
    // Gradients (2, -1, 2) (norm 3) and [[0], [4]] (norm 4): global norm 5; clipped to 2 every
    // gradient is multiplied by 2 / (5 + 1e-6). z has no gradient and is skipped. The script's
    // line "norm 5.0 a 0.79999983, -0.39999992, 0.79999983 b 0.0, 1.5999997".
    let a = Tensor::from_slice(&[0.0f32, 0.0, 0.0]).set_requires_grad(true);
    let b = Tensor::from_slice(&[0.0f32, 0.0])
        .reshape([2, 1])
        .set_requires_grad(true);
    let z = Tensor::from_slice(&[0.0f32, 0.0]).set_requires_grad(true);
    ((&a * Tensor::from_slice(&[2.0f32, -1.0, 2.0])).sum(Kind::Float)
        + (&b * Tensor::from_slice(&[0.0f32, 4.0]).reshape([2, 1])).sum(Kind::Float))
    .backward();
    let norm = clip_grad_norm(
        &[a.shallow_clone(), b.shallow_clone(), z.shallow_clone()],
        2.0,
    )
    .expect("two parameters have a gradient");
    let norm = norm.double_value(&[]) as f32;
    assert!(close(norm, 5.0), "norm {norm} vs torch 5.0");
    assert_close(
        "a's clipped gradient",
        &values(&a.grad()),
        &[0.79999983, -0.39999992, 0.79999983],
    );
    assert_close(
        "b's clipped gradient",
        &values(&b.grad()),
        &[0.0, 1.5999997],
    );
    assert!(!z.grad().defined(), "z got a gradient");
}
