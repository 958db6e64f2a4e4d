//! The same seed gives the same digest in two separate processes, and different seeds
//! give different runs.

use std::process::Command;

fn digest(scenario: &str, seed: u64) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["run", "--scenario", scenario, "--seed", &seed.to_string()])
        .output()
        .expect("run the sim binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{scenario} seed {seed} failed:\n{stdout}");
    stdout.lines().find_map(|l| l.strip_prefix("digest ")).expect("a digest line").to_string()
}

#[test]
fn one_seed_one_digest_across_processes() {
    for (scenario, seed) in [("swarm", 7), ("crash", 11), ("hold", 3)] {
        let first = digest(scenario, seed);
        let second = digest(scenario, seed);
        assert_eq!(first, second, "{scenario} seed {seed} differs between two processes");
    }
    assert_ne!(digest("swarm", 7), digest("swarm", 8), "two seeds should not give one run");
}

#[test]
fn a_plan_written_to_a_file_replays_to_the_seeds_digest() {
    let path = std::env::temp_dir().join(format!("sim-plan-{}.json", std::process::id()));
    let from_seed = Command::new(env!("CARGO_BIN_EXE_sim"))
        .args(["run", "--scenario", "crash", "--seed", "5", "--write-plan", path.to_str().unwrap()])
        .output()
        .unwrap();
    let from_plan =
        Command::new(env!("CARGO_BIN_EXE_sim")).args(["run", "--plan", path.to_str().unwrap()]).output().unwrap();
    let digest = |output: &std::process::Output| {
        String::from_utf8_lossy(&output.stdout).lines().find_map(|l| l.strip_prefix("digest ").map(str::to_string))
    };
    assert!(digest(&from_seed).is_some(), "{}", String::from_utf8_lossy(&from_seed.stderr));
    assert_eq!(digest(&from_seed), digest(&from_plan));
    let _ = std::fs::remove_file(path);
}
