//! The recurrent core of a CNN-LSTM policy (CleanRL `ppo_atari_lstm.py` at fe8d8a0:
//! `nn.LSTM(512, 128)`, one layer; baselines `ppo2`'s `cnn_lstm`), stepped one time step at
//! a time so that the state can be zeroed where an episode ended, as CleanRL's `get_states`
//! multiplies it by `1 - done` before each step.
//!
//! Parameters carry PyTorch's names (`weight_ih_l0` `[4H, I]`, `weight_hh_l0` `[4H, H]`,
//! `bias_ih_l0` `[4H]`, `bias_hh_l0` `[4H]`) and PyTorch's gate order: input, forget, cell
//! (g), output. ONNX's `LSTM` operator orders them input, output, forget, cell.

use tch::nn;
use tch::{Kind, Tensor};

/// `(h, c)`, each f32 `[B, H]`.
#[derive(Debug)]
pub struct LstmState {
    /// Hidden state (the output).
    pub h: Tensor,
    /// Cell state.
    pub c: Tensor,
}

impl LstmState {
    /// Zero state for `batch` sequences of `hidden` units on `device`.
    pub fn zeros(batch: i64, hidden: i64, device: tch::Device) -> Self {
        let z = || crate::tensors::zeros(&[batch, hidden], Kind::Float, device);
        Self { h: z(), c: z() }
    }

    /// The state of the sequences `index` (i64 `[K]`), `[K, H]` each.
    pub fn select(&self, index: &Tensor) -> Self {
        Self {
            h: self.h.index_select(0, index),
            c: self.c.index_select(0, index),
        }
    }

    /// A copy detached from the autograd graph.
    pub fn detach(&self) -> Self {
        Self {
            h: self.h.detach().copy(),
            c: self.c.detach().copy(),
        }
    }
}

/// One LSTM layer.
#[derive(Debug)]
pub struct LstmCore {
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor,
    b_hh: Tensor,
    hidden: i64,
}

impl LstmCore {
    /// A layer of `input` -> `hidden` units with its parameters under `p` (zeros: callers
    /// load the initial weights, CleanRL's orthogonal gain 1 and zero biases).
    pub fn new(p: &nn::Path, input: i64, hidden: i64) -> Self {
        Self {
            w_ih: p.zeros("weight_ih_l0", &[4 * hidden, input]),
            w_hh: p.zeros("weight_hh_l0", &[4 * hidden, hidden]),
            b_ih: p.zeros("bias_ih_l0", &[4 * hidden]),
            b_hh: p.zeros("bias_hh_l0", &[4 * hidden]),
            hidden,
        }
    }

    /// Hidden units.
    pub fn hidden(&self) -> i64 {
        self.hidden
    }

    /// One step: `x` f32 `[B, I]` from `state` to the next state (its `h` is the output):
    /// `i, f, g, o = chunks(x W_ih^T + b_ih + h W_hh^T + b_hh)`, `c' = sigmoid(f) c +
    /// sigmoid(i) tanh(g)`, `h' = sigmoid(o) tanh(c')` (libtorch's `lstm_cell`).
    pub fn step(&self, x: &Tensor, state: &LstmState) -> LstmState {
        let (h, c) = x.lstm_cell(
            &[&state.h, &state.c],
            &self.w_ih,
            &self.w_hh,
            Some(&self.b_ih),
            Some(&self.b_hh),
        );
        LstmState { h, c }
    }

    /// Runs `xs` f32 `[T * B, I]` (time-major: rows `t * B .. (t + 1) * B` are step `t`)
    /// from `state` (`[B, H]`), zeroing the state of sequence `b` before step `t` where
    /// `starts[t, b]` (f32 `[T, B]`, 1 or 0) is 1: the observation of that step begins a new
    /// episode. Returns the outputs `[T * B, H]` and the state after the last step.
    ///
    /// The same arithmetic as [`Self::step`] at every step, except that the input
    /// projection `x W_ih^T + b_ih` of all `T` steps is one product before the loop.
    pub fn unroll(&self, xs: &Tensor, state: &LstmState, starts: &Tensor) -> (Tensor, LstmState) {
        let t_len = starts.size()[0];
        let b = starts.size()[1];
        // One [T * B, I] x [I, 4H] product instead of T small ones: each small one reads the
        // whole [4H, I] weight (1 MB for the CNN-LSTM) forward and again backward; that was
        // a fifth of a PPO update's time on a CPU.
        let gates_x = xs.linear(&self.w_ih, Some(&self.b_ih)).view([t_len, b, -1]);
        let keep = starts.neg().g_add_scalar(1.0).unsqueeze(-1);
        let mut s = LstmState {
            h: state.h.shallow_clone(),
            c: state.c.shallow_clone(),
        };
        let mut outs = Vec::with_capacity(t_len as usize);
        for t in 0..t_len {
            let k = keep.get(t);
            let (h, c) = (&s.h * &k, &s.c * &k);
            let gates = gates_x.get(t) + h.linear(&self.w_hh, Some(&self.b_hh));
            let g = gates.chunk(4, 1);
            let c = g[1].sigmoid() * c + g[0].sigmoid() * g[2].tanh();
            let h = g[3].sigmoid() * c.tanh();
            outs.push(h.shallow_clone());
            s = LstmState { h, c };
        }
        (Tensor::cat(&outs, 0), s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// One hidden unit and one input, weights chosen so that each gate's pre-activation is
    /// a different known value: i = 0 (sigmoid 0.5), f = ln 3 (0.75), g = atanh 0.5 (tanh
    /// 0.5), o = ln 4 (0.8), from `x = 1` with the recurrent weights contributing `h`.
    fn hand_layer() -> (nn::VarStore, LstmCore) {
        let vs = nn::VarStore::new(Device::Cpu);
        let core = LstmCore::new(&(vs.root() / "lstm"), 1, 1);
        tch::no_grad(|| {
            let set = |t: &Tensor, v: &[f32]| {
                t.shallow_clone()
                    .copy_(&Tensor::from_slice(v).view(t.size().as_slice()));
            };
            set(&core.w_ih, &[0.0, 3f32.ln(), 0.5f32.atanh(), 4f32.ln()]);
            set(&core.w_hh, &[1.0, 1.0, 1.0, 1.0]);
            set(&core.b_ih, &[0.0; 4]);
            set(&core.b_hh, &[0.0; 4]);
        });
        (vs, core)
    }

    #[test]
    fn one_step_matches_the_gates_by_hand() {
        // From h = 0, c = 0.25: c' = 0.75 * 0.25 + 0.5 * 0.5 = 0.4375,
        // h' = 0.8 * tanh(0.4375) = 0.8 * 0.41157 = 0.32926. A layer reading its gates in
        // another order (ONNX's i, o, f, c, say) gives other numbers: with f and o swapped,
        // c' = 0.8 * 0.25 + 0.25 = 0.45.
        let (_vs, core) = hand_layer();
        let x = Tensor::from_slice(&[1.0f32]).view([1, 1]);
        let s0 = LstmState {
            h: Tensor::zeros([1, 1], (Kind::Float, Device::Cpu)),
            c: Tensor::from_slice(&[0.25f32]).view([1, 1]),
        };
        let s1 = core.step(&x, &s0);
        let c = s1.c.double_value(&[0, 0]);
        let h = s1.h.double_value(&[0, 0]);
        assert!((c - 0.4375).abs() < 1e-6, "c' = {c}");
        assert!((h - 0.8 * 0.4375f64.tanh()).abs() < 1e-6, "h' = {h}");
        assert!((h - 0.329_26).abs() < 1e-5, "h' = {h}");
    }

    #[test]
    fn unroll_zeroes_the_state_where_an_episode_starts() {
        // Two sequences, three steps, x = 1 throughout. Sequence 0 starts an episode at
        // t = 2, sequence 1 never: their outputs agree at t = 0, 1 and differ at t = 2,
        // where sequence 0 must equal a fresh step from the zero state.
        let (_vs, core) = hand_layer();
        let xs = Tensor::ones([3 * 2, 1], (Kind::Float, Device::Cpu));
        let starts = Tensor::from_slice(&[0.0f32, 0.0, 0.0, 0.0, 1.0, 0.0]).view([3, 2]);
        let s0 = LstmState::zeros(2, 1, Device::Cpu);
        let (out, last) = core.unroll(&xs, &s0, &starts);
        let out: Vec<f32> = Vec::try_from(out.view(-1)).expect("vec");
        let fresh = core
            .step(
                &Tensor::ones([1, 1], (Kind::Float, Device::Cpu)),
                &LstmState::zeros(1, 1, Device::Cpu),
            )
            .h
            .double_value(&[0, 0]) as f32;
        assert_eq!(out[0], out[1]);
        assert_eq!(out[2], out[3]);
        assert!((out[4] - fresh).abs() < 1e-7, "{out:?} vs fresh {fresh}");
        assert!((out[5] - out[4]).abs() > 1e-3, "{out:?}");
        assert!((out[0] - fresh).abs() < 1e-7);
        assert_eq!(last.h.double_value(&[1, 0]) as f32, out[5]);
    }
}
