"""What one prediction costs the serving process (issue 10): at a fixed offered rate, for
ZeroMQ and HTTP (binary V2), the rml process's context switches (voluntary: a thread went to
sleep and was woken; involuntary: preempted) and CPU time per answered request, read from
/proc/PID/task/*/status and /proc/PID/stat before and after the load, beside the latency the
load generator saw.

    python3 bench/serving_costs.py [--model mlp] [--rates 0,1000,20000] [--duration 5] [--repeats 3]

Rate 0 measures the idle process: its costs are per second, not per request.

Prints one JSON line per measurement, then a table of medians. The load generator runs on the
same 2 cores; its own switches are not counted."""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serving_bench import loadgen, log, rml_server  # noqa: E402


def switches(pid):
    voluntary = involuntary = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as status:
                for line in status:
                    if line.startswith("voluntary_ctxt_switches"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        involuntary += int(line.split()[1])
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return voluntary, involuntary


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(pid, address, model, rate, duration):
    """Rate 0: idle, and the costs are per second instead of per request."""
    before_switches, before_cpu = switches(pid), cpu_seconds(pid)
    if rate == 0:
        time.sleep(duration)
        result = {"rate": 0, "sent": 0, "answered": 0, "errors": 0, "p50_us": 0, "p99_us": 0, "throughput": 0}
    else:
        result = loadgen(address, model, rate, duration, True)
    after_switches, after_cpu = switches(pid), cpu_seconds(pid)
    answered = max(result["answered"], 1) if rate else duration
    return {**result, "voluntary_per_request": (after_switches[0] - before_switches[0]) / answered,
            "involuntary_per_request": (after_switches[1] - before_switches[1]) / answered,
            "cpu_us_per_request": (after_cpu - before_cpu) * 1e6 / answered}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--rates", default="0,1000,20000")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--transports", default="zmq,http")
    parser.add_argument("--label", default="", help="names this build in the output (before, after)")
    args = parser.parse_args()
    addresses = {"zmq": "tcp://127.0.0.1:19556", "http": "http://127.0.0.1:19800"}
    records = []
    server = rml_server(args.model, [])
    try:
        for transport in args.transports.split(","):
            loadgen(addresses[transport], args.model, 2000, 2, True)  # warm-up
            for rate in [int(r) for r in args.rates.split(",")]:
                for repeat in range(args.repeats):
                    record = {"label": args.label, "transport": transport, "model": args.model, "repeat": repeat,
                              **measure(server.process.pid, addresses[transport], args.model, rate, args.duration)}
                    log(f"{transport} {rate}/s: {record['voluntary_per_request']:.2f} wake-ups, "
                        f"{record['cpu_us_per_request']:.1f} µs CPU per request, p50 {record['p50_us']} p99 {record['p99_us']} µs")
                    print(json.dumps(record), flush=True)
                    records.append(record)
    finally:
        server.stop()
    print(f"\n| {args.label} {args.model} | rate | answered/sent | voluntary switches / req | involuntary / req | CPU µs / req | p50 µs | p99 µs |")
    print("|---|---|---|---|---|---|---|---|")
    for transport in args.transports.split(","):
        for rate in [int(r) for r in args.rates.split(",")]:
            rows = [r for r in records if r["transport"] == transport and r["rate"] == rate]
            median = lambda key: statistics.median(r[key] for r in rows)
            print(f"| {transport} | {rate} | {sum(r['answered'] for r in rows)}/{sum(r['sent'] for r in rows)} | "
                  f"{median('voluntary_per_request'):.2f} | {median('involuntary_per_request'):.2f} | "
                  f"{median('cpu_us_per_request'):.1f} | {median('p50_us'):.0f} | {median('p99_us'):.0f} |")


if __name__ == "__main__":
    main()
