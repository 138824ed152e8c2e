//! The networks in tch, with the parameter names of [`cartridge_export::arch`] so
//! checkpoints and ONNX initializers line up by name:
//!
//! - [`ActorCritic`]: the Nature CNN (Mnih et al. 2015) trunk shared by actor and critic as in
//!   baselines `ppo2` and CleanRL `ppo_atari.py`. Initial weights come from
//!   [`cartridge_export::random_init`]: orthogonal (Saxe et al. 2013) with gain sqrt(2) for
//!   the trunk, 0.01 for the actor head and 1 for the critic, biases 0 (CleanRL's
//!   `layer_init`).
//! - [`QNetwork`]: the same trunk with a Q head, as CleanRL `dqn_atari.py`.

use std::collections::BTreeMap;

use cartridge_export::{param_specs, Algo, Tensor as ExportTensor, Tensors};
use tch::nn::{self, Module};
use tch::{Device, Kind, Tensor};

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

/// The Nature CNN trunk (Mnih et al. 2015): `[B, 4, 84, 84]` f32 in [0, 1] -> `[B, 512]`
/// features, with layers named `network.0`, `network.2`, `network.4`, `network.7` under `net`
/// (the indices of CleanRL's `nn.Sequential`). Weights get tch's default init (PyTorch's
/// Kaiming-uniform rule); callers overwrite it where CleanRL does.
fn nature_trunk(net: &nn::Path) -> nn::Sequential {
    let conv = |i: &str, c_in, c_out, k, s| {
        nn::conv2d(
            net / i,
            c_in,
            c_out,
            k,
            nn::ConvConfig {
                stride: s,
                ..Default::default()
            },
        )
    };
    nn::seq()
        .add(conv("0", 4, 32, 8, 4))
        .add_fn(|x| x.relu())
        .add(conv("2", 32, 64, 4, 2))
        .add_fn(|x| x.relu())
        .add(conv("4", 64, 64, 3, 1))
        .add_fn(|x| x.relu())
        .add_fn(|x| x.flatten(1, -1))
        .add(nn::linear(net / "7", 64 * 7 * 7, 512, Default::default()))
        .add_fn(|x| x.relu())
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

/// The DQN Q-network: the Nature CNN trunk and a linear head `network.9` `[A, 512]`, as
/// CleanRL's `dqn_atari.py` `QNetwork`, initialised as PyTorch's default rule there
/// ([`cartridge_export::torch_default_init`], drawn on the CPU from the seed and copied to the
/// device, so every device starts from the same weights and libtorch's generator is left
/// alone).
#[derive(Debug)]
pub struct QNetwork {
    /// The parameters, named `network.0.weight`, ..., `network.9.bias`.
    pub vs: nn::VarStore,
    trunk: nn::Sequential,
    head: nn::Linear,
    n_actions: usize,
}

impl QNetwork {
    /// A network for `n_actions` actions initialised from `seed`.
    pub fn new(device: Device, n_actions: usize, seed: u64) -> Result<Self> {
        let vs = nn::VarStore::new(device);
        let net = vs.root() / "network";
        let trunk = nature_trunk(&net);
        let head = nn::linear(&net / "9", 512, n_actions as i64, Default::default());
        let mut me = Self {
            vs,
            trunk,
            head,
            n_actions,
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

    /// `Q(obs, ·)` `[B, A]` for observations u8 `[B, 4, 84, 84]` (scaled by 1/255 here).
    pub fn forward(&self, obs: &Tensor) -> Tensor {
        debug_assert_eq!(
            obs.device(),
            self.vs.device(),
            "observations on another device"
        );
        let x = obs.to_kind(Kind::Float) / 255.0;
        self.head.forward(&self.trunk.forward(&x))
    }

    /// The trainable parameters in [`param_specs`] order.
    pub fn params(&self) -> Vec<Tensor> {
        params_of(&self.vs, Algo::Dqn, self.n_actions)
    }

    /// Copies `tensors` (names and shapes of [`param_specs`]) into the network.
    pub fn load(&mut self, tensors: &Tensors) -> Result<()> {
        load_into(&self.vs, Algo::Dqn, self.n_actions, tensors)
    }

    /// The parameters as export tensors (CPU, f32), for checkpoints.
    pub fn tensors(&self) -> Result<Tensors> {
        tensors_of(&self.vs.variables(), Algo::Dqn, self.n_actions)
    }

    /// Polyak update from `online`: `self = tau * online + (1 - tau) * self` (tau 1: a copy).
    pub fn soft_update_from(&mut self, online: &QNetwork, tau: f64) {
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

fn params_of(vs: &nn::VarStore, algo: Algo, n_actions: usize) -> Vec<Tensor> {
    let vars = vs.variables();
    param_specs(algo, n_actions)
        .iter()
        .map(|s| vars[s.name].shallow_clone())
        .collect()
}

fn load_into(vs: &nn::VarStore, algo: Algo, n_actions: usize, tensors: &Tensors) -> Result<()> {
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for spec in param_specs(algo, n_actions) {
            let src = tensors
                .get(spec.name)
                .ok_or_else(|| crate::Error::Model(format!("tensor {} is missing", spec.name)))?;
            if src.shape != spec.shape {
                return Err(crate::Error::Model(format!(
                    "tensor {} has shape {:?}, expected {:?}",
                    spec.name, src.shape, spec.shape
                )));
            }
            let shape: Vec<i64> = src.shape.iter().map(|&d| d as i64).collect();
            let mut dst = vars[spec.name].shallow_clone();
            dst.f_copy_(&crate::tensors::from_f32(&src.data, &shape, dst.device()))?;
        }
        Ok(())
    })
}

/// Named tch tensors -> export tensors in [`param_specs`] order.
pub fn tensors_of(
    vars: &std::collections::HashMap<String, Tensor>,
    algo: Algo,
    n_actions: usize,
) -> Result<Tensors> {
    let mut out = BTreeMap::new();
    for spec in param_specs(algo, n_actions) {
        out.insert(spec.name.to_string(), to_export(&vars[spec.name])?);
    }
    Ok(out)
}

/// A tch tensor -> an export tensor (CPU f32, row-major).
pub fn to_export(t: &Tensor) -> Result<ExportTensor> {
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let flat = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .view(-1);
    let data: Vec<f32> = Vec::<f32>::try_from(&flat)?;
    Ok(ExportTensor::new(shape, data)?)
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
