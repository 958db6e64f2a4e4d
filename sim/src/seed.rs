//! One run seed, many independent streams: each consumer draws from a generator derived
//! from the seed and its own label, so one more draw in the workload does not reshuffle
//! the fault plan.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// The child seed of `seed` for `label`.
pub fn child_seed(seed: u64, label: &str) -> u64 {
    let digest = Sha256::new().chain_update(seed.to_le_bytes()).chain_update(label.as_bytes()).finalize();
    u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// A small deterministic generator with the draws the harness needs.
pub struct Draw {
    rng: ChaCha8Rng,
}

impl Draw {
    pub fn new(seed: u64, label: &str) -> Draw {
        Draw { rng: ChaCha8Rng::seed_from_u64(child_seed(seed, label)) }
    }

    /// Uniform in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        low + self.rng.next_u64() % (high - low + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.rng.next_u64() % 1000 < per_mille
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let index = self.range(0, items.len() as u64 - 1) as usize;
        &items[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_make_independent_streams() {
        assert_eq!(child_seed(1, "faults"), child_seed(1, "faults"));
        assert_ne!(child_seed(1, "faults"), child_seed(1, "shopper/0"));
        assert_ne!(child_seed(1, "faults"), child_seed(2, "faults"));
        let mut a = Draw::new(9, "x");
        let mut b = Draw::new(9, "x");
        let drawn: Vec<u64> = (0..10).map(|_| a.range(0, 100)).collect();
        assert_eq!(drawn, (0..10).map(|_| b.range(0, 100)).collect::<Vec<_>>());
        assert!(drawn.iter().all(|v| *v <= 100));
    }
}
