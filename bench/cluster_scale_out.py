#!/usr/bin/env python3
"""Serving scale-out across node processes (issue 11): answers/s with 1, 2, 3 serving nodes.

Starts Debian's etcd, a `data` node (training, the registry) and `--nodes` serving nodes on
loopback, deploys tests/data/cluster-serve-topology.yaml with serving replicas set to that
count (one per node), waits until training is over, then offers `--rate` requests/s at the
prediction socket of 1, then 2, ... serving nodes at once (one `rml loadgen` each, open
loop, ZeroMQ) and adds up the answers/s. Every process shares this machine's cores: what
limits the sum here is the cores, and the bench says how busy they were.

    python3 bench/cluster_scale_out.py --repeats 3 --nodes 3
"""
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_serving import (free_ports, loadgen, parse_loadgen, repeats_parser, rml, root, run_repeats, served_version, start_etcd,  # noqa: E402
                             start_node, status, stop_all, wait_for)

import subprocess  # noqa: E402


def busy_jiffies():
    """(busy, total) jiffies of all cores, from /proc/stat."""
    fields = [int(value) for value in open("/proc/stat").readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def one_run(args):
    work = tempfile.mkdtemp(prefix="rml-cluster-scale-out-")
    names = ["data"] + [f"e{index}" for index in range(1, args.nodes + 1)]
    client, peer, *ports = free_ports(2 + 2 * len(names))
    http = dict(zip(names, ports[:len(names)]))
    predict = dict(zip(names, ports[len(names):]))
    etcd = f"http://127.0.0.1:{client}"
    processes = []
    try:
        processes.append(start_etcd(work, client, peer))
        for name in names:
            processes.append(start_node(work, etcd, name, "role=data" if name == "data" else "role=serving", 3, http[name], predict[name]))
            if name == "data":  # the first node leads the placement
                wait_for(lambda: "is the placement controller" in open(os.path.join(work, "data.log")).read(), 10)
        if not wait_for(lambda: f"nodes: {len(names)}" in status(etcd), 15):
            raise RuntimeError("the nodes did not join")
        text = open(os.path.join(root, "tests", "data", "cluster-serve-topology.yaml")).read()
        topology = os.path.join(work, "topology.yaml")
        with open(topology, "w") as out:
            out.write(text.replace("replicas: {min: 2, max: 2}", f"replicas: {{min: {args.nodes}, max: {args.nodes}}}"))
        subprocess.run([rml, "deploy", topology, "--etcd", etcd], check=True, capture_output=True)
        serving = names[1:]
        if not wait_for(lambda: all(served_version(http[name]) >= 1 for name in serving), 120, 0.2):
            raise RuntimeError("serving never got a model on every node")
        last, since = served_version(http["e1"]), time.monotonic()
        while time.monotonic() - since < 3:  # training over: the version still for 3 s
            time.sleep(0.5)
            now = served_version(http["e1"])
            if now != last:
                last, since = now, time.monotonic()
        for name in serving:  # warm-up
            parse_loadgen(loadgen(predict[name], 1000, 1).communicate()[0])
        result = {"nodes": args.nodes, "rate_per_node": args.rate}
        for count in range(1, args.nodes + 1):
            cpu_before, machine_before = os.times(), busy_jiffies()
            started = time.monotonic()
            running = [loadgen(predict[name], args.rate, args.duration) for name in serving[:count]]
            outputs = [parse_loadgen(process.communicate()[0]) for process in running]
            wall = time.monotonic() - started
            cpu_after, machine_after = os.times(), busy_jiffies()
            children = (cpu_after.children_user - cpu_before.children_user) + (cpu_after.children_system - cpu_before.children_system)
            result[f"serving_nodes_{count}"] = {
                "answers_per_s": sum(each["answers_per_s"] for each in outputs),
                "errors": sum(each["errors"] for each in outputs),
                "p50_us": max(each["p50_us"] for each in outputs), "p99_us": max(each["p99_us"] for each in outputs),
                "loadgen_cores": round(children / wall, 2),
                "machine_busy": round((machine_after[0] - machine_before[0]) / max(1, machine_after[1] - machine_before[1]), 3)}
        return result
    finally:
        stop_all(processes, work)


def main():
    parser = repeats_parser()
    parser.add_argument("--nodes", type=int, default=3, help="serving nodes")
    parser.add_argument("--rate", type=int, default=30000, help="requests/s offered at each serving node")
    parser.add_argument("--duration", type=float, default=5)
    args = parser.parse_args()
    runs = run_repeats(args, one_run)
    for count in range(1, args.nodes + 1):
        key = f"serving_nodes_{count}"
        print(f"{count} serving node(s): {statistics.median(r[key]['answers_per_s'] for r in runs)} answers/s "
              f"(median of {len(runs)}), errors {[r[key]['errors'] for r in runs]}, worst p99 µs {[r[key]['p99_us'] for r in runs]}, "
              f"load generators' cores {[r[key]['loadgen_cores'] for r in runs]}, machine busy {[r[key]['machine_busy'] for r in runs]}",
              file=sys.stderr)


if __name__ == "__main__":
    main()
