//! Cartridge's exporter: training checkpoints (safetensors + metadata) to self-describing
//! ONNX models, in pure Rust (no libtorch, no `protoc`).
//!
//! - [`arch`]: the networks' parameters (CleanRL names and shapes: the Nature CNN, the
//!   CNN-LSTM) and their initialisation.
//! - [`checkpoint`]: the checkpoint file (safetensors, F32, string metadata), read and
//!   validated or written atomically.
//! - [`import`]: Stable-Baselines3 / rl-zoo archives and CleanRL state dicts to checkpoints
//!   (`export --from sb3|cleanrl`).
//! - [`onnx`]: the ONNX graph (u8 input `obs` `[batch, 4, 84, 84]`, outputs `logits` and
//!   `value` or `q_values`, `cartridge.*` metadata; the CNN-LSTM adds the state inputs `h`,
//!   `c` and outputs `h_out`, `c_out`).
//!
//! ```no_run
//! # fn main() -> cartridge_export::Result<()> {
//! let ckpt = cartridge_export::Checkpoint::read("runs/breakout/ckpt.safetensors")?;
//! cartridge_export::write_onnx(&ckpt, &[], "breakout.onnx")?;
//! # Ok(())
//! # }
//! ```

pub mod arch;
pub mod checkpoint;
mod error;
mod fsio;
pub mod import;
pub mod onnx;
mod tensor;

pub use arch::{param_specs, random_init, torch_default_init, Algo, Arch, ParamSpec, Policy};
pub use checkpoint::{Checkpoint, Metadata};
pub use error::{Error, Result};
pub use fsio::write_atomic;
pub use onnx::{read_metadata_props, to_onnx, write_onnx};
pub use tensor::{Tensor, Tensors};
