//! Training precision (`--precision auto|fp32|bf16`), a run-time setting like `--device`.
//!
//! `bf16` is mixed precision as `torch.autocast(dtype=torch.bfloat16)` does it (Micikevicius
//! et al. 2018, "Mixed Precision Training", with bfloat16 instead of fp16, so no loss
//! scaling): the convolutions and matrix products of the Nature CNN trunk compute in bfloat16
//! ([`crate::network::NatureTrunk`] casts its input and weights), while the master weights,
//! their gradients (autograd casts them back to the f32 parameters), Adam's moments, the
//! policy / value / Q heads, log-softmax and entropy, the LSTM core, the loss reductions, GAE,
//! returns, advantage normalisation and the value targets stay f32. Checkpoints are f32
//! whatever the precision, so a run may change precision on `--resume`.
//!
//! `auto` ([`pick_precision`]) picks bf16 where the hardware does bfloat16 arithmetic natively
//! (x86 `avx512_bf16` or `amx_bf16` in `/proc/cpuinfo`, which oneDNN's bf16 kernels use;
//! CUDA compute capability 8.0 or later, Ampere's tensor cores) and fp32 elsewhere.

use std::fmt;

use tch::{Device, Kind};

use crate::{Error, Result};

/// What the trunk computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Everything in f32.
    #[default]
    Fp32,
    /// Convolutions and matrix products of the trunk in bfloat16, the rest f32.
    Bf16,
}

impl Precision {
    /// The kind the trunk's convolutions and products compute in.
    pub fn compute_kind(self) -> Kind {
        match self {
            Precision::Fp32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        })
    }
}

/// The precision of a run and why it was chosen (the start line prints both).
#[derive(Debug, Clone, PartialEq)]
pub struct PrecisionChoice {
    /// The precision.
    pub precision: Precision,
    /// Why: the flag and what the hardware has.
    pub reason: String,
    /// Set when `--precision bf16` was asked for on hardware without native bf16 arithmetic
    /// (it then runs emulated, slower than fp32).
    pub warning: Option<String>,
}

/// The x86 CPU flags that mean native bfloat16 arithmetic, found in a `/proc/cpuinfo` text
/// (the `flags` line of its first processor), in this order: `avx512_bf16`, `amx_bf16`.
pub fn cpu_bf16_flags(cpuinfo: &str) -> Vec<&'static str> {
    let Some(flags) = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags") || l.starts_with("Features"))
        .and_then(|l| l.split_once(':').map(|(_, v)| v))
    else {
        return Vec::new();
    };
    let have: Vec<&str> = flags.split_whitespace().collect();
    ["avx512_bf16", "amx_bf16"]
        .into_iter()
        .filter(|f| have.contains(f))
        .collect()
}

/// What the training hardware offers for bf16.
#[derive(Debug, Clone, PartialEq)]
pub enum Bf16Support {
    /// The CPU, with these flags of [`cpu_bf16_flags`] (empty: none).
    Cpu(Vec<&'static str>),
    /// A CUDA device of this compute capability (`None`: unknown).
    Cuda(Option<(u32, u32)>),
}

impl Bf16Support {
    /// What `device` offers: the flags of this machine's `/proc/cpuinfo`, or the CUDA
    /// device's compute capability as `nvidia-smi` reports it.
    pub fn probe(device: Device) -> Self {
        match device {
            Device::Cuda(i) => Self::Cuda(cuda_capability(i)),
            _ => Self::Cpu(
                std::fs::read_to_string("/proc/cpuinfo")
                    .map(|t| cpu_bf16_flags(&t))
                    .unwrap_or_default(),
            ),
        }
    }

    fn native(&self) -> bool {
        match self {
            Self::Cpu(flags) => !flags.is_empty(),
            Self::Cuda(cap) => cap.is_some_and(|c| c >= (8, 0)),
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Cpu(flags) if flags.is_empty() => {
                "the CPU has neither avx512_bf16 nor amx_bf16".into()
            }
            Self::Cpu(flags) => format!("the CPU has {}", flags.join(" and ")),
            Self::Cuda(Some((major, minor))) => {
                format!("the GPU has compute capability {major}.{minor}")
            }
            Self::Cuda(None) => "the GPU's compute capability is unknown (no nvidia-smi)".into(),
        }
    }
}

/// The compute capability of CUDA device `index` from `nvidia-smi`, when it can tell.
fn cuda_capability(index: usize) -> Option<(u32, u32)> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().nth(index)?;
    let (major, minor) = line.trim().split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Resolves `--precision` (`auto`, `fp32`, `bf16`) against what the hardware offers.
///
/// # Errors
/// [`Error::Config`] for another name.
pub fn pick_precision(flag: &str, support: &Bf16Support) -> Result<PrecisionChoice> {
    let why = support.describe();
    let (precision, warning) = match flag {
        "fp32" => (Precision::Fp32, None),
        "bf16" if support.native() => (Precision::Bf16, None),
        "bf16" => (
            Precision::Bf16,
            Some(format!(
                "--precision bf16, but {why}: bfloat16 is emulated there and trains slower \
                 than fp32; use --precision auto or fp32"
            )),
        ),
        "auto" if support.native() => (Precision::Bf16, None),
        "auto" => (Precision::Fp32, None),
        other => {
            return Err(Error::Config(format!(
                "--precision {other}: use auto, fp32 or bf16"
            )))
        }
    };
    Ok(PrecisionChoice {
        precision,
        reason: format!("--precision {flag}; {why}"),
        warning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The flags lines of two real machines: this project's AMD EPYC (Zen 4) VM, and an Intel
    // Xeon (Skylake-SP) VM, which has AVX-512 but no bf16 instructions.
    const ZEN4: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14\n\
        flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 \
        clflush mmx fxsr sse sse2 ht syscall nx mmxext fxsr_opt pdpe1gb rdtscp lm avx2 avx512f \
        avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 clzero xsaveerptr \
        avx512vbmi umip avx512_vbmi2 gfni vaes vpclmulqdq avx512_vnni avx512_bitalg \
        avx512_vpopcntdq rdpid fsrm\nbugs\t\t: sysret_ss_attrs\n\nprocessor\t: 1\n";
    const SKYLAKE: &str = "processor\t: 0\nvendor_id\t: GenuineIntel\n\
        flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep avx2 avx512f avx512dq \
        avx512cd avx512bw avx512vl xsaveopt xsavec\n";
    const SAPPHIRE_RAPIDS: &str = "flags\t\t: fpu avx512f avx512_bf16 avx512_fp16 amx_bf16 \
        amx_tile amx_int8\n";

    #[test]
    fn cpu_flags_are_read_from_the_flags_line() {
        assert_eq!(cpu_bf16_flags(ZEN4), ["avx512_bf16"]);
        assert!(cpu_bf16_flags(SKYLAKE).is_empty());
        assert_eq!(cpu_bf16_flags(SAPPHIRE_RAPIDS), ["avx512_bf16", "amx_bf16"]);
        // A flag named in another line (the model name, bugs) does not count.
        assert!(cpu_bf16_flags("model name\t: avx512_bf16 box\nflags\t\t: sse2\n").is_empty());
        assert!(cpu_bf16_flags("").is_empty());
    }

    #[test]
    fn auto_resolves_by_the_cpu_flags() {
        let zen4 = Bf16Support::Cpu(cpu_bf16_flags(ZEN4));
        let skylake = Bf16Support::Cpu(cpu_bf16_flags(SKYLAKE));
        let auto = pick_precision("auto", &zen4).expect("auto");
        assert_eq!(auto.precision, Precision::Bf16);
        assert_eq!(auto.reason, "--precision auto; the CPU has avx512_bf16");
        assert_eq!(auto.warning, None);
        let auto = pick_precision("auto", &skylake).expect("auto");
        assert_eq!(auto.precision, Precision::Fp32);
        assert_eq!(
            auto.reason,
            "--precision auto; the CPU has neither avx512_bf16 nor amx_bf16"
        );
        // Asked for without the hardware: bf16, with a warning that it is slower.
        let forced = pick_precision("bf16", &skylake).expect("bf16");
        assert_eq!(forced.precision, Precision::Bf16);
        assert!(forced
            .warning
            .expect("warning")
            .contains("slower than fp32"));
        assert_eq!(pick_precision("bf16", &zen4).expect("bf16").warning, None);
        assert_eq!(
            pick_precision("fp32", &zen4).expect("fp32").precision,
            Precision::Fp32
        );
        let err = pick_precision("fp16", &zen4).expect_err("fp16");
        assert!(err.to_string().contains("use auto, fp32 or bf16"), "{err}");
    }

    #[test]
    fn auto_resolves_by_the_cuda_capability() {
        let pick = |cap| pick_precision("auto", &Bf16Support::Cuda(cap)).expect("auto");
        assert_eq!(pick(Some((9, 0))).precision, Precision::Bf16);
        assert_eq!(pick(Some((8, 0))).precision, Precision::Bf16);
        assert_eq!(pick(Some((7, 5))).precision, Precision::Fp32);
        assert_eq!(pick(None).precision, Precision::Fp32);
        assert_eq!(
            pick(Some((7, 5))).reason,
            "--precision auto; the GPU has compute capability 7.5"
        );
    }
}
