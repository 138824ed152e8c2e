//! Where `train` creates tensors: every function takes the device, so no tensor lands on the
//! CPU by default. clippy's `disallowed-methods` (`clippy.toml`) refuses tch's constructors
//! (`Tensor::from_slice`, `zeros`, `ones`, `full`, `arange`, `randperm`, ...) everywhere else
//! in the crate; tests may use them for CPU fixtures.
//!
//! Observations reach the device through an [`Uploader`]: on CUDA the bytes are written into
//! a pinned (page-locked) staging tensor and copied with `non_blocking`, so the copy is one
//! DMA transfer and the host does not wait for it; on the CPU they are written straight into
//! the destination (one copy, no staging).
#![allow(clippy::disallowed_methods)]

use cartridge_contract::OBS_SHAPE;
use tch::{Device, Kind, Tensor};

use crate::{Error, Result};

/// One observation's shape in tch's dimensions, `[4, 84, 84]` (the contract's `OBS_SHAPE`).
pub const OBS_DIMS: [i64; 3] = [
    OBS_SHAPE[0] as i64,
    OBS_SHAPE[1] as i64,
    OBS_SHAPE[2] as i64,
];

/// `lead` dimensions followed by one observation's, e.g. `[T, N]` -> `[T, N, 4, 84, 84]`.
pub fn obs_dims(lead: &[i64]) -> Vec<i64> {
    lead.iter().copied().chain(OBS_DIMS).collect()
}

/// Zeros of `shape` and `kind` on `device`.
pub fn zeros(shape: &[i64], kind: Kind, device: Device) -> Tensor {
    Tensor::zeros(shape, (kind, device))
}

/// A random permutation of `0..n` (i64) on `device`, from libtorch's generator.
pub fn randperm(n: i64, device: Device) -> Tensor {
    Tensor::randperm(n, (Kind::Int64, device))
}

/// `data` as an f32 tensor of `shape` on `device` (a blocking copy from the host).
pub fn from_f32(data: &[f32], shape: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(data).view(shape).to_device(device)
}

/// `data` as an i64 tensor of `shape` on `device` (a blocking copy from the host).
pub fn from_i64(data: &[i64], shape: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(data).view(shape).to_device(device)
}

/// `data` as a CPU tensor of `shape`, for the host side of a computation.
pub fn host_f32(data: &[f32], shape: &[i64]) -> Tensor {
    Tensor::from_slice(data).view(shape)
}

/// Copies `bytes` into the memory of `dst`, a contiguous u8 CPU tensor of as many elements.
fn write_host_bytes(bytes: &[u8], dst: &Tensor) -> Result<()> {
    let fits = dst.device() == Device::Cpu
        && dst.kind() == Kind::Uint8
        && dst.is_contiguous()
        && dst.numel() == bytes.len();
    if !fits {
        return Err(Error::Torch(tch::TchError::Shape(format!(
            "cannot write {} bytes into a {:?} {:?} tensor of {} elements (contiguous: {})",
            bytes.len(),
            dst.device(),
            dst.kind(),
            dst.numel(),
            dst.is_contiguous()
        ))));
    }
    // SAFETY: `dst` is a contiguous u8 CPU tensor of exactly `bytes.len()` elements (checked
    // above), so its data pointer addresses `bytes.len()` writable bytes that cannot overlap
    // the borrowed slice.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), dst.data_ptr().cast::<u8>(), bytes.len());
    }
    Ok(())
}

/// Host-to-device transfer of u8 observation batches `[B, 4, 84, 84]`.
#[derive(Debug)]
pub struct Uploader {
    device: Device,
    /// Pinned staging memory (CUDA only), grown to the largest batch seen.
    staging: Option<Tensor>,
}

impl Uploader {
    /// An uploader to `device`.
    pub fn new(device: Device) -> Self {
        Self {
            device,
            staging: None,
        }
    }

    /// The concatenation of `parts` (each a whole number of `shape[1..]` items) as one u8
    /// tensor `[sum of items, shape[1..]]` on the device: one transfer for several arrays.
    pub fn upload(&mut self, parts: &[&[u8]], item_shape: &[i64]) -> Result<Tensor> {
        let item: i64 = item_shape.iter().product();
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let mut shape = vec![total as i64 / item.max(1)];
        shape.extend_from_slice(item_shape);
        if self.device == Device::Cpu {
            let t = Tensor::empty(&shape, (Kind::Uint8, Device::Cpu));
            self.fill(parts, &t)?;
            return Ok(t);
        }
        let grow = self.staging.as_ref().is_none_or(|s| (s.numel()) < total);
        if grow {
            let s =
                Tensor::empty([total as i64], (Kind::Uint8, Device::Cpu)).pin_memory(self.device);
            self.staging = Some(s);
        }
        let staging = self
            .staging
            .as_ref()
            .map(|s| s.narrow(0, 0, total as i64))
            .ok_or_else(|| Error::Device("no staging buffer".into()))?;
        self.fill(parts, &staging)?;
        // non_blocking from pinned memory: an asynchronous DMA on the current stream. The
        // staging memory is rewritten only at the next upload, after the caller has read a
        // result of this batch back (a synchronisation), so the copy has finished by then.
        Ok(staging
            .f_to_device_(self.device, Kind::Uint8, true, false)?
            .view(shape.as_slice()))
    }

    /// Writes `bytes` into `dst`, a contiguous u8 tensor on the device (e.g. one step of the
    /// rollout storage), without an intermediate tensor on the CPU.
    pub fn upload_into(&mut self, bytes: &[u8], dst: &mut Tensor) -> Result<()> {
        if self.device == Device::Cpu {
            return write_host_bytes(bytes, dst);
        }
        let item = dst.size();
        let t = self.upload(&[bytes], &item[1..])?;
        dst.f_copy_(&t.view(item.as_slice()))?;
        Ok(())
    }

    fn fill(&self, parts: &[&[u8]], dst: &Tensor) -> Result<()> {
        let mut at = 0i64;
        for p in parts {
            let len = p.len() as i64;
            write_host_bytes(p, &dst.view(-1).narrow(0, at, len))?;
            at += len;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_concatenate_parts_and_write_in_place() {
        let mut up = Uploader::new(Device::Cpu);
        let t = up
            .upload(&[&[1, 2, 3, 4], &[5, 6, 7, 8]], &[2, 2])
            .expect("upload");
        assert_eq!(t.size(), [2, 2, 2]);
        assert_eq!(
            Vec::<u8>::try_from(&t.view(-1)).expect("vec"),
            [1, 2, 3, 4, 5, 6, 7, 8]
        );
        let dst = zeros(&[2, 3], Kind::Uint8, Device::Cpu);
        let mut row = dst.get(1);
        up.upload_into(&[9, 8, 7], &mut row).expect("into");
        assert_eq!(
            Vec::<u8>::try_from(&dst.view(-1)).expect("vec"),
            [0, 0, 0, 9, 8, 7]
        );
        // A wrong length is an error, not a write past the end.
        assert!(up.upload_into(&[1, 2], &mut dst.get(0)).is_err());
        assert!(up.upload_into(&[1; 6], &mut dst.transpose(0, 1)).is_err());
    }
}
