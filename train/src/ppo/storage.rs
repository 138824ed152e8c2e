//! One rollout's storage.

use tch::{Device, Kind, Tensor};

use crate::tensors::{self, obs_dims, Uploader};

/// One rollout's storage, `[T, N]` per quantity (observations `[T, N, 4, 84, 84]` u8 on the
/// training device).
#[derive(Debug)]
pub struct Storage {
    pub(crate) obs: Tensor,
    pub(crate) actions: Tensor,
    pub(crate) logprobs: Tensor,
    pub(crate) values: Tensor,
    pub(crate) rewards: Vec<f32>,
    pub(crate) dones: Vec<bool>,
    pub(crate) uploader: Uploader,
}

impl Storage {
    /// Empty storage for `t` steps of `n` environments.
    pub fn new(t: usize, n: usize, device: Device) -> Self {
        let (t, n) = (t as i64, n as i64);
        Self {
            obs: tensors::zeros(&obs_dims(&[t, n]), Kind::Uint8, device),
            actions: tensors::zeros(&[t, n], Kind::Int64, device),
            logprobs: tensors::zeros(&[t, n], Kind::Float, device),
            values: tensors::zeros(&[t, n], Kind::Float, device),
            rewards: Vec::with_capacity((t * n) as usize),
            dones: Vec::with_capacity((t * n) as usize),
            uploader: Uploader::new(device),
        }
    }
}
