//! Cartridge's lean runtime: play an ONNX Atari policy next to a native emulator.
//!
//! Data flow of one agent step: ROM -> [`ale::Emulator`] (210x160 RGB frames) ->
//! [`preprocess::AtariEnv`] (MaxAndSkip, WarpFrame, FrameStack: u8 `[4, 84, 84]`) ->
//! [`policy::OnnxPolicy`] (ONNX Runtime) -> [`select::ActionSelector`] -> an index into the game's
//! minimal action set -> the emulator.
//!
//! This crate never depends on libtorch; `train` reuses its emulator and preprocessing.

pub mod ale;
pub mod paths;
pub mod policy;
pub mod preprocess;
pub mod record;
pub mod rom;
pub mod runtime;
pub mod seed;
pub mod select;
pub mod session;
pub mod stats;
pub mod window;

use std::path::PathBuf;

/// Everything that can go wrong in the runtime. Messages say what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No ROM file was found.
    #[error("{what} not found; searched:\n  {}\n{hint}", searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join("\n  "))]
    RomNotFound {
        /// What was looked for.
        what: String,
        /// Every folder or file looked at.
        searched: Vec<PathBuf>,
        /// How to install ROMs.
        hint: String,
    },
    /// A file is not an Atari ROM Cartridge can run.
    #[error("{path} is not a usable Atari ROM: {reason}")]
    InvalidRom {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A model file is unreadable or breaks the model contract.
    #[error("model {path} cannot be used: {reason}")]
    InvalidModel {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// A valid model does not fit the ROM it is asked to play.
    #[error("model does not match the ROM '{game}': {reason}")]
    ModelMismatch {
        /// The ROM's game.
        game: String,
        /// What differs.
        reason: String,
    },
    /// The ONNX Runtime library could not be found or loaded.
    #[error("{0}")]
    RuntimeNotFound(String),
    /// ONNX Runtime failed while running a loaded model.
    #[error("inference failed: {0}")]
    Inference(String),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidConfig(String),
    /// The emulator misbehaved.
    #[error("emulator error: {0}")]
    Emulator(String),
    /// Writing a recording failed.
    #[error("recording failed: {0}")]
    Record(String),
    /// The window could not be opened or updated.
    #[error("window error: {0}")]
    Window(String),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
