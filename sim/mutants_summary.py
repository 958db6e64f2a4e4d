#!/usr/bin/env python3
"""Summarises a cargo-mutants run of sim/mutants.sh (issue 13).

    python3 sim/mutants_summary.py OUT...          prints summary.md for one or more runs
                                                   (the shards of a nightly run merge here)
    python3 sim/mutants_summary.py --check OUT...  exits 1 when fewer than 90% of the
                                                   non-equivalent viable mutants were caught,
                                                   or sim/mutants-equivalent.md names a
                                                   mutant the code no longer has

A mutant counts as caught when the sweep failed on it or it timed out (a mutant that hangs
the simulation is seen, just not by a check). Mutants listed in sim/mutants-equivalent.md
cannot change what the store does; they are left out of the ratio but still shown.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT = ROOT / "sim" / "mutants-equivalent.md"
GOAL = 0.90
ENTRY = re.compile(r"^- `([^`]+)`: (.+)$")
LINE_COL = re.compile(r"^([^:]+):\d+:\d+: ")


def unplaced(name):
    """The name without its line and column, which move whenever code above it changes."""
    return LINE_COL.sub(r"\1: ", name)


def reviewed_as(names, reviewed):
    """Which of `names` the reviewed list covers: by name without line and column where
    that is unique among `names`, else only by the exact name."""
    counts = {}
    for name in names:
        counts[unplaced(name)] = counts.get(unplaced(name), 0) + 1
    by_place = {unplaced(e): e for e in reviewed}
    covered = {}
    for name in names:
        if name in reviewed:
            covered[name] = name
        elif counts[unplaced(name)] == 1 and unplaced(name) in by_place:
            covered[name] = by_place[unplaced(name)]
    return covered


def equivalents():
    """The reviewed list: `- `name`: reason` lines, name as `cargo mutants --list` prints it."""
    found = {}
    for line in EQUIVALENT.read_text().splitlines():
        match = ENTRY.match(line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def outcomes(out_dirs):
    """(name, outcome, diff text) of every mutant the runs tested, and every mutant name
    the runs generated."""
    rows = []
    generated = []
    for out in out_dirs:
        base = Path(out) / "mutants.out"
        generated += [m["name"] for m in json.loads((base / "mutants.json").read_text())]
        data = json.loads((base / "outcomes.json").read_text())
        for outcome in data["outcomes"]:
            scenario = outcome["scenario"]
            if scenario == "Baseline":
                if outcome["summary"] != "Success":
                    sys.exit(f"{out}: the baseline failed; see {base / outcome['log_path']}")
                continue
            mutant = scenario["Mutant"]
            diff = (base / outcome["diff_path"]).read_text() if outcome.get("diff_path") else mutant.get("diff", "")
            rows.append((mutant["name"], outcome["summary"], diff))
    return rows, generated


def summarise(rows, covered):
    counts = {"CaughtMutant": 0, "MissedMutant": 0, "Timeout": 0, "Unviable": 0}
    for _, summary, _ in rows:
        counts[summary] = counts.get(summary, 0) + 1
    missed = [r for r in rows if r[1] == "MissedMutant"]
    equivalent = [r for r in missed if r[0] in covered]
    real_missed = [r for r in missed if r[0] not in covered]
    detected = counts["CaughtMutant"] + counts["Timeout"]
    judged = detected + len(real_missed)
    ratio = detected / judged if judged else 1.0
    return counts, equivalent, real_missed, detected, judged, ratio


def main(argv):
    check = "--check" in argv
    dirs = [a for a in argv if a != "--check"]
    if not dirs:
        sys.exit(__doc__)
    reviewed = equivalents()
    rows, generated = outcomes(dirs)
    covered = reviewed_as(generated, reviewed)
    counts, equivalent, real_missed, detected, judged, ratio = summarise(rows, covered)
    if check:
        listed = subprocess.run(
            ["cargo", "mutants", "--list"], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.splitlines()
        stale = sorted(set(reviewed) - set(reviewed_as(listed, reviewed).values()))
        for name in stale:
            print(f"sim/mutants-equivalent.md names a mutant the code no longer has: {name}")
        if ratio < GOAL:
            print(f"the sweep caught {ratio:.1%} of the non-equivalent viable mutants; the goal is {GOAL:.0%}")
        sys.exit(1 if stale or ratio < GOAL else 0)

    print("# Mutation testing: the sweep alone against mutants of the store's decisions\n")
    print("| mutants | count |")
    print("|---|---|")
    print(f"| tested | {len(rows)} |")
    print(f"| unviable (do not build) | {counts['Unviable']} |")
    print(f"| caught by the sweep | {counts['CaughtMutant']} |")
    print(f"| timed out (the simulation hung) | {counts['Timeout']} |")
    print(f"| missed, equivalent (sim/mutants-equivalent.md) | {len(equivalent)} |")
    print(f"| **missed** | **{len(real_missed)}** |")
    print(f"\n**{ratio:.1%}** of the {judged} non-equivalent viable mutants caught (goal {GOAL:.0%}).\n")
    if real_missed:
        print("## Missed\n")
        for name, _, diff in real_missed:
            print(f"### `{name}`\n\n```diff\n{diff.rstrip()}\n```\n")
    if equivalent:
        print("## Missed, and equivalent\n")
        for name, _, _ in equivalent:
            print(f"- `{name}`: {reviewed[covered[name]]}")


if __name__ == "__main__":
    main(sys.argv[1:])
