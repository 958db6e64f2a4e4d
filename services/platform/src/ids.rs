//! The id and randomness seam: one seeded generator per service instance.

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Seeded source of ids, tokens and salts. Same seed, same sequence.
#[derive(Clone)]
pub struct Ids {
    rng: Arc<Mutex<ChaCha20Rng>>,
}

impl Ids {
    pub fn from_seed(seed: u64) -> Ids {
        Ids { rng: Arc::new(Mutex::new(ChaCha20Rng::seed_from_u64(seed))) }
    }

    pub fn fill(&self, bytes: &mut [u8]) {
        let mut rng = self.rng.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        rng.fill_bytes(bytes);
    }

    pub fn next_u64(&self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    /// A random (version 4 layout) UUID drawn from the seeded generator.
    pub fn uuid(&self) -> Uuid {
        let mut bytes = [0u8; 16];
        self.fill(&mut bytes);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// `length_bytes` random bytes as lowercase hex.
    pub fn hex(&self, length_bytes: usize) -> String {
        let mut bytes = vec![0u8; length_bytes];
        self.fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_ids() {
        let a = Ids::from_seed(7);
        let b = Ids::from_seed(7);
        assert_eq!(a.uuid(), b.uuid());
        assert_eq!(a.hex(8), b.hex(8));
        assert_ne!(Ids::from_seed(8).uuid(), Ids::from_seed(7).uuid());
    }
}
