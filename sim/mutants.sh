#!/usr/bin/env bash
# Mutation testing of the store's decisions, judged by the simulation sweep alone (issue 13).
#
# Mutates the code that decides money, stock, slots and idempotency (the files listed in
# .cargo/mutants.toml) with cargo-mutants from crates.io, builds each mutant in the release-like
# `mutants` profile, and runs sim/tests/mutant_sweep.rs against it: SIM_MUTANT_SEEDS seeds
# (default 10) of every scenario and the further seeds its MORE_SEEDS names, stopping at the
# first failing run. No unit test takes part.
#
#   sim/mutants.sh                      every mutant (371 today; hours on two cores)
#   sim/mutants.sh --shard 0/8          one eighth of them (round-robin), as the nightly job does
#   sim/mutants.sh -F 'in withdraw'     only mutants whose name matches
#
# Writes reports/mutants/ (or $MUTANTS_OUT): cargo-mutants' mutants.out/ (caught.txt,
# missed.txt, timeout.txt, unviable.txt, outcomes.json, one diff per mutant under diff/) and
# summary.md (the figures, and each missed mutant with its diff). Exits non-zero when the
# baseline fails or fewer than 90% of the viable mutants are caught.
set -euo pipefail
cd "$(dirname "$0")/.."
unset RUSTFLAGS # would replace .cargo/config.toml's --cfg tokio_unstable

version=27.1.0
if ! cargo mutants --version 2>/dev/null | grep -q "$version"; then
  echo "== installing cargo-mutants $version (crates.io)"
  cargo install --locked --quiet "cargo-mutants@$version"
fi

out=${MUTANTS_OUT:-reports/mutants}
mkdir -p "$out"
export SIM_MUTANT_SEEDS=${SIM_MUTANT_SEEDS:-10}
# One target directory for the baseline and every mutant, so that each mutant rebuilds only
# what it changed (cargo-mutants builds in a scratch copy of the tree).
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}

# The baseline by hand: cargo-mutants 27 runs its own baseline on the mutated packages' tests,
# not on --test-package, so it is skipped below and the timeout is set from this one.
judge=(--profile mutants -p sim --test mutant_sweep)
# Cargo names a workspace crate's artifacts by its path relative to the workspace, so a mutant
# built in cargo-mutants' scratch copy leaves an artifact the unmutated tree would take as up
# to date (its sources are older). Touch them, so the baseline builds the code it judges.
find services sim -name '*.rs' -exec touch {} +
echo "== baseline: the judge ($SIM_MUTANT_SEEDS seeds of every scenario) on the unmutated tree"
cargo test "${judge[@]}" --no-run
start=$(date +%s)
cargo test "${judge[@]}" -- --ignored
took=$(($(date +%s) - start))
# Four times the baseline, and never under 300 s: the baseline takes seconds now, and on a
# busy machine a mutant that passes every run can take longer than that, so a short timeout
# would count a miss as caught (cargo-mutants counts a timeout as caught).
timeout=$((4 * took + 60))
if [ "$timeout" -lt 300 ]; then timeout=300; fi
echo "== the baseline passed in ${took}s; a mutant's sweep times out after ${timeout}s"

status=0
cargo mutants --no-shuffle --colors never --baseline skip \
  --timeout "$timeout" --build-timeout 1800 --output "$out" "$@" || status=$?
python3 sim/mutants_summary.py "$out" | tee "$out/summary.md"
# cargo-mutants: 0 all caught, 2 some missed, 3 some timed out.
case $status in
  0 | 2 | 3) python3 sim/mutants_summary.py --check "$out" ;;
  *) echo "cargo mutants exited $status" >&2; exit "$status" ;;
esac
