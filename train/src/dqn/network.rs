//! The DQN Q-network (CleanRL `dqn_atari.py` `QNetwork`, Mnih et al. 2015).

use std::cell::RefCell;

use cartridge_export::{Algo, Arch, Policy, Tensors};
use tch::nn::{self, Module};
use tch::{Device, Tensor};

use crate::network::{load_into, params_of, tensors_of, NatureTrunk, TrunkWeights};
use crate::precision::Precision;
use crate::Result;

/// The DQN Q-network: the Nature CNN trunk and a linear head `network.9` `[A, 512]`, as
/// CleanRL's `dqn_atari.py` `QNetwork`, initialised as PyTorch's default rule there
/// ([`cartridge_export::torch_default_init`], drawn on the CPU from the seed and copied to the
/// device, so every device starts from the same weights and libtorch's generator is left
/// alone).
#[derive(Debug)]
pub struct QNetwork {
    /// The parameters, named `network.0.weight`, ..., `network.9.bias`.
    pub vs: nn::VarStore,
    trunk: NatureTrunk,
    head: nn::Linear,
    n_actions: usize,
    precision: Precision,
    /// The trunk's weights as [`Self::infer`] computes with them, cast once; `None` until
    /// needed and again after every change of the parameters or the precision.
    inference: RefCell<Option<TrunkWeights>>,
}

impl QNetwork {
    /// A network for `n_actions` actions initialised from `seed`.
    pub fn new(device: Device, n_actions: usize, seed: u64) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let net = vs.root() / "network";
        let trunk = NatureTrunk::new(&net, Policy::Cnn.frame_stack());
        let head = nn::linear(&net / "9", 512, n_actions as i64, Default::default());
        let mut me = Self {
            vs,
            trunk,
            head,
            n_actions,
            precision: Precision::Fp32,
            inference: RefCell::new(None),
        };
        me.load(&cartridge_export::torch_default_init(
            Algo::Dqn,
            n_actions,
            seed,
        ))?;
        Ok(me)
    }

    /// Number of actions.
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// What the trunk computes in (f32 when built).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Computes the trunk in `precision` from now on ([`NatureTrunk`]); the parameters stay
    /// f32 and the head computes in f32.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
        self.parameters_changed();
    }

    /// `Q(obs, ·)` f32 `[B, A]` for observations u8 `[B, 4, 84, 84]` (scaled by 1/255 here),
    /// the trunk computed in the network's precision.
    pub fn forward(&self, obs: &Tensor) -> Tensor {
        debug_assert_eq!(
            obs.device(),
            self.vs.device(),
            "observations on another device"
        );
        self.head.forward(&self.trunk.forward(obs, self.precision))
    }

    /// [`Self::forward`] without gradients, equal to it bit for bit, with the trunk's weights
    /// cast to the precision once and reused until the parameters change: acting and the TD
    /// targets, which run several times between two changes of a network's parameters (the
    /// online network's Adam steps, the target network's syncs). Whoever changes the
    /// parameters in place outside this type (an optimizer step) must call
    /// [`Self::parameters_changed`] before the next `infer`.
    pub fn infer(&self, obs: &Tensor) -> Tensor {
        tch::no_grad(|| {
            let mut cached = self.inference.borrow_mut();
            let weights = cached.get_or_insert_with(|| self.trunk.weights(self.precision));
            self.head.forward(&weights.forward(obs))
        })
    }

    /// Drops the weights [`Self::infer`] cast, so that the next call casts the current
    /// parameters.
    pub fn parameters_changed(&self) {
        self.inference.borrow_mut().take();
    }

    /// The trainable parameters in [`param_specs`] order.
    pub fn params(&self) -> Vec<Tensor> {
        params_of(&self.vs, Arch::cnn(Algo::Dqn), self.n_actions)
    }

    /// Copies `tensors` (names and shapes of [`param_specs`]) into the network.
    pub fn load(&mut self, tensors: &Tensors) -> Result<()> {
        self.parameters_changed();
        load_into(&self.vs, Arch::cnn(Algo::Dqn), self.n_actions, tensors)
    }

    /// The parameters as export tensors (CPU, f32), for checkpoints.
    pub fn tensors(&self) -> Result<Tensors> {
        tensors_of(&self.vs.variables(), Arch::cnn(Algo::Dqn), self.n_actions)
    }

    /// Polyak update from `online`: `self = tau * online + (1 - tau) * self` (tau 1: a copy).
    pub fn soft_update_from(&mut self, online: &QNetwork, tau: f64) {
        self.parameters_changed();
        let src = online.vs.variables();
        let dst = self.vs.variables();
        tch::no_grad(|| {
            for (name, d) in &dst {
                let mut d = d.shallow_clone();
                if tau >= 1.0 {
                    d.copy_(&src[name]);
                } else {
                    let mixed = &src[name] * tau + &d * (1.0 - tau);
                    d.copy_(&mixed);
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn q_network_init_is_torch_default_from_the_seed_without_reseeding_libtorch() {
        // A hidden `manual_seed(seed)` inside `new` would make libtorch's next draw the same
        // whatever the generator held before; without one, different prior seeds give
        // different next draws.
        let next_draw_after_new = |prior: i64| {
            tch::manual_seed(prior);
            let _q = QNetwork::new(Device::Cpu, 6, 9).expect("q");
            Vec::<f32>::try_from(&Tensor::randn([4], (Kind::Float, Device::Cpu))).expect("vec")
        };
        assert_ne!(next_draw_after_new(123), next_draw_after_new(456));
        // The weights are torch_default_init(seed) exactly (drawn on the CPU, so the same on
        // every device), within PyTorch's bounds: network.0 fan_in 4*8*8 = 256 -> 1/16.
        let got = QNetwork::new(Device::Cpu, 6, 9)
            .expect("q")
            .tensors()
            .expect("tensors");
        assert_eq!(got, cartridge_export::torch_default_init(Algo::Dqn, 6, 9));
        let max0 = got["network.0.weight"]
            .data
            .iter()
            .fold(0f32, |m, x| m.max(x.abs()));
        assert!(max0 <= 1.0 / 16.0 && max0 > 0.9 / 16.0, "{max0}");
        assert_ne!(got, cartridge_export::torch_default_init(Algo::Dqn, 6, 10));
    }
}
