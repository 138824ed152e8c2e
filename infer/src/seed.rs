//! Seeds: one user seed spread into independent streams (emulator, NoopReset, sampling,
//! each environment, each iteration) with splitmix64 (Steele et al. 2014).

/// The `stream`-th seed derived from `seed`; different streams give unrelated seeds.
pub fn derive(seed: u64, stream: u64) -> u64 {
    let mut z = seed.wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An ALE `random_seed` from any u64: positive and never 0 (ALE reads 0 as "from the clock").
pub fn ale(seed: u64) -> u32 {
    (seed % 0x7fff_fffe) as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ale_seeds_are_never_zero_and_fit_a_signed_int() {
        for s in [0, 1, 0x7fff_fffd, 0x7fff_fffe, u64::MAX] {
            let a = ale(s);
            assert!(a >= 1 && a <= i32::MAX as u32, "{s} -> {a}");
        }
    }

    #[test]
    fn streams_differ() {
        assert_ne!(derive(1, 1), derive(1, 2));
        assert_ne!(derive(1, 1), derive(2, 1));
        assert_eq!(derive(7, 3), derive(7, 3));
    }
}
