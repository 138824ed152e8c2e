//! What the networks share, in tch: the Nature CNN trunk (Mnih et al. 2015) with CleanRL's
//! layer names, and the conversions between tch parameters and [`cartridge_export`] tensors,
//! whose names ([`cartridge_export::arch`]) line up with the checkpoint and the ONNX
//! initializers. The networks themselves are [`crate::ppo::ActorCritic`] and
//! [`crate::dqn::QNetwork`].

use std::collections::BTreeMap;

use cartridge_export::{param_specs, Arch, Tensor as ExportTensor, Tensors};
use tch::nn;
use tch::{Device, Kind, Tensor};

use crate::Result;

/// The Nature CNN trunk (Mnih et al. 2015): `[B, in_channels, 84, 84]` f32 in [0, 1] ->
/// `[B, 512]` features, with layers named `network.0`, `network.2`, `network.4`, `network.7`
/// under `net` (the indices of CleanRL's `nn.Sequential`). `in_channels` is the policy's frame
/// stack ([`cartridge_export::Policy::frame_stack`]: 4 for the CNN, 1 for the CNN-LSTM).
/// Weights get tch's default init (PyTorch's Kaiming-uniform rule); callers overwrite it where
/// CleanRL does.
pub(crate) fn nature_trunk(net: &nn::Path, in_channels: usize) -> nn::Sequential {
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
        .add(conv("0", in_channels as i64, 32, 8, 4))
        .add_fn(|x| x.relu())
        .add(conv("2", 32, 64, 4, 2))
        .add_fn(|x| x.relu())
        .add(conv("4", 64, 64, 3, 1))
        .add_fn(|x| x.relu())
        .add_fn(|x| x.flatten(1, -1))
        .add(nn::linear(net / "7", 64 * 7 * 7, 512, Default::default()))
        .add_fn(|x| x.relu())
}

/// The parameters of `vs` in [`param_specs`] order of the network `arch`.
pub(crate) fn params_of(vs: &nn::VarStore, arch: Arch, n_actions: usize) -> Vec<Tensor> {
    let vars = vs.variables();
    param_specs(arch, n_actions)
        .iter()
        .map(|s| vars[s.name].shallow_clone())
        .collect()
}

/// Copies `tensors` (the names and shapes of [`param_specs`] of `arch`) into `vs`.
pub(crate) fn load_into(
    vs: &nn::VarStore,
    arch: Arch,
    n_actions: usize,
    tensors: &Tensors,
) -> Result<()> {
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for spec in param_specs(arch, n_actions) {
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

/// Named tch tensors -> export tensors in [`param_specs`] order of the network `arch`.
pub fn tensors_of(
    vars: &std::collections::HashMap<String, Tensor>,
    arch: Arch,
    n_actions: usize,
) -> Result<Tensors> {
    let mut out = BTreeMap::new();
    for spec in param_specs(arch, n_actions) {
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
