#!/usr/bin/env python3
"""rml's drift detectors beside River's (PyPI `river`) on the same streams (issue 15).

Writes seeded streams of error bits (1 = the model was wrong) — stationary at 0.2, an abrupt
rise to 0.5 at 10 000, a gradual rise from 0.2 to 0.5 over 2 000 values from 10 000 — runs
build/bench/rml_drift_bench on the files and River's ADWIN, PageHinkley (mode "up") and
binary.DDM with their default parameters (the same defaults rml's detectors have), and
Page-Hinkley as rml's monitoring runs it (λ 100, α 1), on the same bits — plus a "learning"
stream (error 0.9 falling to 0.2 as a model learns, no change: every alarm is false) — and
prints per detector: median detection delay, misses, false alarms (detections before the
change, or anywhere on the stationary stream) per 100 000 values, and ns per update.

    pip install river
    python3 bench/drift_detectors_river.py --seeds 30 [--json bench/results/drift-DATE.jsonl]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from river import drift

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bench = os.path.join(root, "build", "bench", "rml_drift_bench")
length, change = 20_000, 10_000


def rates(kind):
    index = np.arange(length)
    if kind == "stationary":
        return np.full(length, 0.2)
    if kind == "abrupt":
        return np.where(index < change, 0.2, 0.5)
    if kind == "learning":  # a model learning: error 0.9 falling to 0.2, no change at all
        return 0.2 + 0.7 * np.exp(-index / 1000.0)
    return np.where(index < change, 0.2, 0.2 + 0.3 * np.minimum(1.0, (index - change) / 2000.0))


def river_fired(bits):
    makers = {
        "adwin": lambda: drift.ADWIN(),
        "page_hinkley": lambda: drift.PageHinkley(mode="up"),
        "page_hinkley_monitoring": lambda: drift.PageHinkley(mode="up", threshold=100, alpha=1.0),
        "ddm": lambda: drift.binary.DDM(),
    }
    out = {}
    for name, make in makers.items():
        detector = make()
        fired = []
        start = time.perf_counter()
        for index, bit in enumerate(bits):
            detector.update(int(bit))
            if detector.drift_detected:
                fired.append(index)
        out[name] = {"fired": fired, "ns_per_update": (time.perf_counter() - start) * 1e9 / len(bits)}
    return out


def summarize(runs, kind):
    """runs: list of {detector: {fired, ns_per_update}} → per detector summary."""
    summary = {}
    for name in runs[0]:
        delays, misses, false_alarms = [], 0, 0
        for run in runs:
            fired = run[name]["fired"]
            if kind in ("stationary", "learning"):
                false_alarms += len(fired)
                continue
            false_alarms += sum(1 for index in fired if index < change)
            after = [index for index in fired if index >= change]
            if after:
                delays.append(after[0] - change)
            else:
                misses += 1
        values = length if kind in ("stationary", "learning") else change
        summary[name] = {
            "median_delay": statistics.median(delays) if delays else None,
            "misses": misses,
            "false_alarms_per_100k": false_alarms * 100_000 / (values * len(runs)),
            "ns_per_update": statistics.median(run[name]["ns_per_update"] for run in runs),
        }
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--json", help="append the results as JSON lines to this file")
    args = parser.parse_args()
    if not os.path.exists(bench):
        sys.exit(f"{bench}: not built (cmake --build build --target rml_drift_bench)")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("stationary", "learning", "abrupt", "gradual"):
            files, river_runs = [], []
            for seed in range(1, args.seeds + 1):
                bits = (np.random.default_rng(seed).random(length) < rates(kind)).astype(np.uint8)
                path = os.path.join(folder, f"{kind}-{seed}.bin")
                bits.tofile(path)
                files.append(path)
                river_runs.append(river_fired(bits))
            output = subprocess.run([bench, "--streams", *files], check=True, capture_output=True, text=True).stdout
            rml_runs = [{name: value for name, value in json.loads(line).items() if name != "stream"} for line in output.splitlines()]
            for system, runs in (("rml", rml_runs), ("river", river_runs)):
                for name, summary in summarize(runs, kind).items():
                    results.append({"stream": kind, "system": system, "detector": name, "seeds": args.seeds, **summary})
    print(f"{'stream':<11}{'detector':<25}{'system':<7}{'median delay':>13}{'misses':>8}{'false/100k':>12}{'ns/update':>11}")
    for row in sorted(results, key=lambda row: (row["stream"], row["detector"], row["system"])):
        delay = "-" if row["median_delay"] is None else f"{row['median_delay']:.0f}"
        print(f"{row['stream']:<11}{row['detector']:<25}{row['system']:<7}{delay:>13}{row['misses']:>8}"
              f"{row['false_alarms_per_100k']:>12.1f}{row['ns_per_update']:>11.0f}")
    cost = json.loads(subprocess.run([bench, "--input-cost"], check=True, capture_output=True, text=True).stdout)
    print(f"input drift: {cost['input_drift_ns_per_row']} ns per request row of {cost['features']} features, "
          f"{cost['statistics_us']} µs per statistics pass")
    if args.json:
        with open(args.json, "a") as out:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
            for row in results:
                out.write(json.dumps({"date": stamp, **row}) + "\n")
            out.write(json.dumps({"date": stamp, **cost}) + "\n")


if __name__ == "__main__":
    main()
