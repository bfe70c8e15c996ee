"""What one prediction costs the serving process (issue 10): at a fixed offered rate, for
ZeroMQ and HTTP (binary V2), the rml process's context switches (voluntary: a thread went to
sleep and was woken; involuntary: preempted) and CPU time per answered request, read from
/proc/PID/task/*/status and /proc/PID/stat before and after the load, beside the latency the
load generator saw.

    python3 bench/serving_costs.py [--model mlp] [--rates 0,1000,20000] [--duration 5] [--repeats 3]

Rate 0 measures the idle process: its costs are per second, not per request.

    python3 bench/serving_costs.py --allocations [--rates 1000,20000] ...

`--rml-args "--policy canary:10"` passes options to `rml run` (what a policy that decides per
request costs against `latest`, which passes each burst on whole).

counts heap allocations per request instead: jemalloc (rml's allocator) prints its statistics
when rml exits (MALLOC_CONF=stats_print:true); each measurement is one rml process that is
warmed up and then loaded at the rate, against one warmed up and then left idle as long, and
the difference in allocation requests is divided by the requests answered.

Prints one JSON line per measurement, then a table of medians. The load generator runs on the
same 2 cores; its own switches are not counted."""
import argparse
import json
import os
import re
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


def allocation_requests(output_path):
    """jemalloc's count of allocation requests (all arenas, small and large) at exit."""
    text = open(output_path, errors="replace").read()
    found = re.search(r"^total:\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+(\d+)", text, re.MULTILINE)
    if not found:
        raise RuntimeError(f"no jemalloc statistics in {output_path}: is rml linked with jemalloc?")
    return int(found.group(1))


def allocations_per_request(model, address, rate, duration, extra):
    counts, answered = [], 0
    for loaded in (False, True):
        os.environ["MALLOC_CONF"] = "stats_print:true"
        try:
            server = rml_server(model, extra)
        finally:
            del os.environ["MALLOC_CONF"]
        try:
            loadgen(address, model, 2000, 2, True)  # warm-up: connections, caches, arenas
            if loaded:
                answered = loadgen(address, model, rate, duration, True)["answered"]
            else:
                time.sleep(duration)
        finally:
            server.stop()
        counts.append(allocation_requests(server.output.name))
    return {"rate": rate, "answered": answered, "allocations_idle": counts[0], "allocations_loaded": counts[1],
            "allocations_per_request": (counts[1] - counts[0]) / max(answered, 1)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--rates", default="0,1000,20000")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--transports", default="zmq,http")
    parser.add_argument("--label", default="", help="names this build in the output (before, after)")
    parser.add_argument("--allocations", action="store_true", help="count heap allocations per request (see above)")
    parser.add_argument("--rml-args", default="", help="options for `rml run`, as one string")
    args = parser.parse_args()
    extra = args.rml_args.split()
    addresses = {"zmq": "tcp://127.0.0.1:19556", "http": "http://127.0.0.1:19800"}
    records = []
    if args.allocations:
        for transport in args.transports.split(","):
            for rate in [int(r) for r in args.rates.split(",") if int(r) > 0]:
                for repeat in range(args.repeats):
                    record = {"label": args.label, "transport": transport, "model": args.model, "repeat": repeat,
                              **allocations_per_request(args.model, addresses[transport], rate, args.duration, extra)}
                    log(f"{transport} {rate}/s: {record['allocations_per_request']:.1f} allocations per request")
                    print(json.dumps(record), flush=True)
                    records.append(record)
        print(f"\n| {args.label} {args.model} | rate | allocations per request (median of {args.repeats}) |")
        print("|---|---|---|")
        for transport in args.transports.split(","):
            for rate in [int(r) for r in args.rates.split(",") if int(r) > 0]:
                rows = [r["allocations_per_request"] for r in records if r["transport"] == transport and r["rate"] == rate]
                print(f"| {transport} | {rate} | {statistics.median(rows):.1f} |")
        return
    server = rml_server(args.model, extra)
    try:
        for transport in args.transports.split(","):
            loadgen(addresses[transport], args.model, 2000, 2, True)  # warm-up
            for rate in [int(r) for r in args.rates.split(",")]:
                for repeat in range(args.repeats):
                    record = {"label": args.label, "transport": transport, "model": args.model, "repeat": repeat,
                              "rml_args": args.rml_args, **measure(server.process.pid, addresses[transport], args.model, rate, args.duration)}
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
