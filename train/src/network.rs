//! What the networks share, in tch: the Nature CNN trunk (Mnih et al. 2015) with CleanRL's
//! layer names, and the conversions between tch parameters and [`cartridge_export`] tensors,
//! whose names ([`cartridge_export::arch`]) line up with the checkpoint and the ONNX
//! initializers. The networks themselves are [`crate::ppo::ActorCritic`] and
//! [`crate::dqn::QNetwork`].

use std::collections::BTreeMap;

use cartridge_export::{param_specs, Arch, Tensor as ExportTensor, Tensors};
use tch::nn;
use tch::{Device, Kind, Tensor};

use crate::precision::Precision;
use crate::Result;

/// Layer strides of the Nature CNN (Mnih et al. 2015): 8x8 stride 4, 4x4 stride 2, 3x3 stride 1.
const STRIDES: [i64; 3] = [4, 2, 1];

/// The Nature CNN trunk (Mnih et al. 2015): observations u8 `[B, in_channels, 84, 84]` ->
/// features f32 `[B, 512]`, with layers named `network.0`, `network.2`, `network.4`,
/// `network.7` under `net` (the indices of CleanRL's `nn.Sequential`). `in_channels` is the
/// policy's frame stack ([`cartridge_export::Policy::frame_stack`]: 4 for the CNN, 1 for the
/// CNN-LSTM). Weights get tch's default init (PyTorch's Kaiming-uniform rule); callers
/// overwrite it where CleanRL does.
///
/// The parameters are f32. [`NatureTrunk::forward`] computes in the [`Precision`] it is
/// given: in bf16 it casts the scaled input and the weights to bfloat16 before each
/// convolution and product (autograd casts the gradients back, so the parameters' gradients
/// are f32) and returns f32 features, as `torch.autocast(dtype=torch.bfloat16)` does for
/// these layers. Both precisions run the convolutions in channels-last (NHWC) memory order
/// ([`channels_last`]); the values are the same as in NCHW order.
#[derive(Debug)]
pub(crate) struct NatureTrunk {
    convs: [nn::Conv2D; 3],
    fc: nn::Linear,
}

impl NatureTrunk {
    /// The trunk's parameters under `net`.
    pub(crate) fn new(net: &nn::Path, in_channels: usize) -> Self {
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
        Self {
            convs: [
                conv("0", in_channels as i64, 32, 8, STRIDES[0]),
                conv("2", 32, 64, 4, STRIDES[1]),
                conv("4", 64, 64, 3, STRIDES[2]),
            ],
            fc: nn::linear(net / "7", 64 * 7 * 7, 512, Default::default()),
        }
    }

    /// Features f32 `[B, 512]` of observations u8 `[B, in_channels, 84, 84]`: scaled by
    /// 1/255 in f32, then conv-ReLU x 3, flatten (C, H, W order), linear, ReLU, computed in
    /// `precision`, with gradients to the f32 parameters.
    pub(crate) fn forward(&self, obs: &Tensor, precision: Precision) -> Tensor {
        self.weights(precision).forward(obs)
    }

    /// The weights as [`Self::forward`] computes with them: cast to `precision`'s kind, the
    /// convolution kernels channels-last (in fp32 the linear layer's are the parameters
    /// themselves). Made under `no_grad`, they serve any number of forward passes while the
    /// parameters do not change (a rollout); made with gradients, one backward pass.
    pub(crate) fn weights(&self, precision: Precision) -> TrunkWeights {
        let kind = precision.compute_kind();
        let cast = |l: &Tensor| l.to_kind(kind);
        TrunkWeights {
            convs: self
                .convs
                .each_ref()
                .map(|c| (channels_last(&cast(&c.ws)), c.bs.as_ref().map(cast))),
            fc: (cast(&self.fc.ws), self.fc.bs.as_ref().map(cast)),
            kind,
        }
    }
}

/// [`NatureTrunk`]'s weights in the kind it computes in ([`NatureTrunk::weights`]).
#[derive(Debug)]
pub(crate) struct TrunkWeights {
    convs: [(Tensor, Option<Tensor>); 3],
    fc: (Tensor, Option<Tensor>),
    kind: Kind,
}

impl TrunkWeights {
    /// [`NatureTrunk::forward`] with these weights.
    pub(crate) fn forward(&self, obs: &Tensor) -> Tensor {
        let mut x = (channels_last(obs).to_kind(Kind::Float) / 255.0).to_kind(self.kind);
        for ((w, b), stride) in self.convs.iter().zip(STRIDES) {
            x = x
                .conv2d(w, b.as_ref(), [stride, stride], [0, 0], [1, 1], 1)
                .relu();
        }
        x.flatten(1, -1)
            .linear(&self.fc.0, self.fc.1.as_ref())
            .relu()
            .to_kind(Kind::Float)
    }
}

/// `x` (`[N, C, H, W]`) with channels-last strides: the same values, stored NHWC. libtorch's
/// oneDNN convolutions take the NHWC path for such tensors and return NHWC outputs; measured
/// on the 2-core AVX2 VM with PyTorch (scripts/torch-floor.py, fp32), it makes a PPO
/// iteration's compute 1.3x faster (docs/PRECISION.md).
pub(crate) fn channels_last(x: &Tensor) -> Tensor {
    x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
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
