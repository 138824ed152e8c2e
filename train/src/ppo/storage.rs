//! One rollout's storage.

use tch::{Device, Kind, Tensor};

use crate::lstm::LstmState;
use crate::tensors::{self, obs_dims, Uploader};

/// One rollout's storage, `[T, N]` per quantity (observations `[T, N, 4, 84, 84]` u8 on the
/// training device).
///
/// For the CNN-LSTM policy it also keeps the recurrent state (CleanRL `ppo_atari_lstm.py`):
/// the state the environments continue from, carried across steps and rollouts
/// (`next_lstm_state`), its copy at the start of this rollout (`initial_lstm_state`, where the
/// update re-runs each sequence from), and `starts`, whether step `t`'s observation begins an
/// episode (`dones[step] = next_done`), the mask of the state before that step. A new
/// storage (a new run, or a resume: environments restart) starts from zeros and no starts.
#[derive(Debug)]
pub struct Storage {
    pub(crate) obs: Tensor,
    pub(crate) actions: Tensor,
    pub(crate) logprobs: Tensor,
    pub(crate) values: Tensor,
    pub(crate) rewards: Vec<f32>,
    pub(crate) dones: Vec<bool>,
    /// `[T, N]`: step `t`'s observation begins an episode (the previous step ended one;
    /// at `t = 0`, the previous rollout's last step did). Filled for both policies; only the
    /// CNN-LSTM reads it.
    pub(crate) starts: Vec<bool>,
    /// CNN-LSTM: the state `[N, 128]` after the last step taken (CleanRL's `next_lstm_state`);
    /// created (zeros) by the first rollout.
    pub(crate) lstm_state: Option<LstmState>,
    /// CNN-LSTM: `lstm_state` at the start of this rollout (CleanRL's `initial_lstm_state`).
    pub(crate) initial_lstm_state: Option<LstmState>,
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
            starts: Vec::with_capacity((t * n) as usize),
            lstm_state: None,
            initial_lstm_state: None,
            uploader: Uploader::new(device),
        }
    }
}
