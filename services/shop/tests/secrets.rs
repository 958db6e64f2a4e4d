//! `secrets.json`: processes starting together on an empty data directory agree on one set
//! of token secrets, and the file is readable by its owner only.

#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "integration tests race real threads on a real directory"
)]

use std::sync::{Arc, Barrier};

const STARTS: usize = 8;
const ROUNDS: usize = 10;

/// `STARTS` threads load the secrets at once from one empty directory; what each got.
fn race(dir: &std::path::Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let barrier = Arc::new(Barrier::new(STARTS));
    let starts: Vec<_> = (0..STARTS)
        .map(|_| {
            let (barrier, dir) = (barrier.clone(), dir.to_path_buf());
            std::thread::spawn(move || {
                barrier.wait();
                let secrets = shop::load_secrets(Some(&dir), None).expect("secrets load");
                (secrets.user_token_secret, secrets.service_token_secret)
            })
        })
        .collect();
    starts.into_iter().map(|start| start.join().unwrap()).collect()
}

#[test]
fn concurrent_starts_on_an_empty_directory_agree() {
    for round in 0..ROUNDS {
        let dir = std::env::temp_dir().join(format!("shop-secrets-{}-{round}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let loaded = race(&dir);
        assert!(loaded.iter().all(|secrets| *secrets == loaded[0]), "round {round}: the starts disagree");
        assert_eq!(loaded[0].0.len(), 64, "256 bits as hex");
        assert_ne!(loaded[0].0, loaded[0].1, "two different secrets");
        let again = shop::load_secrets(Some(&dir), None).unwrap();
        assert_eq!((again.user_token_secret, again.service_token_secret), loaded[0].clone(), "a restart reads it");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["secrets.json"], "no temporary file left behind");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("secrets.json")).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "round {round}: mode {:o}", mode & 0o777);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
