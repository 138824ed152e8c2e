//! How much memory the replay memory needs, what the machine has, and what the process used.

use super::replay::bytes_needed;
use super::DqnArgs;
use crate::{Error, Result};

/// Headroom besides the replay memory: libtorch, the networks, batches, environments.
const HEADROOM_BYTES: u64 = 1 << 30;

/// Bytes the kernel says can be allocated without swapping (`MemAvailable`), if known.
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    proc_kib(&text, "MemAvailable:")
}

/// Peak resident memory of this process (`VmHWM`), if known.
pub fn peak_rss() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    proc_kib(&text, "VmHWM:")
}

fn proc_kib(text: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line[key.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn gb(bytes: u64) -> f64 {
    bytes as f64 / 1e9
}

/// Prints what the replay memory needs and refuses to start when the machine cannot hold it.
pub(crate) fn check_memory(a: &DqnArgs) -> Result<()> {
    let need = bytes_needed(a.buffer_size);
    let per = bytes_needed(1);
    match mem_available() {
        Some(avail) => {
            eprintln!(
                "replay memory: {} transitions x {per} bytes = {:.2} GB (+ ~{:.1} GB for \
                 libtorch and the networks); available now: {:.2} GB",
                a.buffer_size,
                gb(need),
                gb(HEADROOM_BYTES),
                gb(avail)
            );
            if need + HEADROOM_BYTES > avail {
                let fits = avail.saturating_sub(HEADROOM_BYTES) / per;
                return Err(Error::Config(format!(
                    "--buffer-size {} needs {:.2} GB for the replay memory plus ~{:.1} GB, but \
                     only {:.2} GB are available on this machine; lower --buffer-size (at most \
                     about {fits} fits now) or free memory",
                    a.buffer_size,
                    gb(need),
                    gb(HEADROOM_BYTES),
                    gb(avail)
                )));
            }
        }
        None => eprintln!(
            "replay memory: {} transitions x {per} bytes = {:.2} GB (available memory unknown)",
            a.buffer_size,
            gb(need)
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_fields_parse_in_kib() {
        let text = "MemTotal:       24592300 kB\nMemAvailable:   22000000 kB\n";
        assert_eq!(proc_kib(text, "MemAvailable:"), Some(22_000_000 * 1024));
        assert_eq!(proc_kib(text, "VmHWM:"), None);
        assert!(mem_available().is_some() && peak_rss().is_some());
    }
}
