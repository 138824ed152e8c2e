//! The PPO network (CleanRL `ppo_atari.py` `Agent`, baselines `ppo2` `cnn` policy): the Nature
//! CNN trunk shared by actor and critic. Initial weights come from
//! [`cartridge_export::random_init`]: orthogonal (Saxe et al. 2013) with gain sqrt(2) for the
//! trunk, 0.01 for the actor head and 1 for the critic, biases 0 (CleanRL's `layer_init`).

use cartridge_export::{Algo, Tensors};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

use crate::network::{load_into, nature_trunk, params_of, tensors_of};
use crate::Result;

/// The PPO network on a device.
#[derive(Debug)]
pub struct ActorCritic {
    /// The parameters, named `network.0.weight`, ..., `actor.*`, `critic.*`.
    pub vs: nn::VarStore,
    trunk: nn::Sequential,
    actor: nn::Linear,
    critic: nn::Linear,
    n_actions: usize,
}

impl ActorCritic {
    /// A network for `n_actions` actions initialised from `seed`.
    pub fn new(device: Device, n_actions: usize, seed: u64) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let trunk = nature_trunk(&(&root / "network"));
        let actor = nn::linear(&root / "actor", 512, n_actions as i64, Default::default());
        let critic = nn::linear(&root / "critic", 512, 1, Default::default());
        let mut me = Self {
            vs,
            trunk,
            actor,
            critic,
            n_actions,
        };
        me.load(&cartridge_export::random_init(Algo::Ppo, n_actions, seed))?;
        Ok(me)
    }

    /// Number of actions.
    pub fn n_actions(&self) -> usize {
        self.n_actions
    }

    /// `(logits [B, A], value [B])` for observations u8 `[B, 4, 84, 84]` (scaled by 1/255 here).
    pub fn forward(&self, obs: &Tensor) -> (Tensor, Tensor) {
        debug_assert_eq!(
            obs.device(),
            self.vs.device(),
            "observations on another device"
        );
        let x = obs.to_kind(Kind::Float) / 255.0;
        let h = self.trunk.forward(&x);
        (
            self.actor.forward(&h),
            self.critic.forward(&h).squeeze_dim(-1),
        )
    }

    /// `V(obs)` `[B]`.
    pub fn value(&self, obs: &Tensor) -> Tensor {
        self.forward(obs).1
    }

    /// The trainable parameters in [`param_specs`] order.
    pub fn params(&self) -> Vec<Tensor> {
        params_of(&self.vs, Algo::Ppo, self.n_actions)
    }

    /// Copies `tensors` (names and shapes of [`param_specs`]) into the network.
    pub fn load(&mut self, tensors: &Tensors) -> Result<()> {
        load_into(&self.vs, Algo::Ppo, self.n_actions, tensors)
    }

    /// The parameters as export tensors (CPU, f32), for checkpoints.
    pub fn tensors(&self) -> Result<Tensors> {
        tensors_of(&self.vs.variables(), Algo::Ppo, self.n_actions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
