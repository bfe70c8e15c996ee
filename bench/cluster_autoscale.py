#!/usr/bin/env python3
"""Serving that autoscales across nodes (issue 11): how soon a backlog adds a replica on
another node, how soon light load removes it, and what clients saw meanwhile.

Starts Debian's etcd and three `rml node`s on loopback — `data` (role=data: training, and
the placement controller) and `e1`, `e2` (role=serving) — and deploys
tests/data/cluster-autoscale-topology.yaml (serving replicas {min: 1, max: 2}, scaling
{up_after: 2, down_after: 3}, latency objective 1 ms). Once a model is served — while the
trainer on `data` goes on training, as online learning does, unless --after-training — it offers
predictions at data's HTTP port (forwarded over BASP to serving), `--rate` requests/s of
`--rows` rows each, for `--duration` s, then `--light-rate` for `--light-duration` s, and
records from the data node's log and the nodes' logs:

  decided_up_s     load start → the controller's "scales serving from 1 to 2"
  serving_up_s     load start → the second serving node runs serving
  decided_down_s   light load start → "scales serving from 2 to 1"
  and both loadgen runs: sent, answered, errors, p50/p99/max latency

Each repeat is a fresh cluster; the lease TTL is 2 s (a renewal, so a look, every ~0.7 s).

    python3 bench/cluster_autoscale.py --repeats 3
"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_serving import (free_ports, parse_loadgen, repeats_parser, rml, root, run_repeats, served_version, start_etcd, status, stop_all,  # noqa: E402
                             wait_for)

topology = os.path.join(root, "tests", "data", "cluster-autoscale-topology.yaml")


def loadgen(http_port, rate, rows, duration):
    return subprocess.Popen([rml, "loadgen", "--address", f"http://127.0.0.1:{http_port}", "--rate", str(rate), "--rows", str(rows),
                             "--binary", "--duration", str(duration), "--connections", "64", "--timeout-ms", "4000"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def one_run(args):
    work = tempfile.mkdtemp(prefix="rml-cluster-autoscale-")
    client, peer, *http_ports = free_ports(5)
    etcd = f"http://127.0.0.1:{client}"
    http = dict(zip(("data", "e1", "e2"), http_ports))
    processes = []

    def log(name):
        return open(os.path.join(work, f"{name}.log")).read()

    def serving_nodes():
        return sum("runs serving of topology autoscaled-serving" in log(name) for name in ("e1", "e2"))

    try:
        processes.append(start_etcd(work, client, peer))
        for name, labels in [("data", "role=data"), ("e1", "role=serving"), ("e2", "role=serving")]:
            out = open(os.path.join(work, f"{name}.log"), "w")
            processes.append(subprocess.Popen(
                [rml, "node", "--name", name, "--etcd", etcd, "--labels", labels, "--cores", "8", "--lease-ttl", "2",
                 "--data-dir", os.path.join(work, name), "--http-port", str(http[name])], stdout=out, stderr=out))
            if name == "data":  # the first node leads the placement
                wait_for(lambda: "is the placement controller" in log("data"), 10)
        if not wait_for(lambda: "nodes: 3" in status(etcd), 10):
            raise RuntimeError("the nodes did not join")
        subprocess.run([rml, "deploy", topology, "--etcd", etcd], check=True, capture_output=True)
        if not wait_for(lambda: served_version(http["data"]) >= 1, 120, 0.2):
            raise RuntimeError("serving never got a model")
        # By default the load starts while the trainer still trains (online learning: the two
        # share the machine); --after-training waits until the version has not moved for 3 s.
        last, since = served_version(http["data"]), time.monotonic()
        while args.after_training and time.monotonic() - since < 3:
            time.sleep(0.5)
            now = served_version(http["data"])
            if now != last:
                last, since = now, time.monotonic()
        if serving_nodes() != 1:
            raise RuntimeError("serving did not start on exactly one node")

        result = {"rate": args.rate, "rows": args.rows, "served_version": last, "after_training": args.after_training}
        started = time.monotonic()
        heavy = loadgen(http["data"], args.rate, args.rows, args.duration)
        decided = wait_for(lambda: "scales serving from 1 to 2" in log("data"), args.duration, 0.02)
        result["decided_up_s"] = time.monotonic() - started if decided else None
        up = wait_for(lambda: serving_nodes() == 2, args.duration, 0.02)
        result["serving_up_s"] = time.monotonic() - started if up else None
        result["heavy"] = parse_loadgen(heavy.communicate()[0])
        result["scaled_down_under_load"] = "scales serving from 2 to 1" in log("data")

        started = time.monotonic()
        light = loadgen(http["data"], args.light_rate, args.rows, args.light_duration)
        down = wait_for(lambda: "scales serving from 2 to 1" in log("data"), args.light_duration + 10, 0.02)
        result["decided_down_s"] = time.monotonic() - started if down else None
        result["light"] = parse_loadgen(light.communicate()[0])
        result["decisions"] = re.findall(r"rml node data: (scales serving .*)", log("data"))
        return result
    finally:
        stop_all(processes, work)


def main():
    parser = repeats_parser()
    parser.add_argument("--rate", type=int, default=1500, help="requests/s of the heavy phase")
    parser.add_argument("--rows", type=int, default=8, help="rows per request")
    parser.add_argument("--duration", type=float, default=14)
    parser.add_argument("--light-rate", type=int, default=100)
    parser.add_argument("--light-duration", type=float, default=12)
    parser.add_argument("--after-training", action="store_true", help="start the load once training is over")
    args = parser.parse_args()
    runs = run_repeats(args, one_run)

    def median(key):
        values = [run[key] for run in runs if run[key] is not None]
        return round(statistics.median(values), 2) if values else None

    print(f"decided up after {median('decided_up_s')} s, second node serving after {median('serving_up_s')} s, "
          f"down after {median('decided_down_s')} s of light load (medians of {len(runs)})", file=sys.stderr)
    for run in runs:
        print(f"  heavy: {run['heavy']['answered']}/{run['heavy']['sent']} answered, {run['heavy']['errors']} errors, "
              f"p99 {run['heavy']['p99_us']} µs, max {run['heavy']['max_us']} µs; light: {run['light']['answered']}/"
              f"{run['light']['sent']}, {run['light']['errors']} errors", file=sys.stderr)


if __name__ == "__main__":
    main()
