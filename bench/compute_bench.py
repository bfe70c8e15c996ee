#!/usr/bin/env python3
"""Runs the compute/ benchmark for rml and PyTorch side by side and prints a table.

    python3 bench/compute_bench.py [--repeats 3] [--threads 2] [--quick]

Each workload runs `--repeats` times per system, alternating rml and PyTorch so that both see
the same machine noise; the table shows medians and the ratio rml / PyTorch (for latency,
PyTorch / rml inverted to "rml's share of PyTorch's time"). Needs a built
build/bench/rml_compute_bench and a Python with torch (bench/run_compute_bench.sh sets one up).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

WORKLOADS = [
    ("train", "mlp"), ("train", "lenet"), ("online", "mlp"),
    ("latency", "mlp"), ("latency", "lenet"), ("throughput", "mlp"), ("throughput", "lenet"),
]


def run(command):
    env = dict(os.environ)
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"benchmark command failed: {' '.join(command)}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build/bench/rml_compute_bench"))
    parser.add_argument("--quick", action="store_true", help="online and latency on 5000 samples")
    parser.add_argument("--only", default="", help="comma-separated workload:model filter")
    o = parser.parse_args()
    samples = ["--samples", "5000"] if o.quick else []
    wanted = [w for w in WORKLOADS if not o.only or f"{w[0]}:{w[1]}" in o.only.split(",")]
    rows = []
    for workload, model in wanted:
        common = ["--workload", workload, "--model", model, "--threads", str(o.threads), "--seed", str(o.seed)] + samples
        results = {"rml": [], "pytorch": []}
        for repeat in range(o.repeats):
            print(f"# {workload} {model}: repeat {repeat + 1}/{o.repeats}", file=sys.stderr, flush=True)
            results["rml"].append(run([o.binary] + common))
            results["pytorch"].append(run([sys.executable, os.path.join(HERE, "torch_peer.py")] + common))
        rows.append((workload, model, results))
        for system, runs in results.items():
            for r in runs:
                print(json.dumps(r), file=sys.stderr)

    print(f"\n| workload | model | metric | rml (median) | PyTorch (median) | ratio |")
    print("|---|---|---|---|---|---|")
    for workload, model, results in rows:
        med = lambda system, key: statistics.median(r[key] for r in results[system])
        if workload in ("train", "online", "throughput"):
            a, b = med("rml", "samples_per_s"), med("pytorch", "samples_per_s")
            print(f"| {workload} | {model} | samples/s | {a:,.0f} | {b:,.0f} | {a / b:.2f}× |")
        if workload in ("train", "online"):
            a, b = med("rml", "test_accuracy"), med("pytorch", "test_accuracy")
            print(f"| {workload} | {model} | test accuracy | {a:.4f} | {b:.4f} | {100 * (a - b):+.2f} pt |")
        if workload == "online":
            a, b = med("rml", "progressive_accuracy"), med("pytorch", "progressive_accuracy")
            print(f"| {workload} | {model} | progressive accuracy | {a:.4f} | {b:.4f} | {100 * (a - b):+.2f} pt |")
        if workload == "latency":
            for key in ("p50_us", "p99_us"):
                a, b = med("rml", key), med("pytorch", key)
                variant = statistics.mode(r["variant"] for r in results["pytorch"])
                print(f"| latency | {model} | batch-1 {key[:3]} µs | {a:.1f} | {b:.1f} ({variant}) | {a / b:.2f}× time |")
    print(f"\nthreads {o.threads}, repeats {o.repeats}, seed {o.seed}, {time.strftime('%Y-%m-%d')}, "
          f"nproc {os.cpu_count()}")


if __name__ == "__main__":
    main()
