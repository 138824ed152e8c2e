//! The PPO network (CleanRL `ppo_atari.py` `Agent`, baselines `ppo2` `cnn` policy): the Nature
//! CNN trunk shared by actor and critic. Initial weights come from
//! [`cartridge_export::random_init`]: orthogonal (Saxe et al. 2013) with gain sqrt(2) for the
//! trunk, 0.01 for the actor head and 1 for the critic, biases 0 (CleanRL's `layer_init`).
//!
//! With `--policy lstm` it is CleanRL `ppo_atari_lstm.py`'s `Agent` (fe8d8a0): the same trunk on
//! one frame (`nn.Conv2d(1, 32, 8, stride=4)`), then `nn.LSTM(512, 128)` ([`LstmCore`],
//! orthogonal gain 1, zero biases), then the heads on its 128 outputs. The environments keep
//! producing 4-frame stacks (`[N, 4, 84, 84]`; vecenv, storage and uploader are shared); the
//! recurrent network reads only the newest frame, `obs.narrow(1, 3, 1)`, which is exactly the
//! observation of CleanRL's `FrameStack(env, 1)` (FrameStack's newest frame is last). The LSTM
//! state belongs to the caller (the rollout and the update), as in CleanRL.

use cartridge_export::{Algo, Arch, Policy, Tensors};
use tch::nn::{self, Module};
use tch::{no_grad, Device, Tensor};

use crate::lstm::{LstmCore, LstmState};
use crate::network::{load_into, params_of, tensors_of, NatureTrunk, TrunkWeights};
use crate::precision::Precision;
use crate::Result;

/// The PPO network on a device: the Nature CNN actor-critic, or (with [`Policy::Lstm`]) the
/// CNN-LSTM one.
#[derive(Debug)]
pub struct ActorCritic {
    /// The parameters, named `network.0.weight`, ..., (`lstm.*`), `actor.*`, `critic.*`.
    pub vs: nn::VarStore,
    trunk: NatureTrunk,
    lstm: Option<LstmCore>,
    actor: nn::Linear,
    critic: nn::Linear,
    n_actions: usize,
    policy: Policy,
    precision: Precision,
}

impl ActorCritic {
    /// The CNN network ([`Policy::Cnn`]) for `n_actions` actions initialised from `seed`.
    pub fn new(device: Device, n_actions: usize, seed: u64) -> Result<Self> {
        Self::with_policy(Policy::Cnn, device, n_actions, seed)
    }

    /// `policy`'s network for `n_actions` actions initialised from `seed`
    /// ([`cartridge_export::random_init`] of its [`Arch`]).
    pub fn with_policy(
        policy: Policy,
        device: Device,
        n_actions: usize,
        seed: u64,
    ) -> Result<Self> {
        let arch = Arch::new(Algo::Ppo, policy)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let trunk = NatureTrunk::new(&(&root / "network"), policy.frame_stack());
        let features = cartridge_export::arch::FEATURES as i64;
        let lstm = policy
            .hidden_size()
            .map(|hidden| LstmCore::new(&(&root / "lstm"), features, hidden as i64));
        let heads_in = arch.head_inputs() as i64;
        let actor = nn::linear(
            &root / "actor",
            heads_in,
            n_actions as i64,
            Default::default(),
        );
        let critic = nn::linear(&root / "critic", heads_in, 1, Default::default());
        let mut me = Self {
            vs,
            trunk,
            lstm,
            actor,
            critic,
            n_actions,
            policy,
            precision: Precision::Fp32,
        };
        me.load(&cartridge_export::random_init(arch, n_actions, seed))?;
        Ok(me)
    }

    /// Number of actions.
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// What the trunk computes in (f32 when built; [`Self::set_precision`] changes it).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Computes the trunk in `precision` from now on ([`NatureTrunk`]); the parameters stay
    /// f32, the heads and the LSTM compute in f32.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// The trunk: [`Policy::Cnn`] or [`Policy::Lstm`].
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// The network, as the checkpoint and the exporter name it.
    pub fn arch(&self) -> Arch {
        match self.policy {
            Policy::Cnn => Arch::cnn(Algo::Ppo),
            Policy::Lstm => Arch::PPO_LSTM,
        }
    }

    /// The recurrent core, for [`Policy::Lstm`].
    pub fn lstm(&self) -> Option<&LstmCore> {
        self.lstm.as_ref()
    }

    /// A zero LSTM state for `batch` environments on the network's device (`None` for the
    /// CNN): CleanRL's initial `next_lstm_state`.
    pub fn zero_state(&self, batch: i64) -> Option<LstmState> {
        self.lstm
            .as_ref()
            .map(|l| LstmState::zeros(batch, l.hidden(), self.vs.device()))
    }

    /// Trunk features f32 `[B, 512]` of observations u8 `[B, 4, 84, 84]` (scaled by 1/255
    /// here), computed in [`Self::precision`].
    /// The CNN reads the whole stack; the CNN-LSTM only the newest frame (FrameStack 1's
    /// observation; an observation that already has one frame is read as it is).
    pub fn features(&self, obs: &Tensor) -> Tensor {
        self.features_with(obs, &self.trunk.weights(self.precision))
    }

    /// The trunk's weights cast once, in [`Self::precision`], for forward passes without
    /// gradients ([`Self::step_with`]). They are valid while the parameters do not change: the
    /// borrow keeps `&mut` methods such as [`Self::load`] out, and the caller must not run
    /// an optimizer step meanwhile (the rollout uses them for its steps, then drops them).
    pub fn inference_weights(&self) -> InferenceWeights<'_> {
        InferenceWeights {
            trunk: no_grad(|| self.trunk.weights(self.precision)),
            _params: std::marker::PhantomData,
        }
    }

    fn features_with(&self, obs: &Tensor, weights: &TrunkWeights) -> Tensor {
        debug_assert_eq!(
            obs.device(),
            self.vs.device(),
            "observations on another device"
        );
        let frames = self.policy.frame_stack() as i64;
        let planes = obs.size()[1];
        let obs = if planes > frames {
            obs.narrow(1, planes - frames, frames)
        } else {
            obs.shallow_clone()
        };
        weights.forward(&obs)
    }

    /// `(logits [B, A], value [B])` from the heads' input `[B, 512]` (CNN features) or
    /// `[B, 128]` (the LSTM's output).
    pub fn heads(&self, hidden: &Tensor) -> (Tensor, Tensor) {
        (
            self.actor.forward(hidden),
            self.critic.forward(hidden).squeeze_dim(-1),
        )
    }

    /// One step: `(logits [B, A], value [B], the LSTM state after it)` for observations u8
    /// `[B, 4, 84, 84]`. The CNN ignores `state` and returns `None`; the CNN-LSTM steps from
    /// `state` (zeros when `None`), which the caller has already zeroed where an episode
    /// starts (CleanRL `get_states`).
    pub fn step(
        &self,
        obs: &Tensor,
        state: Option<&LstmState>,
    ) -> (Tensor, Tensor, Option<LstmState>) {
        self.step_from(self.features(obs), state)
    }

    /// [`Self::step`] with weights cast once ([`Self::inference_weights`]): the same values.
    /// The heads and the LSTM still record gradients; call it under `no_grad`.
    pub fn step_with(
        &self,
        obs: &Tensor,
        state: Option<&LstmState>,
        weights: &InferenceWeights<'_>,
    ) -> (Tensor, Tensor, Option<LstmState>) {
        self.step_from(self.features_with(obs, &weights.trunk), state)
    }

    fn step_from(
        &self,
        x: Tensor,
        state: Option<&LstmState>,
    ) -> (Tensor, Tensor, Option<LstmState>) {
        match &self.lstm {
            None => {
                let (logits, value) = self.heads(&x);
                (logits, value, None)
            }
            Some(lstm) => {
                let zeros;
                let state = match state {
                    Some(s) => s,
                    None => {
                        zeros = LstmState::zeros(x.size()[0], lstm.hidden(), x.device());
                        &zeros
                    }
                };
                let next = lstm.step(&x, state);
                let (logits, value) = self.heads(&next.h);
                (logits, value, Some(next))
            }
        }
    }

    /// `(logits [B, A], value [B])` for observations u8 `[B, 4, 84, 84]`: the CNN's forward
    /// pass; for the CNN-LSTM, the step from the zero state (an episode's first observation).
    pub fn forward(&self, obs: &Tensor) -> (Tensor, Tensor) {
        let (logits, value, _) = self.step(obs, None);
        (logits, value)
    }

    /// `V(obs)` `[B]` (for the CNN-LSTM from the zero state; see [`ActorCritic::step`]).
    pub fn value(&self, obs: &Tensor) -> Tensor {
        self.forward(obs).1
    }

    /// The CNN-LSTM over whole sequences (CleanRL `get_action_and_value` in the update):
    /// observations `[T * B, 4, 84, 84]` time-major, from `state` (`[B, 128]`, the rollout's
    /// initial state of these environments), zeroing a sequence's state before step `t` where
    /// `starts[t, b]` (f32 `[T, B]`) is 1. Returns `(logits [T * B, A], value [T * B])`.
    ///
    /// # Panics
    /// For the CNN, which has no sequences.
    pub fn forward_sequences(
        &self,
        obs: &Tensor,
        state: &LstmState,
        starts: &Tensor,
    ) -> (Tensor, Tensor) {
        let lstm = self
            .lstm
            .as_ref()
            .expect("forward_sequences needs the CNN-LSTM network");
        let (hidden, _) = lstm.unroll(&self.features(obs), state, starts);
        self.heads(&hidden)
    }

    /// The trainable parameters in [`cartridge_export::param_specs`] order of [`Self::arch`].
    pub fn params(&self) -> Vec<Tensor> {
        params_of(&self.vs, self.arch(), self.n_actions)
    }

    /// Copies `tensors` (names and shapes of [`cartridge_export::param_specs`] of
    /// [`Self::arch`]) into the network.
    pub fn load(&mut self, tensors: &Tensors) -> Result<()> {
        load_into(&self.vs, self.arch(), self.n_actions, tensors)
    }

    /// The parameters as export tensors (CPU, f32), for checkpoints.
    pub fn tensors(&self) -> Result<Tensors> {
        tensors_of(&self.vs.variables(), self.arch(), self.n_actions)
    }
}

/// [`ActorCritic`]'s trunk weights cast for inference ([`ActorCritic::inference_weights`]),
/// valid while the network they came from is borrowed.
#[derive(Debug)]
pub struct InferenceWeights<'a> {
    trunk: TrunkWeights,
    _params: std::marker::PhantomData<&'a ActorCritic>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn init_statistics_follow_cleanrl_layer_init() {
        let m = ActorCritic::new(Device::Cpu, 4, 3).expect("net");
        let vars = m.vs.variables();
        // Orthogonal rows: W W^T = gain^2 I for a [out, in] matrix with out <= in.
        let check = |name: &str, gain: f64| {
            let w = vars[name].detach().flatten(1, -1);
            let wwt = w.matmul(&w.tr());
            let eye = Tensor::eye(w.size()[0], (Kind::Float, Device::Cpu)) * gain * gain;
            let err = (wwt - eye).abs().max().double_value(&[]);
            assert!(err < 1e-4 * gain.max(1.0) * gain.max(1.0), "{name}: {err}");
        };
        check("network.0.weight", 2f64.sqrt());
        check("network.7.weight", 2f64.sqrt());
        check("actor.weight", 0.01);
        check("critic.weight", 1.0);
        for b in [
            "network.0.bias",
            "network.7.bias",
            "actor.bias",
            "critic.bias",
        ] {
            assert_eq!(vars[b].abs().sum(Kind::Float).double_value(&[]), 0.0, "{b}");
        }
        // A fresh policy is near uniform: logits ~ 0.01 * unit-scale features.
        let obs = Tensor::randint(256, [2, 4, 84, 84], (Kind::Uint8, Device::Cpu));
        let (logits, value) = m.forward(&obs);
        assert_eq!(logits.size(), [2, 4]);
        assert_eq!(value.size(), [2]);
        assert!(logits.abs().max().double_value(&[]) < 0.5);
    }

    #[test]
    fn inference_weights_step_exactly_as_step_does() {
        // The rollout's weights cast once must give the update's forward values bit for bit,
        // in both precisions and both policies (same casts, same kernels).
        for policy in [Policy::Cnn, Policy::Lstm] {
            for precision in [Precision::Fp32, Precision::Bf16] {
                let mut m = ActorCritic::with_policy(policy, Device::Cpu, 4, 5).expect("net");
                m.set_precision(precision);
                let obs = Tensor::randint(256, [3, 4, 84, 84], (Kind::Uint8, Device::Cpu));
                let state = m.zero_state(3);
                let weights = m.inference_weights();
                let (l1, v1, _) = no_grad(|| m.step(&obs, state.as_ref()));
                let (l2, v2, _) = m.step_with(&obs, state.as_ref(), &weights);
                let diff = |a: &Tensor, b: &Tensor| (a - b).abs().max().double_value(&[]);
                assert_eq!(diff(&l1, &l2), 0.0, "{policy:?} {precision:?} logits");
                assert_eq!(diff(&v1, &v2), 0.0, "{policy:?} {precision:?} value");
                assert_eq!(l2.kind(), Kind::Float);
            }
        }
    }

    #[test]
    fn round_trip_through_export_tensors() {
        let a = ActorCritic::new(Device::Cpu, 6, 1).expect("a");
        let mut b = ActorCritic::new(Device::Cpu, 6, 2).expect("b");
        b.load(&a.tensors().expect("tensors")).expect("load");
        let obs = Tensor::randint(256, [3, 4, 84, 84], (Kind::Uint8, Device::Cpu));
        let diff = (a.forward(&obs).0 - b.forward(&obs).0)
            .abs()
            .max()
            .double_value(&[]);
        assert_eq!(diff, 0.0);
    }

    #[test]
    fn lstm_network_follows_the_lstm_param_specs_and_reads_the_newest_frame() {
        let m = ActorCritic::with_policy(Policy::Lstm, Device::Cpu, 3, 4).expect("net");
        assert_eq!(m.arch(), Arch::PPO_LSTM);
        let specs = cartridge_export::param_specs(Arch::PPO_LSTM, 3);
        let params = m.params();
        assert_eq!(params.len(), specs.len());
        for (p, s) in params.iter().zip(&specs) {
            let shape: Vec<usize> = p.size().iter().map(|&d| d as usize).collect();
            assert_eq!(shape, s.shape, "{}", s.name);
        }
        assert_eq!(
            m.vs.variables().len(),
            specs.len(),
            "no parameter outside the specs"
        );
        // The weights are random_init's.
        let init = cartridge_export::random_init(Arch::PPO_LSTM, 3, 4);
        assert_eq!(m.tensors().expect("tensors"), init);
        // Only the newest frame (plane 3) matters: FrameStack 1's observation.
        let obs = Tensor::randint(256, [2, 4, 84, 84], (Kind::Uint8, Device::Cpu));
        let older = obs.copy();
        let _ = older.narrow(1, 0, 3).fill_(0);
        let state = m.zero_state(2).expect("state");
        let (l1, v1, s1) = m.step(&obs, Some(&state));
        let (l2, v2, _) = m.step(&older, Some(&state));
        assert_eq!((l1 - l2).abs().max().double_value(&[]), 0.0);
        assert_eq!((&v1 - v2).abs().max().double_value(&[]), 0.0);
        let newest = obs.copy();
        let _ = newest.narrow(1, 3, 1).fill_(0);
        let (_, v3, _) = m.step(&newest, Some(&state));
        assert!((&v1 - v3).abs().max().double_value(&[]) > 1e-6);
        assert_eq!(s1.expect("next").h.size(), [2, 128]);
        // A checkpoint of it loads into another one.
        let mut b = ActorCritic::with_policy(Policy::Lstm, Device::Cpu, 3, 9).expect("b");
        b.load(&m.tensors().expect("tensors")).expect("load");
        assert_eq!(b.tensors().expect("tensors"), init);
        // and a CNN checkpoint does not.
        let cnn = ActorCritic::new(Device::Cpu, 3, 1).expect("cnn");
        assert!(b.load(&cnn.tensors().expect("tensors")).is_err());
    }
}
