//! The crate's error type.
//!
//! Every message is complete on its own: it names the file, key or tensor that was wrong,
//! what was found, what was expected and, where there is one, what to do. Causes (I/O,
//! decoding) are folded into the message rather than chained through `source()`, so both
//! `{}` and anyhow's `{:#}` print the whole story exactly once.

use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while building, reading, validating or writing a
/// checkpoint or an ONNX model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed.
    #[error("cannot {action} {}: {err}", path.display())]
    Io {
        /// What was being done, e.g. "read" or "create a temporary file in".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        err: std::io::Error,
    },

    /// The bytes are not a well-formed safetensors file.
    #[error(
        "not a valid safetensors checkpoint ({detail}); pass a .safetensors file written by \
         `train` or `export --checkpoint-out`"
    )]
    NotSafetensors {
        /// The decoder's complaint.
        detail: String,
    },

    /// A problem found inside a particular checkpoint file.
    #[error("checkpoint {}: {inner}", path.display())]
    InFile {
        /// The checkpoint file.
        path: PathBuf,
        /// What was wrong with it.
        inner: Box<Error>,
    },

    /// A required metadata key is absent.
    #[error(
        "metadata key `{key}` is missing; a Cartridge checkpoint must carry all of: {}",
        crate::checkpoint::METADATA_KEYS.join(", ")
    )]
    MissingMetadata {
        /// The absent key.
        key: &'static str,
    },

    /// A recurrent policy's checkpoint or model lacks one of the state keys.
    #[error(
        "metadata key `{key}` is missing: a recurrent (`{arch}`) checkpoint must also carry {}",
        cartridge_contract::RECURRENT_KEYS.join(", ")
    )]
    MissingRecurrentMetadata {
        /// The absent key.
        key: &'static str,
        /// The `arch` that needs it.
        arch: &'static str,
    },

    /// A learner / policy combination that does not exist.
    #[error(
        "the `{policy}` policy (arch `{}`) exists for PPO only, not for {algo}; use the `cnn` \
         policy with {algo}",
        policy.arch()
    )]
    UnsupportedPolicy {
        /// The learner.
        algo: crate::Algo,
        /// The policy asked for.
        policy: crate::Policy,
    },

    /// A metadata value could not be parsed or is out of range.
    #[error("metadata key `{key}` has invalid value {value:?}: {problem}")]
    BadMetadata {
        /// The offending key.
        key: &'static str,
        /// Its value as found.
        value: String,
        /// What is wrong and what is accepted.
        problem: String,
    },

    /// The checkpoint was written by an incompatible format version.
    #[error(
        "unsupported checkpoint format_version {found:?}: this build reads version {supported}; \
         export it with the Cartridge version that wrote it"
    )]
    UnsupportedFormatVersion {
        /// The version in the file.
        found: String,
        /// The version this crate reads and writes.
        supported: &'static str,
    },

    /// A parameter the network needs is absent.
    #[error(
        "tensor `{name}` is missing: the {arch} network with {n_actions} actions needs it with \
         shape {expected:?}"
    )]
    MissingTensor {
        /// Parameter name.
        name: String,
        /// Network from the metadata (`algo`, `arch`).
        arch: crate::Arch,
        /// Number of actions from the metadata.
        n_actions: usize,
        /// The shape it must have.
        expected: Vec<usize>,
    },

    /// A tensor that is not a parameter of the network.
    #[error(
        "unexpected tensor `{name}` with shape {shape:?}: the {arch} network has no such \
         parameter (check the checkpoint's `algo` and `arch` metadata)"
    )]
    UnexpectedTensor {
        /// Tensor name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Network from the metadata (`algo`, `arch`).
        arch: crate::Arch,
    },

    /// A parameter with the wrong shape.
    #[error(
        "tensor `{name}` has shape {found:?}, expected {expected:?} for the {arch} network with \
         {n_actions} actions (the `actions` metadata must list one ALE id per policy output; \
         `arch` and `frame_stack` decide the trunk)"
    )]
    ShapeMismatch {
        /// Parameter name.
        name: String,
        /// Shape found.
        found: Vec<usize>,
        /// Shape required.
        expected: Vec<usize>,
        /// Network from the metadata (`algo`, `arch`).
        arch: crate::Arch,
        /// Number of actions from the metadata.
        n_actions: usize,
    },

    /// A tensor whose data length disagrees with its shape.
    #[error("tensor `{name}` holds {found} values but its shape {shape:?} needs {expected}")]
    DataLength {
        /// Tensor name.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// Values required by the shape.
        expected: usize,
        /// Values present.
        found: usize,
    },

    /// A tensor stored with an element type other than f32.
    #[error(
        "tensor `{name}` is stored as {dtype}, but checkpoints hold F32 only; convert the \
         weights to float32 before exporting"
    )]
    UnsupportedDtype {
        /// Tensor name.
        name: String,
        /// The dtype found, as safetensors names it.
        dtype: String,
    },

    /// A foreign model (`export --from sb3|cleanrl`) that cannot become a Cartridge model:
    /// the message names what the file holds and what is supported.
    #[error("{}: {problem}", path.display())]
    Unconvertible {
        /// The file being converted.
        path: PathBuf,
        /// What was found, what is supported and, where there is one, what to do.
        problem: String,
    },

    /// A caller-supplied value is invalid (for example an ONNX metadata key given twice).
    #[error("{0}")]
    InvalidInput(String),

    /// Bytes that should be an ONNX model do not decode as one.
    #[error("not an ONNX model: {0}")]
    NotOnnx(String),
}

impl Error {
    /// Attaches the checkpoint file `path` to an error found while reading it.
    pub(crate) fn in_file(self, path: impl Into<PathBuf>) -> Error {
        Error::InFile {
            path: path.into(),
            inner: Box::new(self),
        }
    }
}
