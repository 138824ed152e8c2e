//! Cartridge's trainer: PPO and DQN on libtorch (tch), the way OpenAI baselines (`ppo2`,
//! `deepq`) and CleanRL (`ppo_atari.py`, `dqn_atari.py`) do them, on vectorized ALE
//! environments that share infer's preprocessing.
//!
//! One folder per algorithm, each read top to bottom like CleanRL's files: [`ppo`] (arguments,
//! network, storage, rollout, GAE, losses, update, the loop) and [`dqn`] (arguments, network,
//! replay memory, targets, agent, the loop). What every run shares: [`config`] (the shared
//! arguments), [`run`] (start or resume, device, environments, saving and Ctrl-C, export and
//! evaluation at the end), [`network`] (the Nature CNN trunk), [`vecenv`] (environments),
//! [`adam`], [`precision`] (fp32 or bf16 mixed precision), [`tensors`] (tensor creation on a
//! device), [`seeds`], [`dist`] (MPI ranks),
//! [`checkpoint`]
//! (save/resume), and [`logger`] (logs; [`tensorboard`] events). The final evaluation of the exported model is
//! `play`'s own loop, [`cartridge_infer::session`].

// Tests build CPU fixtures with tch's constructors; the crate itself goes through `tensors`.
#![cfg_attr(test, allow(clippy::disallowed_methods))]

pub mod adam;
pub mod checkpoint;
pub mod config;
pub mod dist;
pub mod dqn;
pub mod logger;
pub mod lstm;
pub mod network;
pub mod ppo;
pub mod precision;
pub mod run;
pub mod seeds;
pub mod tensorboard;
pub mod tensors;
pub mod vecenv;

/// Everything that can go wrong while training. Messages say what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Arguments that do not fit together.
    #[error("invalid arguments: {0}")]
    Config(String),
    /// A checkpoint that cannot be resumed.
    #[error("cannot resume from {path}: {reason}")]
    Resume {
        /// The run folder or file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// libtorch failed.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),
    /// The runtime (ROM, emulator, ONNX Runtime) failed.
    #[error(transparent)]
    Infer(#[from] cartridge_infer::Error),
    /// Checkpoint or ONNX writing failed.
    #[error(transparent)]
    Export(#[from] cartridge_export::Error),
    /// Writing logs failed.
    #[error("cannot write logs: {0}")]
    Log(String),
    /// A training environment failed at run time (its worker thread panicked or is gone).
    #[error("training environment {env} failed: {message}; the run stopped without saving (resume from the last checkpoint)")]
    Env {
        /// Index of the environment (0-based), when known.
        env: usize,
        /// The panic message or what happened.
        message: String,
    },
    /// Network tensors that do not fit the network (names or shapes).
    #[error("model tensors do not fit the network: {0}")]
    Model(String),
    /// The replay memory cannot serve a request.
    #[error("replay memory: {0}")]
    Replay(String),
    /// The device cannot be used.
    #[error("device: {0}")]
    Device(String),
    /// MPI failed, or the ranks disagree.
    #[error("MPI: {0}")]
    Mpi(String),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
