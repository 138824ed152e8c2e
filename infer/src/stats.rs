//! Helpers for summary lines: episode-return statistics, latency percentiles and process CPU
//! time.

/// Mean, population standard deviation, min and max of episode returns (as the README's
/// evaluation protocol reports them). All zero for no episodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReturnStats {
    /// Mean return.
    pub mean: f64,
    /// Population standard deviation (divides by n).
    pub std: f64,
    /// Lowest return.
    pub min: f64,
    /// Highest return.
    pub max: f64,
}

impl ReturnStats {
    /// Statistics of `returns`.
    pub fn of(returns: &[f64]) -> Self {
        if returns.is_empty() {
            return Self {
                mean: 0.0,
                std: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        let n = returns.len() as f64;
        let mean = returns.iter().sum::<f64>() / n;
        let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n;
        Self {
            mean,
            std: var.sqrt(),
            min: returns.iter().copied().fold(f64::INFINITY, f64::min),
            max: returns.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// The `q`-quantile (0..=1) of `samples` by nearest rank; 0 for no samples. Sorts in place.
pub fn percentile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}

/// CPU seconds (user + system) this process has used so far.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the zeroed struct we own.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        tv(u.ru_utime) + tv(u.ru_stime)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_stats_by_hand() {
        // [2, 4, 4, 4, 5, 5, 7, 9]: mean 5, squared deviations sum to 32, 32 / 8 = 4, std 2.
        let s = ReturnStats::of(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!(
            s,
            ReturnStats {
                mean: 5.0,
                std: 2.0,
                min: 2.0,
                max: 9.0
            }
        );
        assert_eq!(ReturnStats::of(&[-21.0]).std, 0.0);
        assert_eq!(ReturnStats::of(&[]).mean, 0.0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut v, 0.5), 50.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert_eq!(percentile(&mut v, 1.0), 100.0);
        assert_eq!(percentile(&mut [], 0.5), 0.0);
    }
}
