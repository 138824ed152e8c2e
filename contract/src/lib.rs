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
//! - **Checkpoint** (safetensors): tensors named as the ONNX initializers, the `__metadata__`
//!   map holding [`CHECKPOINT_KEYS`].
//! - **Format version** [`FORMAT_VERSION`] of both.

use std::fmt;
use std::str::FromStr;

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
    /// [`crate::ARCH_NATURE_CNN`].
    pub const ARCH: &str = "arch";
    /// Emulator frames per agent step (MaxAndSkip).
    pub const FRAME_SKIP: &str = "frame_skip";
    /// Frames per observation ([`crate::FRAME_STACK`]).
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
}
