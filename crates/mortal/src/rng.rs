//! Seeded random streams.
//!
//! Every random draw in `mortal` comes from a stream derived from a user seed and a
//! label (and, for parallel work, an index), never from a shared generator that threads
//! race for. Same seed ⇒ same numbers, whatever the number of threads.

use rand::SeedableRng;

/// The generator used everywhere: xoshiro256++ (fast, 256-bit state, passes BigCrush).
pub type Rng = rand_xoshiro::Xoshiro256PlusPlus;

/// SplitMix64 finaliser: a bijective 64-bit mixer.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Derives a child seed from a parent seed and a label (FNV-1a of the label, then mixed).
pub fn derive(seed: u64, label: &str) -> u64 {
    let mut h: u64 = 0xCBF2_9CE4_8422_2325;
    for b in label.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    mix(seed ^ mix(h))
}

/// Derives a child seed from a parent seed and an index (for per-item parallel streams).
pub fn derive_index(seed: u64, index: u64) -> u64 {
    mix(seed ^ mix(index.wrapping_add(0xA076_1D64_78BD_642F)))
}

/// Word `e` of the counter-based stream `seed`: SplitMix64's e-th output (Steele, Lea &
/// Flood, OOPSLA 2014). It depends on (seed, e) only, so per-element draws do not depend
/// on chunking or thread count, and a loop of them vectorises.
#[inline(always)]
pub fn counter_word(seed: u64, e: u64) -> u64 {
    mix(seed.wrapping_add(e.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
}

/// A generator for the stream named `label` under `seed`.
pub fn stream(seed: u64, label: &str) -> Rng {
    Rng::seed_from_u64(derive(seed, label))
}

/// A generator for item `index` of a parallel computation seeded by `seed`.
pub fn indexed(seed: u64, index: u64) -> Rng {
    Rng::seed_from_u64(derive_index(seed, index))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let first = |seed, label| stream(seed, label).random::<u64>();
        assert_eq!(first(7, "init"), first(7, "init"));
        assert_ne!(first(7, "init"), first(7, "order"));
        assert_ne!(first(7, "init"), first(8, "init"));
        assert_ne!(indexed(1, 0).random::<u64>(), indexed(1, 1).random::<u64>());
        assert_eq!(indexed(1, 5).random::<u64>(), indexed(1, 5).random::<u64>());
    }
}
