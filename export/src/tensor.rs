//! A minimal owned f32 tensor.

use std::collections::BTreeMap;

use crate::{Error, Result};

/// Named parameters, sorted by name. Names are the ONNX initializer names (see
/// [`crate::arch::param_specs`]).
pub type Tensors = BTreeMap<String, Tensor>;

/// A dense, row-major (C order) f32 tensor.
///
/// Invariant (checked by [`Tensor::new`] and by [`crate::Checkpoint::validate`]):
/// `data.len() == shape.iter().product()`. A scalar has an empty shape and one value.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first (PyTorch layout: Conv `[out, in, kh, kw]`, Linear
    /// `[out, in]`).
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<f32>,
}

impl Tensor {
    /// Builds a tensor, checking that `data` has exactly as many values as `shape` needs.
    ///
    /// # Errors
    /// [`Error::DataLength`] (naming the tensor `<unnamed>`) when the lengths disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor> {
        let tensor = Tensor { shape, data };
        tensor.check_len("<unnamed>")?;
        Ok(tensor)
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Tensor {
        let n = shape.iter().product();
        Tensor {
            shape,
            data: vec![0.0; n],
        }
    }

    /// Number of values the shape calls for.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Checks the length invariant, naming the tensor `name` in the error.
    pub(crate) fn check_len(&self, name: &str) -> Result<()> {
        if self.data.len() == self.numel() {
            Ok(())
        } else {
            Err(Error::DataLength {
                name: name.to_owned(),
                shape: self.shape.clone(),
                expected: self.numel(),
                found: self.data.len(),
            })
        }
    }

    /// The values as little-endian bytes (the layout of safetensors F32 and ONNX `raw_data`).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.data.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
}
