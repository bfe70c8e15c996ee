#!/usr/bin/env python3
"""What input-drift monitoring costs serving (issue 15; goal: at most 5 % of throughput).

For mlp over ZeroMQ, the highest rate answered in full with p99 <= 5 ms (bench/serving_bench.py's
search, rml's load generator on the same cores), with `rml run --serve`:
  off      --drift-sample-every 0  (no request rows sampled; labelled outcomes still watched)
  default  --drift-sample-every 16 (one request in 16 has its first row sent to monitoring)
  every    --drift-sample-every 1  (every request: the worst case)
Settings are interleaved within each repeat, so that the machine's drift over time falls on
all of them alike. Prints one JSON line per measurement and a summary (medians, ratios to off).

The highest rate moves by ±30 % between runs on these shared machines, more than the cost
looked for; `--fixed-rate R` measures instead what a user pays at a rate the machine keeps:
the CPU time rml's process spends (user + system, from /proc) per request answered over
`--duration` seconds at R requests/s — less noisy, and the cost in the unit that limits
throughput on a saturated machine.

    python3 bench/drift_cost.py --repeats 3 [--json bench/results/drift-cost-DATE.jsonl]
    python3 bench/drift_cost.py --fixed-rate 20000 --duration 10 --repeats 5
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serving_bench  # noqa: E402  (the server wrapper and the rate search)

settings = {"off": "0", "default": "16", "every": "1"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--objective-us", type=int, default=5000)
    parser.add_argument("--start", type=float, default=8000, help="the rate the search starts from")
    parser.add_argument("--fixed-rate", type=float, help="measure CPU time per request at this rate instead of the highest rate")
    parser.add_argument("--json", help="append the results as JSON lines to this file")
    args = parser.parse_args()
    if args.fixed_rate:
        return fixed_rate(args)
    results = []
    for repeat in range(args.repeats):
        for name, every in settings.items():
            server = serving_bench.rml_server("mlp", ["--drift-sample-every", every])
            try:
                found = serving_bench.max_rate("tcp://127.0.0.1:19556", "mlp", args.objective_us, args.duration, args.start)
            finally:
                server.stop()
            record = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "setting": name, "drift_sample_every": int(every), "repeat": repeat,
                      **(found or {"max_rate": 0})}
            print(json.dumps(record), flush=True)
            results.append(record)
    summarize(results, args.json, "max_rate", "max rate (median)")


def summarize(results, json_path, key, title):
    """Appends the records to json_path (when given) and prints each setting's median of
    `key` and its ratio to off."""
    if json_path:
        with open(json_path, "a") as out:
            for record in results:
                out.write(json.dumps(record) + "\n")
    medians = {name: statistics.median(r[key] for r in results if r["setting"] == name) for name in settings}
    print(f"{'setting':<9}{'sample every':>13}{title:>25}{'vs off':>8}")
    for name, every in settings.items():
        print(f"{name:<9}{every:>13}{medians[name]:>25.2f}{medians[name] / medians['off']:>8.3f}")


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def fixed_rate(args):
    results = []
    for repeat in range(args.repeats):
        for name, every in settings.items():
            server = serving_bench.rml_server("mlp", ["--drift-sample-every", every])
            try:
                serving_bench.loadgen("tcp://127.0.0.1:19556", "mlp", args.fixed_rate / 2, 2, True)  # warm-up
                before = cpu_seconds(server.process.pid)
                measured = serving_bench.loadgen("tcp://127.0.0.1:19556", "mlp", args.fixed_rate, args.duration, True)
                spent = cpu_seconds(server.process.pid) - before
            finally:
                server.stop()
            record = {"date": time.strftime("%Y-%m-%dT%H:%M:%S"), "setting": name, "drift_sample_every": int(every), "repeat": repeat,
                      "rate": args.fixed_rate, "answered": measured["answered"], "errors": measured["errors"], "p99_us": measured["p99_us"],
                      "cpu_us_per_request": spent * 1e6 / max(1, measured["answered"])}
            print(json.dumps(record), flush=True)
            results.append(record)
    summarize(results, args.json, "cpu_us_per_request", "CPU µs/request (median)")


if __name__ == "__main__":
    main()
