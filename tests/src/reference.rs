//! A plain-Rust reference forward pass of Cartridge's Nature CNN: the oracle that ONNX
//! Runtime's outputs (and later the trainer's) are compared with.
//!
//! Deliberately independent of the code under test: the architecture is written out here
//! from Mnih et al. (2015) and CleanRL's `ppo_atari.py` / `dqn_atari.py` (conv 8x8/4 -> 32,
//! conv 4x4/2 -> 64, conv 3x3/1 -> 64, flatten channel-major, linear 3136 -> 512, ReLU after
//! each, then the heads), not read from `cartridge_export::arch`. Convolution is im2col
//! with explicit index arithmetic followed by a matrix product.
//!
//! The CNN-LSTM ([`forward_lstm`]) is written from CleanRL's `ppo_atari_lstm.py` `Agent` (the
//! same trunk on one frame, `nn.LSTM(512, 128)`, heads on the LSTM's output) and the
//! `torch.nn.LSTM` equations, gates in PyTorch's order `i, f, g, o` ([`lstm_cell`]).

use cartridge_export::{Algo, Tensors};
use ndarray::{s, Array2, Array4, ArrayView1, ArrayView2, ArrayView4, ArrayViewD, Axis};

/// Runs the network given by `tensors` on a batch of observations.
///
/// - `tensors`: parameters named as in the checkpoint (CleanRL names, PyTorch layouts:
///   conv `[out, in, kh, kw]`, linear `[out, in]`).
/// - `algo`: picks the heads: PPO `actor` and `critic`, DQN `network.9`.
/// - `obs`: u8 `[N, 4, 84, 84]`, frame stack channel-first, any `N >= 1`; scaled to
///   `obs as f32 * (1.0 / 255.0)` exactly as the ONNX graph does.
///
/// Returns `(logits, Some(value))` for PPO, with shapes `[N, A]` and `[N, 1]`, or
/// `(q_values, None)` for DQN, with shape `[N, A]`; all f32.
///
/// # Panics
/// If a parameter is missing or has a shape that does not fit (validate the checkpoint
/// first), or if `obs` is not `[N, 4, 84, 84]`. This is test code: a panic is the failure.
pub fn forward(
    tensors: &Tensors,
    algo: Algo,
    obs: ArrayView4<u8>,
) -> (Array2<f32>, Option<Array2<f32>>) {
    assert_eq!(&obs.shape()[1..], [4, 84, 84], "obs must be [N, 4, 84, 84]");
    let features = trunk(tensors, obs);
    let head = |name: &str| {
        linear(
            features.view(),
            param2(tensors, &format!("{name}.weight")),
            param1(tensors, &format!("{name}.bias")),
        )
    };
    match algo {
        Algo::Ppo => (head("actor"), Some(head("critic"))),
        Algo::Dqn => (head("network.9"), None),
    }
}

/// One step of the CNN-LSTM PPO policy (`arch` `nature_cnn_lstm`).
#[derive(Debug, Clone, PartialEq)]
pub struct LstmStep {
    /// Policy logits, `[N, A]`.
    pub logits: Array2<f32>,
    /// State value, `[N, 1]`.
    pub value: Array2<f32>,
    /// Hidden state after the step, `[N, 128]` (the model's `h_out` without its leading 1).
    pub h: Array2<f32>,
    /// Cell state after the step, `[N, 128]`.
    pub c: Array2<f32>,
}

/// Runs the CNN-LSTM PPO policy given by `tensors` one step from the state `(h, c)`.
///
/// - `obs`: u8 `[N, 1, 84, 84]`, scaled by 1/255 as the graph does;
/// - `h`, `c`: f32 `[N, H]`, the state before the step, used as given (the caller zeroes it
///   where an episode starts, as CleanRL's `get_states` multiplies it by `1 - done`).
///
/// The trunk's 512 features go through [`lstm_cell`] with `lstm.weight_ih_l0`,
/// `lstm.weight_hh_l0`, `lstm.bias_ih_l0`, `lstm.bias_hh_l0`; `actor` and `critic` read the
/// new `h`.
///
/// # Panics
/// As [`forward`], and if `h` or `c` is not `[N, H]` with `H` the LSTM's hidden size.
pub fn forward_lstm(
    tensors: &Tensors,
    obs: ArrayView4<u8>,
    h: ArrayView2<f32>,
    c: ArrayView2<f32>,
) -> LstmStep {
    assert_eq!(&obs.shape()[1..], [1, 84, 84], "obs must be [N, 1, 84, 84]");
    let x = trunk(tensors, obs);
    let (h, c) = lstm_cell(
        x.view(),
        h,
        c,
        param2(tensors, "lstm.weight_ih_l0"),
        param2(tensors, "lstm.weight_hh_l0"),
        param1(tensors, "lstm.bias_ih_l0"),
        param1(tensors, "lstm.bias_hh_l0"),
    );
    let head = |name: &str| {
        linear(
            h.view(),
            param2(tensors, &format!("{name}.weight")),
            param1(tensors, &format!("{name}.bias")),
        )
    };
    LstmStep {
        logits: head("actor"),
        value: head("critic"),
        h,
        c,
    }
}

/// One step of a PyTorch `nn.LSTM` layer: `x` `[N, I]`, state `h`, `c` `[N, H]`, `w_ih`
/// `[4H, I]`, `w_hh` `[4H, H]`, biases `[4H]`, the four `H`-row blocks being the gates `i, f,
/// g, o` (PyTorch's order). Returns `(h', c')`:
///
/// `z = x w_ih^T + b_ih + h w_hh^T + b_hh`, `i = sigmoid(z[0:H])`, `f = sigmoid(z[H:2H])`,
/// `g = tanh(z[2H:3H])`, `o = sigmoid(z[3H:4H])`, `c' = f c + i g`, `h' = o tanh(c')`.
pub fn lstm_cell(
    x: ArrayView2<f32>,
    h: ArrayView2<f32>,
    c: ArrayView2<f32>,
    w_ih: ArrayView2<f32>,
    w_hh: ArrayView2<f32>,
    b_ih: ArrayView1<f32>,
    b_hh: ArrayView1<f32>,
) -> (Array2<f32>, Array2<f32>) {
    let hidden = w_hh.ncols();
    assert_eq!(w_ih.nrows(), 4 * hidden, "weight_ih must be [4H, I]");
    assert_eq!(w_hh.nrows(), 4 * hidden, "weight_hh must be [4H, H]");
    assert_eq!(h.dim(), (x.nrows(), hidden), "h must be [N, H]");
    assert_eq!(c.dim(), (x.nrows(), hidden), "c must be [N, H]");
    let z = linear(x, w_ih, b_ih) + linear(h, w_hh, b_hh);
    let gate = |k: usize| z.slice(s![.., k * hidden..(k + 1) * hidden]).to_owned();
    let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
    let (i, f) = (gate(0).mapv(sigmoid), gate(1).mapv(sigmoid));
    let (g, o) = (gate(2).mapv(f32::tanh), gate(3).mapv(sigmoid));
    let c_new = f * c + i * g;
    let h_new = o * c_new.mapv(f32::tanh);
    (h_new, c_new)
}

/// The Nature CNN trunk on `obs` u8 `[N, S, 84, 84]` (any stack `S` the first conv takes):
/// features `[N, 512]` after the last ReLU.
fn trunk(tensors: &Tensors, obs: ArrayView4<u8>) -> Array2<f32> {
    let scale = 1.0f32 / 255.0;
    let mut x = obs.mapv(|v| f32::from(v) * scale);
    for (layer, stride) in [("network.0", 4), ("network.2", 2), ("network.4", 1)] {
        x = conv2d(
            x.view(),
            param4(tensors, &format!("{layer}.weight")),
            param1(tensors, &format!("{layer}.bias")),
            stride,
        );
        relu(&mut x);
    }
    let n = x.len_of(Axis(0));
    let flat_len = x.len() / n;
    // `conv2d` returns standard (C-order) layout, so this is the channel-major flatten.
    let flat = x
        .into_shape_with_order((n, flat_len))
        .expect("conv output is contiguous");
    let mut features = linear(
        flat.view(),
        param2(tensors, "network.7.weight"),
        param1(tensors, "network.7.bias"),
    );
    relu(&mut features);
    features
}

/// 2-D cross-correlation (PyTorch / ONNX `Conv`), no padding, no dilation, one group.
///
/// `x` `[N, C, H, W]`, `w` `[O, C, KH, KW]`, `b` `[O]` -> `[N, O, (H-KH)/s+1, (W-KW)/s+1]`
/// with `y[n,o,i,j] = b[o] + sum_{c,ki,kj} w[o,c,ki,kj] * x[n,c,i*s+ki,j*s+kj]`.
pub fn conv2d(
    x: ArrayView4<f32>,
    w: ArrayView4<f32>,
    b: ArrayView1<f32>,
    stride: usize,
) -> Array4<f32> {
    let (n, c, h, wd) = x.dim();
    let (o, wc, kh, kw) = w.dim();
    assert_eq!(c, wc, "conv input has {c} channels, weight expects {wc}");
    assert_eq!(b.len(), o, "conv bias length");
    assert!(h >= kh && wd >= kw, "conv input smaller than kernel");
    let (oh, ow) = ((h - kh) / stride + 1, (wd - kw) / stride + 1);
    let w2 = w
        .to_shape((o, c * kh * kw))
        .expect("weight reshapes to [O, C*KH*KW]");
    let bias = b.insert_axis(Axis(1));
    let mut out = Array4::zeros((n, o, oh, ow));
    for s in 0..n {
        // Row (ci, ki, kj) of the patch matrix, column (i, j) of the output grid: the same
        // (ci, ki, kj) order as the weight's row-major flattening.
        let cols = Array2::from_shape_fn((c * kh * kw, oh * ow), |(r, p)| {
            let (ci, ki, kj) = (r / (kh * kw), (r / kw) % kh, r % kw);
            let (i, j) = (p / ow, p % ow);
            x[[s, ci, i * stride + ki, j * stride + kj]]
        });
        let y = w2.dot(&cols) + bias;
        out.index_axis_mut(Axis(0), s).assign(
            &y.into_shape_with_order((o, oh, ow))
                .expect("[O, OH*OW] reshapes to [O, OH, OW]"),
        );
    }
    out
}

/// PyTorch `Linear`: `x` `[N, in]`, `w` `[out, in]`, `b` `[out]` -> `x w^T + b`, `[N, out]`.
pub fn linear(x: ArrayView2<f32>, w: ArrayView2<f32>, b: ArrayView1<f32>) -> Array2<f32> {
    assert_eq!(
        x.ncols(),
        w.ncols(),
        "linear input width vs weight [out, in]"
    );
    x.dot(&w.t()) + b
}

/// In-place `max(x, 0)`.
pub fn relu<D: ndarray::Dimension>(x: &mut ndarray::Array<f32, D>) {
    x.mapv_inplace(|v| v.max(0.0));
}

fn param<'a>(tensors: &'a Tensors, name: &str) -> ArrayViewD<'a, f32> {
    let t = tensors
        .get(name)
        .unwrap_or_else(|| panic!("reference forward: parameter `{name}` missing"));
    ArrayViewD::from_shape(t.shape.clone(), &t.data)
        .unwrap_or_else(|e| panic!("reference forward: parameter `{name}`: {e}"))
}

fn param4<'a>(tensors: &'a Tensors, name: &str) -> ArrayView4<'a, f32> {
    param(tensors, name)
        .into_dimensionality()
        .unwrap_or_else(|e| panic!("reference forward: `{name}` must be 4-D: {e}"))
}

fn param2<'a>(tensors: &'a Tensors, name: &str) -> ArrayView2<'a, f32> {
    param(tensors, name)
        .into_dimensionality()
        .unwrap_or_else(|e| panic!("reference forward: `{name}` must be 2-D: {e}"))
}

fn param1<'a>(tensors: &'a Tensors, name: &str) -> ArrayView1<'a, f32> {
    param(tensors, name)
        .into_dimensionality()
        .unwrap_or_else(|e| panic!("reference forward: `{name}` must be 1-D: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartridge_export::{param_specs, Tensor};
    use ndarray::{arr1, arr2, Array};

    #[test]
    fn conv2d_by_hand_stride_1() {
        // x = 1 2 3    w = 1 2    b = 1
        //     4 5 6        3 4
        //     7 8 9
        // y00 = 1*1 + 2*2 + 3*4 + 4*5 + 1 = 38    y01 = 1*2 + 2*3 + 3*5 + 4*6 + 1 = 48
        // y10 = 1*4 + 2*5 + 3*7 + 4*8 + 1 = 68    y11 = 1*5 + 2*6 + 3*8 + 4*9 + 1 = 78
        let x = Array::from_shape_vec((1, 1, 3, 3), (1..=9).map(|v| v as f32).collect())
            .expect("shape");
        let w = Array::from_shape_vec((1, 1, 2, 2), vec![1.0, 2.0, 3.0, 4.0]).expect("shape");
        let y = conv2d(x.view(), w.view(), arr1(&[1.0]).view(), 1);
        assert_eq!(y.shape(), [1, 1, 2, 2]);
        assert_eq!(
            y.index_axis(Axis(0), 0).index_axis(Axis(0), 0),
            arr2(&[[38.0, 48.0], [68.0, 78.0]])
        );
    }

    #[test]
    fn conv2d_by_hand_stride_2_two_channels_and_batch() {
        // Channel 0 holds x[i][j] = 4i + j (0..15), channel 1 holds 100.
        // Out channel 0: 2x2 ones on channel 0, bias 0 -> sums of 2x2 blocks:
        //   0+1+4+5 = 10, 2+3+6+7 = 18, 8+9+12+13 = 42, 10+11+14+15 = 50.
        // Out channel 1: picks channel 0 at (0,0) and 0.01 * channel 1 at (1,1), bias -1:
        //   x[2i][2j] + 1 - 1 = 0, 2, 8, 10.
        let mut x = Array4::<f32>::zeros((2, 2, 4, 4));
        for s in 0..2 {
            for i in 0..4 {
                for j in 0..4 {
                    x[[s, 0, i, j]] = (4 * i + j) as f32 * (s + 1) as f32;
                    x[[s, 1, i, j]] = 100.0;
                }
            }
        }
        let mut w = Array4::<f32>::zeros((2, 2, 2, 2));
        w.slice_mut(ndarray::s![0, 0, .., ..]).fill(1.0);
        w[[1, 0, 0, 0]] = 1.0;
        w[[1, 1, 1, 1]] = 0.01;
        let y = conv2d(x.view(), w.view(), arr1(&[0.0, -1.0]).view(), 2);
        assert_eq!(y.shape(), [2, 2, 2, 2]);
        let close = |a: ArrayView2<f32>, b: Array2<f32>| {
            a.iter().zip(b.iter()).all(|(p, q)| (p - q).abs() < 1e-4)
        };
        let at = |s: usize, o: usize| y.index_axis(Axis(0), s).index_axis(Axis(0), o).to_owned();
        assert!(close(at(0, 0).view(), arr2(&[[10.0, 18.0], [42.0, 50.0]])));
        assert!(close(at(0, 1).view(), arr2(&[[0.0, 2.0], [8.0, 10.0]])));
        // The second sample is the first with channel 0 doubled.
        assert!(close(at(1, 0).view(), arr2(&[[20.0, 36.0], [84.0, 100.0]])));
    }

    #[test]
    fn linear_and_relu_by_hand() {
        // x = [1, 2]; rows of w: [1, 0] -> 1, [0, 1] -> 2 - 1 = 1, [-1, -1] -> -3 + 0.5
        let x = arr2(&[[1.0f32, 2.0]]);
        let w = arr2(&[[1.0f32, 0.0], [0.0, 1.0], [-1.0, -1.0]]);
        let mut y = linear(x.view(), w.view(), arr1(&[0.0, -1.0, 0.5]).view());
        assert_eq!(y, arr2(&[[1.0, 1.0, -2.5]]));
        relu(&mut y);
        assert_eq!(y, arr2(&[[1.0, 1.0, 0.0]]));
    }

    fn zero_tensors(algo: Algo, n_actions: usize) -> Tensors {
        param_specs(algo, n_actions)
            .into_iter()
            .map(|s| (s.name.to_owned(), Tensor::zeros(s.shape)))
            .collect()
    }

    fn set(t: &mut Tensors, name: &str, index: usize, value: f32) {
        t.get_mut(name).expect("param").data[index] = value;
    }

    #[test]
    fn forward_flattens_channel_major_and_applies_heads() {
        // All conv weights zero: the last conv outputs its bias, channel c = c at every one
        // of the 7x7 positions. Channel-major flatten puts channel 5, position 3 at
        // 5 * 49 + 3 = 248 (a channels-last flatten would find channel 56 there).
        let mut t = zero_tensors(Algo::Ppo, 3);
        for c in 0..64 {
            set(&mut t, "network.4.bias", c, c as f32);
        }
        set(&mut t, "network.7.weight", 248, 1.0); // feature 0 = 5
        set(&mut t, "network.7.bias", 1, -2.0); // feature 1 = relu(-2) = 0
        set(&mut t, "network.7.bias", 2, 0.5); // feature 2 = 0.5
                                               // logits = [f0, f2, f1] + [0, 0, 0.25] = [5, 0.5, 0.25]; value = 2 f0 - 4 f2 = 8
        set(&mut t, "actor.weight", 0, 1.0);
        set(&mut t, "actor.weight", 512 + 2, 1.0);
        set(&mut t, "actor.weight", 2 * 512 + 1, 1.0);
        set(&mut t, "actor.bias", 2, 0.25);
        set(&mut t, "critic.weight", 0, 2.0);
        set(&mut t, "critic.weight", 2, -4.0);
        let obs = Array4::from_shape_fn((2, 4, 84, 84), |(n, c, i, j)| (n + c + i + j) as u8);
        let (logits, value) = forward(&t, Algo::Ppo, obs.view());
        assert_eq!(logits, arr2(&[[5.0, 0.5, 0.25], [5.0, 0.5, 0.25]]));
        assert_eq!(value, Some(arr2(&[[8.0], [8.0]])));

        let mut q = zero_tensors(Algo::Dqn, 2);
        set(&mut q, "network.7.bias", 0, 3.0);
        set(&mut q, "network.9.weight", 512, -1.0);
        set(&mut q, "network.9.bias", 0, 0.5);
        let (q_values, none) = forward(&q, Algo::Dqn, obs.view());
        assert_eq!(q_values, arr2(&[[0.5, -3.0], [0.5, -3.0]]));
        assert!(none.is_none());
    }

    #[test]
    fn forward_scales_the_observation() {
        // One path: conv0 channel 0 reads plane 0 at kernel (0,0) with weight 255, so on the
        // 20x20 grid it sees obs[0, 4i, 4j] / 255 * 255; convs 1 and 2 pass channel 0 at
        // kernel (0,0) with weight 1; the 7x7 map's (0,0) is conv0 grid (0,0) -> obs[0,0,0].
        let mut t = zero_tensors(Algo::Dqn, 1);
        set(&mut t, "network.0.weight", 0, 255.0);
        set(&mut t, "network.2.weight", 0, 1.0);
        set(&mut t, "network.4.weight", 0, 1.0);
        set(&mut t, "network.7.weight", 0, 1.0);
        set(&mut t, "network.9.weight", 0, 1.0);
        let mut obs = Array4::<u8>::zeros((1, 4, 84, 84));
        obs[[0, 0, 0, 0]] = 51;
        let (q, _) = forward(&t, Algo::Dqn, obs.view());
        assert!((q[[0, 0]] - 51.0).abs() < 1e-4, "{q}");
    }
}
