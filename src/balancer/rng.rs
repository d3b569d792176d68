//! Randomness and stable hashing for the pickers.
//!
//! Owns [`SharedRng`], a seedable generator that many threads draw from without a lock, and the
//! stable hash used for consistent hashing. It does not own any policy: pickers decide what to
//! draw.

use std::sync::atomic::{AtomicU64, Ordering};

use rand::Rng;

/// The SplitMix64 increment (the golden ratio in 64-bit fixed point).
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// A seedable random generator shared by every thread picking from one pool.
///
/// SplitMix64 over an atomic counter: each draw is one `fetch_add` and a mix, so concurrent
/// pickers never block one another, and one seed on one thread gives one sequence (tests).
#[derive(Debug)]
pub struct SharedRng {
    state: AtomicU64,
}

impl SharedRng {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> SharedRng {
        SharedRng {
            state: AtomicU64::new(seed),
        }
    }

    /// A generator seeded from the operating system, for production pools.
    pub fn from_entropy() -> SharedRng {
        SharedRng::new(rand::rng().next_u64())
    }

    /// The next 64 random bits.
    pub fn next_u64(&self) -> u64 {
        let state = self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA);
        mix(state)
    }

    /// A uniform index in `0..n`, or 0 when `n` is 0 (Lemire's multiply-shift; its bias is
    /// below `n / 2^64`).
    pub fn below(&self, n: u64) -> u64 {
        let wide = u128::from(self.next_u64()) * u128::from(n);
        u64::try_from(wide >> 64).unwrap_or(0)
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&self) -> f64 {
        // 53 random bits fill an f64's mantissa exactly.
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// The SplitMix64 finaliser: spreads every input bit over the whole output.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of a consistent-hashing key (FNV-1a, then mixed).
///
/// Stable across processes and versions on purpose: two Sluice instances behind one L4
/// balancer must send a key to the same backend. It is not keyed, so a client can aim keys at
/// one backend; bounded load is what protects against that.
pub fn hash_key(bytes: &[u8]) -> u64 {
    let mut hash = FNV_OFFSET;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    mix(hash)
}
