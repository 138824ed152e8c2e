//! The Nature CNN (Mnih et al. 2015, "Human-level control through deep reinforcement
//! learning") with PPO or DQN heads, and the CNN-LSTM PPO policy: parameter names, shapes and
//! initialisation. A network is an [`Arch`]: the learner's heads ([`Algo`]) on a trunk
//! ([`Policy`]).
//!
//! Names follow CleanRL's PyTorch `state_dict` keys (`ppo_atari.py` `Agent`,
//! `dqn_atari.py` `QNetwork`, `ppo_atari_lstm.py` `Agent`), so a CleanRL model converts by
//! name:
//!
//! | layer | parameter | shape |
//! |---|---|---|
//! | Conv 8x8 stride 4 | `network.0.weight`, `network.0.bias` | `[32, S, 8, 8]`, `[32]` |
//! | Conv 4x4 stride 2 | `network.2.weight`, `network.2.bias` | `[64, 32, 4, 4]`, `[64]` |
//! | Conv 3x3 stride 1 | `network.4.weight`, `network.4.bias` | `[64, 64, 3, 3]`, `[64]` |
//! | Linear 3136 -> 512 | `network.7.weight`, `network.7.bias` | `[512, 3136]`, `[512]` |
//! | LSTM 512 -> 128 (CNN-LSTM only) | `lstm.weight_ih_l0`, `lstm.weight_hh_l0` | `[512, 512]`, `[512, 128]` |
//! | | `lstm.bias_ih_l0`, `lstm.bias_hh_l0` | `[512]`, `[512]` |
//! | PPO policy head | `actor.weight`, `actor.bias` | `[A, F]`, `[A]` |
//! | PPO value head | `critic.weight`, `critic.bias` | `[1, F]`, `[1]` |
//! | DQN Q head | `network.9.weight`, `network.9.bias` | `[A, 512]`, `[A]` |
//!
//! `S` is the frame stack (4 for the CNN, 1 for the CNN-LSTM) and `F` the heads' input (512
//! for the CNN, the LSTM's 128 hidden units for the CNN-LSTM). ReLU follows every trunk layer;
//! the flatten between conv and linear is channel-major (`64 * 7 * 7 = 3136`). Linear weights
//! are PyTorch's `[out, in]`. The LSTM's four gates are stacked in PyTorch's order (`nn.LSTM`:
//! input `i`, forget `f`, cell `g`, output `o`, 128 rows each); ONNX's `LSTM` operator wants
//! `i, o, f, c` ([`ONNX_GATE_ORDER`]).

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::{Tensor, Tensors};

/// Input planes of the CNN policy: the frame stack (the CNN-LSTM takes
/// [`cartridge_contract::LSTM_FRAME_STACK`]; see [`Policy::frame_stack`]).
pub const IN_CHANNELS: usize = cartridge_contract::FRAME_STACK;
/// Input height and width (WarpFrame's 84x84 gray).
pub const IN_SIZE: usize = cartridge_contract::FRAME_HEIGHT;
const _: () = assert!(cartridge_contract::FRAME_WIDTH == IN_SIZE, "square frames");
/// Width of the trunk's last hidden layer (the heads' input).
pub const FEATURES: usize = 512;
/// Length of the flattened conv output (`64 * 7 * 7`).
pub const FLAT: usize = 64 * 7 * 7;

/// One convolution of the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvLayer {
    /// Weight name (`[out, in, k, k]`).
    pub weight: &'static str,
    /// Bias name (`[out]`).
    pub bias: &'static str,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride in both directions (no padding, no dilation).
    pub stride: usize,
}

/// The trunk's convolutions, input first, with the CNN policy's input planes (the CNN-LSTM's
/// first layer takes [`Policy::frame_stack`] planes instead). Each is followed by ReLU.
pub const CONV_LAYERS: [ConvLayer; 3] = [
    ConvLayer {
        weight: "network.0.weight",
        bias: "network.0.bias",
        in_channels: IN_CHANNELS,
        out_channels: 32,
        kernel: 8,
        stride: 4,
    },
    ConvLayer {
        weight: "network.2.weight",
        bias: "network.2.bias",
        in_channels: 32,
        out_channels: 64,
        kernel: 4,
        stride: 2,
    },
    ConvLayer {
        weight: "network.4.weight",
        bias: "network.4.bias",
        in_channels: 64,
        out_channels: 64,
        kernel: 3,
        stride: 1,
    },
];

/// The trunk's fully connected layer (`[512, 3136]`), followed by ReLU.
pub const FC: (&str, &str) = ("network.7.weight", "network.7.bias");
/// PPO policy head (`[A, 512]`): logits.
pub const ACTOR: (&str, &str) = ("actor.weight", "actor.bias");
/// PPO value head (`[1, 512]`).
pub const CRITIC: (&str, &str) = ("critic.weight", "critic.bias");
/// DQN head (`[A, 512]`): Q-values.
pub const Q_HEAD: (&str, &str) = ("network.9.weight", "network.9.bias");

/// LSTM input-hidden weights, PyTorch `nn.LSTM` `weight_ih_l0`: `[4 H, 512]`, gates `i, f, g,
/// o`.
pub const LSTM_W_IH: &str = "lstm.weight_ih_l0";
/// LSTM hidden-hidden weights, `weight_hh_l0`: `[4 H, H]`, gates `i, f, g, o`.
pub const LSTM_W_HH: &str = "lstm.weight_hh_l0";
/// LSTM input-hidden bias, `bias_ih_l0`: `[4 H]`.
pub const LSTM_B_IH: &str = "lstm.bias_ih_l0";
/// LSTM hidden-hidden bias, `bias_hh_l0`: `[4 H]`.
pub const LSTM_B_HH: &str = "lstm.bias_hh_l0";
/// Hidden units `H` of the CNN-LSTM's LSTM.
pub const LSTM_HIDDEN: usize = cartridge_contract::LSTM_HIDDEN;
/// Gate blocks of the LSTM parameters (each `H` rows).
pub const GATES: usize = 4;
/// For each gate block of ONNX's `LSTM` operator (`i, o, f, c`; ONNX operator spec, LSTM,
/// inputs `W`, `R`, `B`), the index of the same gate in PyTorch's order (`i, f, g, o`;
/// `torch.nn.LSTM` docs, `weight_ih_l[k]`).
pub const ONNX_GATE_ORDER: [usize; GATES] = [0, 3, 1, 2];

pub use cartridge_contract::{Algo, Policy};

/// A network: the learner's heads ([`Algo`]) on a trunk ([`Policy`]). Only supported
/// combinations exist: the CNN with either learner, the CNN-LSTM with PPO.
///
/// An [`Algo`] converts into its CNN network, so `param_specs(Algo::Ppo, 4)` means
/// `param_specs(Arch::cnn(Algo::Ppo), 4)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Arch {
    algo: Algo,
    policy: Policy,
}

impl Arch {
    /// The CNN-LSTM PPO policy (CleanRL `ppo_atari_lstm.py`).
    pub const PPO_LSTM: Arch = Arch {
        algo: Algo::Ppo,
        policy: Policy::Lstm,
    };

    /// The Nature CNN with `algo`'s heads.
    pub const fn cnn(algo: Algo) -> Arch {
        Arch {
            algo,
            policy: Policy::Cnn,
        }
    }

    /// `algo`'s heads on `policy`'s trunk.
    ///
    /// # Errors
    /// [`crate::Error::UnsupportedPolicy`] for a combination that does not exist (the LSTM
    /// with DQN).
    pub fn new(algo: Algo, policy: Policy) -> crate::Result<Arch> {
        if policy.supports(algo) {
            Ok(Arch { algo, policy })
        } else {
            Err(crate::Error::UnsupportedPolicy { algo, policy })
        }
    }

    /// The learner.
    pub fn algo(self) -> Algo {
        self.algo
    }

    /// The trunk.
    pub fn policy(self) -> Policy {
        self.policy
    }

    /// Width of the heads' input: [`FEATURES`] (CNN) or [`LSTM_HIDDEN`] (CNN-LSTM).
    pub fn head_inputs(self) -> usize {
        self.policy.hidden_size().unwrap_or(FEATURES)
    }
}

impl From<Algo> for Arch {
    /// The CNN network of `algo` ([`Arch::cnn`]).
    fn from(algo: Algo) -> Arch {
        Arch::cnn(algo)
    }
}

impl std::fmt::Display for Arch {
    /// `ppo` / `dqn` for the CNN (the spelling errors used before recurrent policies), `ppo
    /// (nature_cnn_lstm)` otherwise.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.policy {
            Policy::Cnn => write!(f, "{}", self.algo),
            p => write!(f, "{} ({})", self.algo, p.arch()),
        }
    }
}

/// Name and shape of one parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamSpec {
    /// Parameter name (safetensors tensor name = ONNX initializer name).
    pub name: &'static str,
    /// Shape, PyTorch layout.
    pub shape: Vec<usize>,
}

/// Every parameter of the network `arch` (an [`Arch`], or an [`Algo`] for its CNN) with
/// `n_actions` actions, in a fixed order: trunk input to output (weight before bias), the
/// LSTM for the CNN-LSTM (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`: PyTorch's
/// `named_parameters` order), then the heads (PPO: actor, critic).
///
/// The order is the one [`random_init`] draws in and the ONNX initializer order.
pub fn param_specs(arch: impl Into<Arch>, n_actions: usize) -> Vec<ParamSpec> {
    let arch = arch.into();
    let mut specs = Vec::with_capacity(16);
    for (i, conv) in CONV_LAYERS.iter().enumerate() {
        let in_channels = if i == 0 {
            arch.policy.frame_stack()
        } else {
            conv.in_channels
        };
        specs.push(ParamSpec {
            name: conv.weight,
            shape: vec![conv.out_channels, in_channels, conv.kernel, conv.kernel],
        });
        specs.push(ParamSpec {
            name: conv.bias,
            shape: vec![conv.out_channels],
        });
    }
    let linear = |(weight, bias): (&'static str, &'static str), out: usize, inp: usize| {
        [
            ParamSpec {
                name: weight,
                shape: vec![out, inp],
            },
            ParamSpec {
                name: bias,
                shape: vec![out],
            },
        ]
    };
    specs.extend(linear(FC, FEATURES, FLAT));
    if let Some(hidden) = arch.policy.hidden_size() {
        let gates = GATES * hidden;
        for (name, shape) in [
            (LSTM_W_IH, vec![gates, FEATURES]),
            (LSTM_W_HH, vec![gates, hidden]),
            (LSTM_B_IH, vec![gates]),
            (LSTM_B_HH, vec![gates]),
        ] {
            specs.push(ParamSpec { name, shape });
        }
    }
    let heads_in = arch.head_inputs();
    match arch.algo {
        Algo::Ppo => {
            specs.extend(linear(ACTOR, n_actions, heads_in));
            specs.extend(linear(CRITIC, 1, heads_in));
        }
        Algo::Dqn => specs.extend(linear(Q_HEAD, n_actions, heads_in)),
    }
    specs
}

/// Orthogonal-init gain for the weight `name` (biases are always zero).
///
/// As CleanRL's `ppo_atari.py` `layer_init`: `sqrt(2)` for the trunk (ReLU), `0.01` for the
/// policy head (near-uniform initial policy), `1` for the value head. The DQN head uses `1`
/// (CleanRL's `dqn_atari.py` keeps PyTorch's default init instead; we use one scheme for
/// both). The LSTM's weights use `1` (CleanRL's `ppo_atari_lstm.py`: `orthogonal_(param,
/// 1.0)` for every `lstm` weight).
fn gain(name: &str) -> f64 {
    match name {
        n if n == ACTOR.0 => 0.01,
        n if n == CRITIC.0 || n == Q_HEAD.0 || n == LSTM_W_IH || n == LSTM_W_HH => 1.0,
        _ => std::f64::consts::SQRT_2,
    }
}

/// A freshly initialised network `arch` (an [`Arch`], or an [`Algo`] for its CNN) with
/// `n_actions` actions, deterministic in `seed`.
///
/// Weights get orthogonal init (Saxe et al. 2013, "Exact solutions to the nonlinear dynamics
/// of learning in deep linear neural networks"; as CleanRL `layer_init` / baselines
/// `ortho_init`) with gain `sqrt(2)` for the trunk, `0.01` for the actor, `1` for the critic,
/// the DQN head and the LSTM's two weight matrices (each orthogonalised whole, `[512, in]`,
/// as `nn.init.orthogonal_` in CleanRL's `ppo_atari_lstm.py`); biases, the LSTM's included,
/// are zero. Draws come from one `ChaCha8Rng::seed_from_u64(seed)` in [`param_specs`] order,
/// so the same `(arch, n_actions, seed)` gives identical tensors from one build on one
/// machine; across CPUs the last bits may differ (libm `ln`/`cos`, SIMD matrix kernels). The
/// values differ from PyTorch's for the same seed; only the distribution is the same.
pub fn random_init(arch: impl Into<Arch>, n_actions: usize, seed: u64) -> Tensors {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    param_specs(arch, n_actions)
        .into_iter()
        .map(|spec| {
            let tensor = if spec.shape.len() == 1 {
                Tensor::zeros(spec.shape)
            } else {
                let rows = spec.shape[0];
                let cols = spec.shape[1..].iter().product();
                let data = orthogonal(rows, cols, gain(spec.name), &mut rng);
                Tensor {
                    shape: spec.shape,
                    data,
                }
            };
            (spec.name.to_owned(), tensor)
        })
        .collect()
}

/// PyTorch's default initialisation of `nn.Conv2d` / `nn.Linear` (what CleanRL's
/// `dqn_atari.py` `QNetwork` keeps), deterministic in `seed`: every weight and bias uniform in
/// `[-1/sqrt(fan_in), 1/sqrt(fan_in)]`, `fan_in` = the weight's `in * kh * kw` (PyTorch's
/// `kaiming_uniform_(a=sqrt(5))` bound `gain * sqrt(3 / fan_in)` with `gain = sqrt(2 / (1 + 5))`
/// is that value; the bias bound is `1/sqrt(fan_in)` by `reset_parameters`). Draws come from
/// one `ChaCha8Rng::seed_from_u64(seed)` in [`param_specs`] order; same distribution as
/// PyTorch, not the same values.
pub fn torch_default_init(algo: Algo, n_actions: usize, seed: u64) -> Tensors {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let specs = param_specs(algo, n_actions);
    let fan_in = |name: &str| {
        let layer = name.trim_end_matches(".bias").trim_end_matches(".weight");
        specs
            .iter()
            .find(|s| s.name.strip_suffix(".weight") == Some(layer))
            .map_or(1, |w| w.shape[1..].iter().product::<usize>())
    };
    specs
        .iter()
        .map(|spec| {
            let bound = 1.0 / (fan_in(spec.name) as f64).sqrt();
            let n: usize = spec.shape.iter().product();
            let data = (0..n)
                .map(|_| rng.random_range(-bound..bound) as f32)
                .collect();
            let tensor = Tensor {
                shape: spec.shape.clone(),
                data,
            };
            (spec.name.to_owned(), tensor)
        })
        .collect()
}

/// A `[rows, cols]` row-major matrix with orthonormal rows (if `rows <= cols`) or columns
/// (otherwise), scaled by `gain`: PyTorch's `nn.init.orthogonal_` on a weight viewed as
/// `[out, in * kh * kw]`.
///
/// PyTorch QR-factorises a Gaussian matrix (transposed to be tall) and fixes the signs so
/// that `R` has a positive diagonal, which makes `Q` unique: any QR with a positive-diagonal
/// `R` gives the same `Q`. We use CholeskyQR2 (Fukaya et al. 2014), whose `R` has a positive
/// diagonal by construction and whose work is two matrix products (fast even in debug
/// builds, as `ndarray` hands them to `matrixmultiply`); it is accurate to f64 rounding for
/// Gaussian matrices. Should a Cholesky factorisation break down (a pathologically
/// ill-conditioned draw), modified Gram-Schmidt, slower but unconditional, takes over.
pub(crate) fn orthogonal(rows: usize, cols: usize, gain: f64, rng: &mut impl Rng) -> Vec<f32> {
    let (tall, short) = (rows.max(cols), rows.min(cols));
    // Drawn one column of the tall matrix at a time (= one row of the weight when
    // rows <= cols); the draw order is part of the determinism contract.
    let a = Array2::from_shape_fn((short, tall), |_| gaussian(rng)).reversed_axes();
    let q = cholesky_qr(&a)
        .and_then(|q1| cholesky_qr(&q1))
        .unwrap_or_else(|| gram_schmidt(a));
    let w = if rows <= cols { q.reversed_axes() } else { q };
    w.iter().map(|&x| (x * gain) as f32).collect()
}

/// `Q = A R^-1` where `A^T A = R^T R` (Cholesky), for a tall `[m, n]` matrix `A`. `None` if
/// the Cholesky factorisation breaks down.
fn cholesky_qr(a: &Array2<f64>) -> Option<Array2<f64>> {
    let n = a.ncols();
    let gram = a.t().dot(a);
    let gram = gram.as_slice()?;
    // Lower-triangular L with L L^T = gram, row-major. Plain indexed loops: this runs
    // unoptimised in debug builds, where iterator adapters cost several times more.
    let mut l = vec![0.0f64; n * n];
    for j in 0..n {
        for i in j..n {
            let (li, lj) = (&l[i * n..i * n + j], &l[j * n..j * n + j]);
            let mut dot = 0.0;
            for k in 0..j {
                dot += li[k] * lj[k];
            }
            let s = gram[i * n + j] - dot;
            if i == j {
                // A pivot this small relative to its column's norm means cond(A) > 1e6,
                // beyond what CholeskyQR2 handles accurately.
                if !(s > 1e-12 * gram[j * n + j] && s.is_finite()) {
                    return None;
                }
                l[j * n + j] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
    }
    // X = L^-1 (lower triangular) by forward substitution, one row at a time.
    let mut x = vec![0.0f64; n * n];
    for i in 0..n {
        let (done, row) = x.split_at_mut(i * n);
        let row = &mut row[..=i];
        row[i] = 1.0;
        for k in 0..i {
            let c = l[i * n + k];
            let xk = &done[k * n..k * n + k + 1];
            for m in 0..=k {
                row[m] -= c * xk[m];
            }
        }
        let inv = 1.0 / l[i * n + i];
        for r in row.iter_mut() {
            *r *= inv;
        }
    }
    let linv = Array2::from_shape_vec((n, n), x).ok()?;
    // R = L^T, so R^-1 = (L^-1)^T.
    Some(a.dot(&linv.t()))
}

/// Modified Gram-Schmidt on the columns of a tall matrix: `Q` with the positive-diagonal
/// `R` convention.
fn gram_schmidt(a: Array2<f64>) -> Array2<f64> {
    let (m, n) = a.dim();
    let mut cols: Vec<Vec<f64>> = a.columns().into_iter().map(|c| c.to_vec()).collect();
    for j in 0..n {
        let (done, rest) = cols.split_at_mut(j);
        let v = &mut rest[0];
        for q in done.iter() {
            let dot: f64 = q.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(q).for_each(|(x, qi)| *x -= dot * qi);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        v.iter_mut().for_each(|x| *x *= inv);
    }
    Array2::from_shape_fn((m, n), |(i, j)| cols[j][i])
}

/// Cheap deterministic stand-in for [`random_init`] in unit tests (uniform values in
/// [-0.05, 0.05), no orthogonalisation; debug builds orthogonalise slowly).
#[cfg(test)]
pub(crate) fn test_tensors(arch: impl Into<Arch>, n_actions: usize, seed: u64) -> Tensors {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    param_specs(arch, n_actions)
        .into_iter()
        .map(|spec| {
            let n = spec.shape.iter().product();
            let data = (0..n).map(|_| rng.random_range(-0.05f32..0.05)).collect();
            let tensor = Tensor {
                shape: spec.shape,
                data,
            };
            (spec.name.to_owned(), tensor)
        })
        .collect()
}

/// One standard normal draw (Box-Muller; the second value of the pair is discarded to keep
/// the stream simple).
fn gaussian(rng: &mut impl Rng) -> f64 {
    // 1 - U(0,1] keeps ln away from zero.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn param_specs_match_cleanrl_shapes() {
        let ppo = param_specs(Algo::Ppo, 4);
        let names: Vec<_> = ppo.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "network.0.weight",
                "network.0.bias",
                "network.2.weight",
                "network.2.bias",
                "network.4.weight",
                "network.4.bias",
                "network.7.weight",
                "network.7.bias",
                "actor.weight",
                "actor.bias",
                "critic.weight",
                "critic.bias"
            ]
        );
        let shapes: Vec<_> = ppo.iter().map(|s| s.shape.clone()).collect();
        assert_eq!(
            shapes,
            [
                vec![32, 4, 8, 8],
                vec![32],
                vec![64, 32, 4, 4],
                vec![64],
                vec![64, 64, 3, 3],
                vec![64],
                vec![512, 3136],
                vec![512],
                vec![4, 512],
                vec![4],
                vec![1, 512],
                vec![1]
            ]
        );
        let dqn = param_specs(Algo::Dqn, 6);
        assert_eq!(dqn.len(), 10);
        assert_eq!(dqn[8].name, "network.9.weight");
        assert_eq!(dqn[8].shape, [6, 512]);
        assert_eq!(dqn[9].shape, [6]);
    }

    #[test]
    fn lstm_param_specs_match_cleanrl_ppo_atari_lstm() {
        // CleanRL ppo_atari_lstm.py `Agent.state_dict()` order and shapes.
        let specs = param_specs(Arch::PPO_LSTM, 4);
        let got: Vec<(&str, Vec<usize>)> =
            specs.iter().map(|s| (s.name, s.shape.clone())).collect();
        let want: Vec<(&str, Vec<usize>)> = vec![
            ("network.0.weight", vec![32, 1, 8, 8]),
            ("network.0.bias", vec![32]),
            ("network.2.weight", vec![64, 32, 4, 4]),
            ("network.2.bias", vec![64]),
            ("network.4.weight", vec![64, 64, 3, 3]),
            ("network.4.bias", vec![64]),
            ("network.7.weight", vec![512, 3136]),
            ("network.7.bias", vec![512]),
            ("lstm.weight_ih_l0", vec![512, 512]),
            ("lstm.weight_hh_l0", vec![512, 128]),
            ("lstm.bias_ih_l0", vec![512]),
            ("lstm.bias_hh_l0", vec![512]),
            ("actor.weight", vec![4, 128]),
            ("actor.bias", vec![4]),
            ("critic.weight", vec![1, 128]),
            ("critic.bias", vec![1]),
        ];
        assert_eq!(got, want);
        // An Algo means its CNN.
        assert_eq!(
            param_specs(Algo::Dqn, 6),
            param_specs(Arch::cnn(Algo::Dqn), 6)
        );
        assert_eq!(
            Arch::from(Algo::Ppo),
            Arch::new(Algo::Ppo, Policy::Cnn).expect("cnn")
        );
        assert_eq!(
            Arch::new(Algo::Ppo, Policy::Lstm).ok(),
            Some(Arch::PPO_LSTM)
        );
        let err = Arch::new(Algo::Dqn, Policy::Lstm).expect_err("dqn lstm");
        assert!(
            matches!(err, crate::Error::UnsupportedPolicy { .. }),
            "{err}"
        );
        assert_eq!(Arch::PPO_LSTM.to_string(), "ppo (nature_cnn_lstm)");
        assert_eq!(Arch::cnn(Algo::Dqn).to_string(), "dqn");
    }

    #[test]
    fn lstm_random_init_follows_cleanrl() {
        let a = random_init(Arch::PPO_LSTM, 4, 1);
        assert_eq!(a, random_init(Arch::PPO_LSTM, 4, 1));
        for spec in param_specs(Arch::PPO_LSTM, 4) {
            assert_eq!(a[spec.name].shape, spec.shape, "{}", spec.name);
            if spec.shape.len() == 1 {
                assert!(a[spec.name].data.iter().all(|&v| v == 0.0), "{}", spec.name);
            }
        }
        // weight_ih [512, 512]: orthogonal with gain 1 (check some rows).
        let w_ih = &a[LSTM_W_IH];
        assert!(gram_error(&w_ih.data[..16 * 512], 16, 512, 1.0) < 1e-5);
        // weight_hh [512, 128] is tall: orthonormal columns, so W^T is checked by rows.
        let w_hh = &a[LSTM_W_HH];
        let t: Vec<f32> = (0..128)
            .flat_map(|j| (0..512).map(move |i| (i, j)))
            .map(|(i, j)| w_hh.data[i * 128 + j])
            .collect();
        assert!(gram_error(&t, 128, 512, 1.0) < 1e-5);
        assert!(gram_error(&a["actor.weight"].data, 4, 128, 0.01) < 1e-8);
        assert!(gram_error(&a["critic.weight"].data, 1, 128, 1.0) < 1e-6);
        let conv0 = &a["network.0.weight"];
        assert!(gram_error(&conv0.data, 32, 64, std::f64::consts::SQRT_2) < 1e-5);
    }

    #[test]
    fn algo_parses_and_prints() {
        assert_eq!("ppo".parse::<Algo>().ok(), Some(Algo::Ppo));
        assert_eq!("dqn".parse::<Algo>().ok(), Some(Algo::Dqn));
        assert!("PPO".parse::<Algo>().is_err());
        assert_eq!(Algo::Dqn.to_string(), "dqn");
    }

    /// Max |W W^T - gain^2 I| over a row-major `[rows, cols]` matrix with rows <= cols.
    fn gram_error(w: &[f32], rows: usize, cols: usize, gain: f64) -> f64 {
        let mut worst = 0.0f64;
        for a in 0..rows {
            for b in 0..rows {
                let dot: f64 = (0..cols)
                    .map(|k| w[a * cols + k] as f64 * w[b * cols + k] as f64)
                    .sum();
                let want = if a == b { gain * gain } else { 0.0 };
                worst = worst.max((dot - want).abs());
            }
        }
        worst
    }

    #[test]
    fn orthogonal_rows_are_orthonormal_times_gain() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (rows, cols, gain) in [(32, 256, 2f64.sqrt()), (6, 512, 0.01), (1, 512, 1.0)] {
            let w = orthogonal(rows, cols, gain, &mut rng);
            let err = gram_error(&w, rows, cols, gain);
            assert!(err < 1e-5 * gain * gain + 1e-9, "{rows}x{cols}: {err}");
        }
    }

    #[test]
    fn orthogonal_tall_has_orthonormal_columns() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (rows, cols) = (50, 8);
        let w = orthogonal(rows, cols, 1.0, &mut rng);
        // Transpose to [cols, rows] and check rows of that.
        let t: Vec<f32> = (0..cols)
            .flat_map(|j| (0..rows).map(move |i| (i, j)))
            .map(|(i, j)| w[i * cols + j])
            .collect();
        assert!(gram_error(&t, cols, rows, 1.0) < 1e-5);
    }

    #[test]
    fn cholesky_qr2_matches_gram_schmidt() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let a = Array2::from_shape_fn((40, 12), |_| gaussian(&mut rng));
        let q = cholesky_qr(&a)
            .and_then(|q| cholesky_qr(&q))
            .expect("well conditioned");
        let diff = (&q - &gram_schmidt(a))
            .mapv(f64::abs)
            .fold(0.0, |m: f64, &x| m.max(x));
        assert!(diff < 1e-12, "{diff}");
        // A rank-deficient matrix breaks Cholesky down instead of producing garbage.
        let mut b = Array2::from_shape_fn((10, 3), |_| gaussian(&mut rng));
        let c0 = b.column(0).to_owned();
        b.column_mut(1).assign(&c0);
        assert!(cholesky_qr(&b).is_none());
    }

    #[test]
    fn random_init_is_deterministic_and_well_formed() {
        let a = random_init(Algo::Ppo, 4, 1);
        let b = random_init(Algo::Ppo, 4, 1);
        let c = random_init(Algo::Ppo, 4, 2);
        assert_eq!(a, b);
        assert_ne!(a["network.0.weight"], c["network.0.weight"]);
        for spec in param_specs(Algo::Ppo, 4) {
            let t = &a[spec.name];
            assert_eq!(t.shape, spec.shape);
            assert_eq!(t.data.len(), t.numel());
        }
        assert!(a["actor.bias"].data.iter().all(|&v| v == 0.0));
        // The big trunk layer is orthogonal with gain sqrt(2): check a few rows.
        let fc = &a["network.7.weight"];
        let err = gram_error(&fc.data[..8 * FLAT], 8, FLAT, std::f64::consts::SQRT_2);
        assert!(err < 1e-5, "{err}");
        let actor = &a["actor.weight"];
        assert!(gram_error(&actor.data, 4, FEATURES, 0.01) < 1e-8);
    }
}
