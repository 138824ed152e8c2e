//! The contract between `train`, `export` and `play`, spelled once; every crate uses these
//! names and no other spelling of them.
//!
//! - **Observation**: `[N, 4, 84, 84]` u8, [`FRAME_STACK`] gray frames of
//!   [`FRAME_HEIGHT`] x [`FRAME_WIDTH`] (WarpFrame: OpenCV RGB->gray, `INTER_AREA` resize),
//!   channel-first, oldest frame first; the network scales by 1/255 itself. [`OBS_ENCODING`]
//!   names it in metadata.
//! - **ONNX model**: input [`tensor::OBS`]; PPO outputs [`tensor::LOGITS`] f32 `[N, A]` and
//!   [`tensor::VALUE`] f32 `[N, 1]`, DQN [`tensor::Q_VALUES`] f32 `[N, A]`; output `i` means ALE
//!   action `actions[i]` of the metadata. Metadata keys are [`key`]'s under [`ONNX_PREFIX`]
//!   ([`onnx_key`]).
//! - **Recurrent policy** ([`Policy::Lstm`], `arch` [`ARCH_NATURE_CNN_LSTM`]): input
//!   [`tensor::OBS`] is u8 `[N, 1, 84, 84]` ([`LSTM_FRAME_STACK`] frame), plus the LSTM state
//!   inputs [`tensor::H`] and [`tensor::C`] f32 `[1, N, LSTM_HIDDEN]`; after `logits` and
//!   `value` come the next state [`tensor::H_OUT`], [`tensor::C_OUT`] (same shape). The model
//!   never zeroes the state: the caller passes zeros for an environment whose observation
//!   starts an episode. The metadata add [`RECURRENT_KEYS`].
//! - **Checkpoint** (safetensors): tensors named as the ONNX initializers, the `__metadata__`
//!   map holding [`CHECKPOINT_KEYS`] (and [`RECURRENT_KEYS`] for a recurrent policy).
//! - **Format version** [`FORMAT_VERSION`] of both.

use std::fmt;
use std::str::FromStr;

pub mod roms;

/// Frames stacked in one observation (FrameStack).
pub const FRAME_STACK: usize = 4;
/// Height of one preprocessed frame.
pub const FRAME_HEIGHT: usize = 84;
/// Width of one preprocessed frame.
pub const FRAME_WIDTH: usize = 84;
/// Bytes of one preprocessed frame.
pub const FRAME_LEN: usize = FRAME_HEIGHT * FRAME_WIDTH;
/// Bytes of one observation (`FRAME_STACK` frames).
pub const OBS_LEN: usize = FRAME_STACK * FRAME_LEN;
/// Shape of one observation, `[4, 84, 84]` (a batch adds a leading `N`).
pub const OBS_SHAPE: [usize; 3] = [FRAME_STACK, FRAME_HEIGHT, FRAME_WIDTH];
/// The `obs` metadata value: [`FRAME_STACK`] stacked 84x84 gray frames, u8.
pub const OBS_ENCODING: &str = "gray84x84";
/// The `arch` metadata value of the Nature CNN (Mnih et al. 2015).
pub const ARCH_NATURE_CNN: &str = "nature_cnn";
/// The `arch` metadata value of the CNN-LSTM policy (CleanRL `ppo_atari_lstm.py`: the Nature
/// CNN trunk on one frame, then `nn.LSTM(512, 128)`, then the heads).
pub const ARCH_NATURE_CNN_LSTM: &str = "nature_cnn_lstm";
/// Frames per observation of the CNN-LSTM policy (CleanRL `ppo_atari_lstm.py` wraps its
/// environments in `FrameStack(1)`: the LSTM carries the history).
pub const LSTM_FRAME_STACK: usize = 1;
/// Hidden units of the CNN-LSTM policy's LSTM (CleanRL `nn.LSTM(512, 128)`); the state
/// tensors are f32 `[1, N, LSTM_HIDDEN]`.
pub const LSTM_HIDDEN: usize = 128;
/// The `recurrent` metadata value of the CNN-LSTM policy.
pub const RECURRENT_LSTM: &str = "lstm";
/// Version of the checkpoint and ONNX metadata format (`format_version`).
pub const FORMAT_VERSION: &str = "1";

/// Tensor names of the ONNX model.
pub mod tensor {
    /// The input: u8 `[N, 4, 84, 84]`.
    pub const OBS: &str = "obs";
    /// PPO: policy logits, f32 `[N, A]`.
    pub const LOGITS: &str = "logits";
    /// PPO: state value, f32 `[N, 1]`.
    pub const VALUE: &str = "value";
    /// DQN: one Q-value per action, f32 `[N, A]`.
    pub const Q_VALUES: &str = "q_values";
    /// Recurrent policies: the LSTM hidden state before this step, f32
    /// `[1, N, LSTM_HIDDEN]` (zeros where an episode starts; the caller zeroes it).
    pub const H: &str = "h";
    /// Recurrent policies: the LSTM cell state before this step, f32 `[1, N, LSTM_HIDDEN]`.
    pub const C: &str = "c";
    /// Recurrent policies: the hidden state after this step, f32 `[1, N, LSTM_HIDDEN]`; the
    /// next step's [`H`].
    pub const H_OUT: &str = "h_out";
    /// Recurrent policies: the cell state after this step, f32 `[1, N, LSTM_HIDDEN]`; the
    /// next step's [`C`].
    pub const C_OUT: &str = "c_out";
    /// The state inputs of a recurrent model, in order (`h, c`).
    pub const STATE_INPUTS: [&str; 2] = [H, C];
    /// The state outputs, in the order of [`STATE_INPUTS`]: output `i` feeds input `i` at the
    /// next step.
    pub const STATE_OUTPUTS: [&str; 2] = [H_OUT, C_OUT];
}

/// Metadata keys: bare in a checkpoint's `__metadata__`, under [`ONNX_PREFIX`] in an ONNX
/// model's `metadata_props`.
pub mod key {
    /// [`crate::FORMAT_VERSION`].
    pub const FORMAT_VERSION: &str = "format_version";
    /// [`crate::Algo`]: `ppo` or `dqn`.
    pub const ALGO: &str = "algo";
    /// Game name, the ROM file stem (`breakout`).
    pub const GAME: &str = "game";
    /// MD5 of the ROM trained on, 32 lower-case hex digits.
    pub const ROM_MD5: &str = "rom_md5";
    /// ALE action ids of the outputs, comma separated.
    pub const ACTIONS: &str = "actions";
    /// [`crate::Policy::arch`]: [`crate::ARCH_NATURE_CNN`] or
    /// [`crate::ARCH_NATURE_CNN_LSTM`].
    pub const ARCH: &str = "arch";
    /// Emulator frames per agent step (MaxAndSkip).
    pub const FRAME_SKIP: &str = "frame_skip";
    /// Frames per observation ([`crate::Policy::frame_stack`]: 4 for the CNN, 1 for the
    /// CNN-LSTM).
    pub const FRAME_STACK: &str = "frame_stack";
    /// [`crate::OBS_ENCODING`].
    pub const OBS: &str = "obs";
    /// Agent steps the network was trained for (summed over environments), in the checkpoint
    /// and in the ONNX model alike (models exported before this name was shared call it
    /// `train_steps`).
    pub const GLOBAL_STEP: &str = "global_step";
    /// The run's `--seed`.
    pub const SEED: &str = "seed";
    /// Checkpoint only: the learning arguments, JSON.
    pub const ARGS: &str = "args";
    /// ONNX only, optional: games of the evaluation that produced `eval_mean_return`.
    pub const EVAL_EPISODES: &str = "eval_episodes";
    /// ONNX only, optional: mean return of that evaluation.
    pub const EVAL_MEAN_RETURN: &str = "eval_mean_return";
    /// ONNX only, converted models (`export --from`): the format converted, `sb3` or
    /// `cleanrl`.
    pub const SOURCE_FORMAT: &str = "source_format";
    /// ONNX only, converted models: the file name converted.
    pub const SOURCE_FILE: &str = "source_file";
    /// ONNX only, converted models: what the source says of itself, JSON (SB3: its version,
    /// algorithm, policy class, `normalize_images`; CleanRL: the state dict's layout).
    pub const SOURCE_INFO: &str = "source_info";
    /// ONNX only, converted models: how the source's observations were made, where that
    /// differs from Cartridge's (see the README's section on foreign agents).
    pub const SOURCE_PREPROCESSING: &str = "source_preprocessing";
    /// Recurrent policies only: the kind of recurrent state, [`crate::RECURRENT_LSTM`].
    pub const RECURRENT: &str = "recurrent";
    /// Recurrent policies only: the state input names, comma separated (`h,c`:
    /// [`crate::tensor::STATE_INPUTS`]).
    pub const STATE_INPUTS: &str = "state_inputs";
    /// Recurrent policies only: the state output names, comma separated, in the order of
    /// `state_inputs` (`h_out,c_out`: [`crate::tensor::STATE_OUTPUTS`]).
    pub const STATE_OUTPUTS: &str = "state_outputs";
    /// Recurrent policies only: hidden units of the LSTM ([`crate::LSTM_HIDDEN`]); each state
    /// tensor is f32 `[1, N, hidden_size]`.
    pub const HIDDEN_SIZE: &str = "hidden_size";
}

/// Every key of a checkpoint's `__metadata__`, all required, in the order they are written.
pub const CHECKPOINT_KEYS: [&str; 12] = [
    key::FORMAT_VERSION,
    key::ALGO,
    key::GAME,
    key::ROM_MD5,
    key::ACTIONS,
    key::ARCH,
    key::FRAME_SKIP,
    key::FRAME_STACK,
    key::OBS,
    key::GLOBAL_STEP,
    key::SEED,
    key::ARGS,
];

/// The keys a recurrent policy's checkpoint and ONNX model carry after [`CHECKPOINT_KEYS`] (all
/// required for `arch` [`ARCH_NATURE_CNN_LSTM`], all absent for [`ARCH_NATURE_CNN`]), in the
/// order they are written.
pub const RECURRENT_KEYS: [&str; 4] = [
    key::RECURRENT,
    key::STATE_INPUTS,
    key::STATE_OUTPUTS,
    key::HIDDEN_SIZE,
];

/// Prefix of every ONNX metadata key Cartridge writes.
pub const ONNX_PREFIX: &str = "cartridge.";

/// The ONNX metadata key of `key` (`"algo"` -> `"cartridge.algo"`).
pub fn onnx_key(key: &str) -> String {
    format!("{ONNX_PREFIX}{key}")
}

/// The learner a network belongs to; decides its heads and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algo {
    /// Proximal Policy Optimization (Schulman et al. 2017): policy logits and a state value.
    Ppo,
    /// Deep Q-Network (Mnih et al. 2015): one Q-value per action.
    Dqn,
}

impl Algo {
    /// Both, in a fixed order.
    pub const ALL: [Algo; 2] = [Algo::Ppo, Algo::Dqn];

    /// The metadata spelling: `"ppo"` or `"dqn"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algo::Ppo => "ppo",
            Algo::Dqn => "dqn",
        }
    }

    /// The ONNX outputs, in order: PPO `[logits, value]`, DQN `[q_values]`.
    pub fn output_names(self) -> &'static [&'static str] {
        match self {
            Algo::Ppo => &[tensor::LOGITS, tensor::VALUE],
            Algo::Dqn => &[tensor::Q_VALUES],
        }
    }

    /// The output an action is chosen from: PPO `logits`, DQN `q_values`.
    pub fn decision_output(self) -> &'static str {
        self.output_names()[0]
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`Algo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownAlgo(pub String);

impl fmt::Display for UnknownAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown algorithm `{}`; expected `ppo` or `dqn`", self.0)
    }
}

impl std::error::Error for UnknownAlgo {}

impl FromStr for Algo {
    type Err = UnknownAlgo;

    /// Parses `"ppo"` or `"dqn"` (exact, lower case).
    fn from_str(s: &str) -> Result<Algo, UnknownAlgo> {
        Algo::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAlgo(s.to_owned()))
    }
}

/// The network between the observation and the heads (`train ppo --policy`). The learner's
/// heads come from [`Algo`]; [`Policy::Lstm`] is PPO only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// The Nature CNN on [`FRAME_STACK`] stacked frames (CleanRL `ppo_atari.py`,
    /// `dqn_atari.py`); the default.
    #[default]
    Cnn,
    /// The Nature CNN on one frame, then an LSTM of [`LSTM_HIDDEN`] units whose state the
    /// caller carries between steps (CleanRL `ppo_atari_lstm.py`).
    Lstm,
}

impl Policy {
    /// Both, in a fixed order.
    pub const ALL: [Policy; 2] = [Policy::Cnn, Policy::Lstm];

    /// The command-line spelling: `"cnn"` or `"lstm"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Cnn => "cnn",
            Policy::Lstm => "lstm",
        }
    }

    /// The `arch` metadata value: [`ARCH_NATURE_CNN`] or [`ARCH_NATURE_CNN_LSTM`].
    pub fn arch(self) -> &'static str {
        match self {
            Policy::Cnn => ARCH_NATURE_CNN,
            Policy::Lstm => ARCH_NATURE_CNN_LSTM,
        }
    }

    /// The policy whose [`Policy::arch`] is `arch`, if any.
    pub fn from_arch(arch: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.arch() == arch)
    }

    /// Frames per observation (the input's dimension 1): [`FRAME_STACK`] or
    /// [`LSTM_FRAME_STACK`].
    pub fn frame_stack(self) -> usize {
        match self {
            Policy::Cnn => FRAME_STACK,
            Policy::Lstm => LSTM_FRAME_STACK,
        }
    }

    /// Hidden units of the recurrent state; `None` for a feed-forward policy.
    pub fn hidden_size(self) -> Option<usize> {
        match self {
            Policy::Cnn => None,
            Policy::Lstm => Some(LSTM_HIDDEN),
        }
    }

    /// Whether the model carries a state between steps.
    pub fn is_recurrent(self) -> bool {
        self.hidden_size().is_some()
    }

    /// Whether `algo` can have this policy: the CNN serves both learners, the LSTM PPO only.
    pub fn supports(self, algo: Algo) -> bool {
        matches!((self, algo), (Policy::Cnn, _) | (Policy::Lstm, Algo::Ppo))
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no [`Policy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPolicy(pub String);

impl fmt::Display for UnknownPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown policy `{}`; expected `cnn` or `lstm`", self.0)
    }
}

impl std::error::Error for UnknownPolicy {}

impl FromStr for Policy {
    type Err = UnknownPolicy;

    /// Parses `"cnn"` or `"lstm"` (exact, lower case).
    fn from_str(s: &str) -> Result<Policy, UnknownPolicy> {
        Policy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algo_spellings_round_trip_and_nothing_else_parses() {
        for a in Algo::ALL {
            assert_eq!(a.as_str().parse::<Algo>(), Ok(a));
            assert_eq!(a.to_string(), a.as_str());
        }
        assert_eq!("ppo".parse::<Algo>(), Ok(Algo::Ppo));
        assert_eq!("dqn".parse::<Algo>(), Ok(Algo::Dqn));
        for bad in ["PPO", "Dqn", "", "a2c"] {
            assert_eq!(bad.parse::<Algo>(), Err(UnknownAlgo(bad.to_owned())));
        }
    }

    /// The values the format has carried since version 1 (README, Contracts); changing one
    /// breaks every shipped model and checkpoint.
    #[test]
    fn contract_values() {
        assert_eq!(OBS_LEN, 4 * 84 * 84);
        assert_eq!(OBS_SHAPE, [4, 84, 84]);
        assert_eq!(Algo::Ppo.output_names(), ["logits", "value"]);
        assert_eq!(Algo::Dqn.output_names(), ["q_values"]);
        assert_eq!(Algo::Dqn.decision_output(), "q_values");
        assert_eq!(onnx_key(key::GLOBAL_STEP), "cartridge.global_step");
        assert_eq!(onnx_key(key::ALGO), "cartridge.algo");
        assert_eq!(CHECKPOINT_KEYS[0], "format_version");
        assert_eq!(CHECKPOINT_KEYS[11], "args");
    }

    #[test]
    fn policy_spellings_round_trip_and_nothing_else_parses() {
        for p in Policy::ALL {
            assert_eq!(p.as_str().parse::<Policy>(), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
            assert_eq!(Policy::from_arch(p.arch()), Some(p));
        }
        for bad in ["LSTM", "Cnn", "", "gru"] {
            assert_eq!(bad.parse::<Policy>(), Err(UnknownPolicy(bad.to_owned())));
        }
        assert_eq!(Policy::from_arch("impala"), None);
        assert_eq!(Policy::default(), Policy::Cnn);
    }

    /// The recurrent contract (README, Contracts): changing a value breaks every recurrent
    /// model already written.
    #[test]
    fn recurrent_contract_values() {
        assert_eq!(Policy::Cnn.arch(), "nature_cnn");
        assert_eq!(Policy::Lstm.arch(), "nature_cnn_lstm");
        assert_eq!(Policy::Cnn.frame_stack(), 4);
        assert_eq!(Policy::Lstm.frame_stack(), 1);
        assert_eq!(Policy::Lstm.hidden_size(), Some(128));
        assert!(!Policy::Cnn.is_recurrent() && Policy::Lstm.is_recurrent());
        assert!(Policy::Lstm.supports(Algo::Ppo) && !Policy::Lstm.supports(Algo::Dqn));
        assert!(Policy::Cnn.supports(Algo::Dqn));
        assert_eq!(tensor::STATE_INPUTS, ["h", "c"]);
        assert_eq!(tensor::STATE_OUTPUTS, ["h_out", "c_out"]);
        assert_eq!(
            RECURRENT_KEYS,
            ["recurrent", "state_inputs", "state_outputs", "hidden_size"]
        );
        assert_eq!(RECURRENT_LSTM, "lstm");
    }
}
