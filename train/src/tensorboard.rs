//! TensorBoard event files (`events.out.tfevents.*`) in the run folder, beside `metrics.csv`,
//! so `tensorboard --logdir runs` and tools that read CleanRL runs read Cartridge runs.
//!
//! Format (TensorFlow `core/lib/io/record_writer.cc`, read by the `tensorboard` package):
//! a file is a sequence of records, each `len: u64 LE`, `masked_crc32c(len bytes): u32 LE`,
//! `data: [u8; len]`, `masked_crc32c(data): u32 LE`, where `masked(c) = ((c >> 15) |
//! (c << 17)) + 0xa282_ead8` (wrapping) and `crc32c` is CRC-32C (Castagnoli). Each record is
//! an `Event` of tensorboard's `compat/proto/event.proto`: the first says `file_version =
//! "brain.Event:2"`, every other holds a `Summary` with one `simple_value` (f32) under a tag.
//!
//! Resuming: each process writes a new file and never touches an earlier one. A resumed run's
//! file starts with `SessionLog { status: START }` at step `resume_step + 1`; TensorBoard
//! then drops the earlier files' events at or after that step (those written after the
//! checkpoint that was resumed), as `RunLog` drops them from `metrics.csv`.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Result;

/// `tensorboard.Event` (event.proto): only the fields written here.
#[derive(Clone, PartialEq, prost::Message)]
struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    wall_time: f64,
    /// The x coordinate TensorBoard plots (agent steps here).
    #[prost(int64, tag = "2")]
    step: i64,
    #[prost(oneof = "What", tags = "3, 5, 7")]
    what: Option<What>,
}

/// `Event.what`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum What {
    #[prost(string, tag = "3")]
    FileVersion(String),
    #[prost(message, tag = "5")]
    Summary(Summary),
    #[prost(message, tag = "7")]
    SessionLog(SessionLog),
}

/// `tensorboard.Summary` (summary.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct Summary {
    #[prost(message, repeated, tag = "1")]
    value: Vec<SummaryValue>,
}

/// `Summary.Value`: `simple_value` is a member of a oneof, so it is written even when 0.
#[derive(Clone, PartialEq, prost::Message)]
struct SummaryValue {
    #[prost(string, tag = "1")]
    tag: String,
    #[prost(float, optional, tag = "2")]
    simple_value: Option<f32>,
}

/// `tensorboard.SessionLog`.
#[derive(Clone, PartialEq, prost::Message)]
struct SessionLog {
    /// `SessionStatus`: 1 = START.
    #[prost(int32, tag = "1")]
    status: i32,
}

const SESSION_START: i32 = 1;

/// CRC-32C of `data`, masked as TFRecord stores it.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    let c = crc32c::crc32c(data);
    c.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One TFRecord: length, its masked CRC, the data, its masked CRC.
fn record(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// An open event file of one process of one run.
#[derive(Debug)]
pub struct EventWriter {
    path: PathBuf,
    file: BufWriter<File>,
}

impl EventWriter {
    /// Creates a new event file in `dir` (never reusing a name); `resume_step` is the step of
    /// the checkpoint this process resumed from, if any.
    pub fn create(dir: &Path, resume_step: Option<u64>) -> Result<Self> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().replace(['/', '\\'], "_"))
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let secs = now() as u64;
        let pid = std::process::id();
        let mut n = 0u32;
        let (path, file) = loop {
            let path = dir.join(format!("events.out.tfevents.{secs}.{host}.{pid}.{n}"));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => break (path, f),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                Err(e) => return Err(e.into()),
            }
        };
        let mut w = Self {
            path,
            file: BufWriter::new(file),
        };
        w.write(0, What::FileVersion("brain.Event:2".into()))?;
        if let Some(step) = resume_step {
            w.write(
                step + 1,
                What::SessionLog(SessionLog {
                    status: SESSION_START,
                }),
            )?;
        }
        w.flush()?;
        Ok(w)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, step: u64, what: What) -> Result<()> {
        let event = Event {
            wall_time: now(),
            step: step as i64,
            what: Some(what),
        };
        self.file
            .write_all(&record(&prost::Message::encode_to_vec(&event)))?;
        Ok(())
    }

    /// Appends one scalar (stored as f32, TensorBoard's `simple_value`).
    pub fn scalar(&mut self, tag: &str, step: u64, value: f64) -> Result<()> {
        let value = SummaryValue {
            tag: tag.into(),
            simple_value: Some(value as f32),
        };
        self.write(step, What::Summary(Summary { value: vec![value] }))
    }

    /// Pushes buffered events to the file.
    pub fn flush(&mut self) -> Result<()> {
        self.file.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CRC-32C's check value is `crc32c("123456789") = 0xe3069283` (RFC 3720, B.4); the masked
    /// value `0xc78ab0e5` is what tensorboard's pure-Python reader computes
    /// (`tensorboard.compat.tensorflow_stub.pywrap_tensorflow.masked_crc32c(b"123456789")`,
    /// tensorboard 2.20.0), and `0xa282ead8` its value for no bytes.
    #[test]
    fn masked_crc_matches_tensorboard() {
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
    }

    /// The framing of a 3-byte record, by hand: length 3 as u64 LE, then the masked CRCs.
    #[test]
    fn record_framing() {
        let r = record(b"abc");
        assert_eq!(r.len(), 8 + 4 + 3 + 4);
        assert_eq!(&r[..8], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&r[8..12], &masked_crc32c(&r[..8]).to_le_bytes());
        assert_eq!(&r[12..15], b"abc");
        assert_eq!(&r[15..], &masked_crc32c(b"abc").to_le_bytes());
    }
}
