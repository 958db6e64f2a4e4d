//! The id and randomness seam: one seeded generator per service instance, and the source
//! of secrets (session ids, token secrets).

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Seeded source of ids, tokens and salts. Same seed, same sequence. Secrets come from
/// [`Ids::secret_hex`], whose source the composition root picks.
#[derive(Clone)]
pub struct Ids {
    rng: Arc<Mutex<ChaCha20Rng>>,
    secrets: SecretSource,
}

/// Where [`Ids::secret_hex`] draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// The seeded stream, like every other draw: a run is reproducible from its seed (the
    /// simulation, tests).
    Seeded,
    /// The operating system's generator, never the seeded stream (real mode): the public
    /// stream (request ids, trace ids) says nothing about a secret, and no seed derives one.
    Os,
}

/// The fewest bytes a secret may have (128 bits).
pub const SECRET_BYTES_MIN: usize = 16;

impl Ids {
    /// Everything, secrets included, from `seed`.
    pub fn from_seed(seed: u64) -> Ids {
        Ids { rng: Arc::new(Mutex::new(ChaCha20Rng::seed_from_u64(seed))), secrets: SecretSource::Seeded }
    }

    /// Ids from `seed`, secrets from the operating system (real mode).
    pub fn with_os_secrets(seed: u64) -> Ids {
        Ids { secrets: SecretSource::Os, ..Ids::from_seed(seed) }
    }

    /// A secret of `length_bytes` (at least [`SECRET_BYTES_MIN`]) random bytes, as lowercase
    /// hex: a session id, a token secret.
    pub fn secret_hex(&self, length_bytes: usize) -> String {
        assert!(length_bytes >= SECRET_BYTES_MIN, "a secret has at least {SECRET_BYTES_MIN} bytes");
        match self.secrets {
            SecretSource::Seeded => self.hex(length_bytes),
            SecretSource::Os => {
                let mut bytes = vec![0u8; length_bytes];
                crate::real::os_random(&mut bytes);
                to_hex(&bytes)
            }
        }
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

    /// A fresh typed id ([`contracts::Id`]): the next [`Ids::uuid`], of its kind.
    pub fn id<T: contracts::Id>(&self) -> T {
        T::from_uuid(self.uuid())
    }

    /// A fresh typed id made at `at`: a time-ordered (version 7 layout) UUID, its first 48
    /// bits `at`'s Unix milliseconds, the rest drawn from the seeded generator. Ids made one
    /// after another sort one after another, so the rows and index entries keyed by them are
    /// appended at a B-tree's end instead of landing on a random page: each commit writes
    /// fewer pages. Order ids key rows in every service's database. A clock that went back
    /// (a skewed host) gives an older prefix: the id stays unique (74 random bits), only its
    /// place in the order moves.
    pub fn id_at<T: contracts::Id>(&self, at: contracts::Timestamp) -> T {
        let mut bytes = [0u8; 10];
        self.fill(&mut bytes);
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        T::from_uuid(uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid())
    }

    /// `length_bytes` random bytes as lowercase hex.
    pub fn hex(&self, length_bytes: usize) -> String {
        let mut bytes = vec![0u8; length_bytes];
        self.fill(&mut bytes);
        to_hex(&bytes)
    }
}

/// `bytes` as lowercase hex, two digits a byte (ids, secrets, digests).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_later_sort_later() {
        let ids = Ids::from_seed(7);
        let at = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let made: Vec<contracts::OrderId> =
            [1_764_000_000_000, 1_764_000_000_000, 1_764_000_000_001, 1_764_000_060_000]
                .map(|ms| ids.id_at(at(ms)))
                .to_vec();
        for pair in made.windows(2) {
            assert_ne!(pair[0], pair[1]);
        }
        // Later milliseconds sort later, as text too (the databases' keys).
        let text: Vec<String> = made.iter().map(ToString::to_string).collect();
        assert!(text[1] < text[2] && text[2] < text[3], "{text:?}");
        assert_eq!(made[3].uuid().get_version_num(), 7);
        assert_eq!(made[3].uuid().get_timestamp().unwrap().to_unix().0, 1_764_000_060);
        // The same seed and times, the same ids.
        let again = Ids::from_seed(7);
        assert_eq!(made[0], again.id_at(at(1_764_000_000_000)));
    }

    #[test]
    fn hex_is_two_lowercase_digits_a_byte() {
        assert_eq!(to_hex(&[]), "");
        assert_eq!(to_hex(&[0x00, 0x09, 0x0a, 0x7f, 0xa0, 0xff]), "00090a7fa0ff");
        let every: Vec<u8> = (0..=255).collect();
        let expected: String = every.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(to_hex(&every), expected);
    }

    #[test]
    fn same_seed_same_ids() {
        let a = Ids::from_seed(7);
        let b = Ids::from_seed(7);
        assert_eq!(a.uuid(), b.uuid());
        assert_eq!(a.hex(8), b.hex(8));
        assert_ne!(Ids::from_seed(8).uuid(), Ids::from_seed(7).uuid());
        let order: contracts::OrderId = Ids::from_seed(7).id();
        assert_eq!(order.uuid(), Ids::from_seed(7).uuid(), "a typed id is the same draw");
    }

    #[test]
    fn seeded_secrets_are_reproducible() {
        assert_eq!(Ids::from_seed(7).secret_hex(32), Ids::from_seed(7).secret_hex(32));
    }

    /// Real mode: the public stream is reproducible from its seed, the secrets are not, and
    /// drawing a secret leaves the public stream where it was.
    #[test]
    fn os_secrets_do_not_come_from_the_seed() {
        let (a, b) = (Ids::with_os_secrets(7), Ids::with_os_secrets(7));
        let (secret_a, secret_b) = (a.secret_hex(32), b.secret_hex(32));
        assert_eq!(secret_a.len(), 64);
        assert_ne!(secret_a, secret_b, "two processes with one seed must not share a secret");
        assert_ne!(secret_a, Ids::from_seed(7).hex(32), "a secret is not the seed's first draw");
        let first_public = a.uuid();
        assert_eq!(first_public, Ids::from_seed(7).uuid(), "the public stream is untouched by secrets");
        assert_eq!(first_public, b.uuid());
    }
}
