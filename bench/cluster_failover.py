#!/usr/bin/env python3
"""How long the cluster takes to notice a lost node and place its work elsewhere.

Starts Debian's etcd and four `rml node`s on loopback (one role=data, three role=serving),
deploys tests/data/cluster-topology.yaml (two serving replicas, anti-affinity), kills the
node holding serving/0 with SIGKILL and polls `rml status` until serving/0 is placed on
another node. Reports, per repeat, the time from the SIGKILL to the member key gone (etcd's
lease expiry: detection) and to the new placement (detection + the controller's next pass).

This is placement failover only (etcd's detection and the controller's reaction); serving
under load across a node's loss is measured by bench/cluster_serving.py.

    python3 bench/cluster_failover.py --repeats 5 --lease-ttl 3
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rml = os.path.join(root, "build", "apps", "rml", "rml")
topology = os.path.join(root, "tests", "data", "cluster-topology.yaml")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status(etcd):
    return subprocess.run([rml, "status", "--etcd", etcd], capture_output=True, text=True).stdout


def wait_for(predicate, timeout):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def one_run(lease_ttl):
    work = tempfile.mkdtemp(prefix="rml-failover-")
    client, peer = free_port(), free_port()
    etcd = f"http://127.0.0.1:{client}"
    processes = []
    try:
        processes.append(subprocess.Popen(
            ["/usr/bin/etcd", "--name=bench", f"--data-dir={work}/etcd", f"--listen-client-urls={etcd}",
             f"--advertise-client-urls={etcd}", f"--listen-peer-urls=http://127.0.0.1:{peer}",
             f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}", f"--initial-cluster=bench=http://127.0.0.1:{peer}",
             "--logger=zap", f"--log-outputs={work}/etcd.log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if not wait_for(lambda: "nodes:" in status(etcd), 20):
            raise RuntimeError("etcd did not come up")
        nodes = {}
        for name, labels, cores in [("data", "role=data", 8), ("s1", "role=serving", 2), ("s2", "role=serving", 2),
                                    ("s3", "role=serving", 2)]:
            log = open(os.path.join(work, f"{name}.log"), "w")
            nodes[name] = subprocess.Popen([rml, "node", "--name", name, "--etcd", etcd, "--labels", labels, "--cores", str(cores),
                                            "--lease-ttl", str(lease_ttl)], stdout=log, stderr=log)
            processes.append(nodes[name])
            if name == "data":  # the first node leads: its controller is not the one killed
                wait_for(lambda: "is the placement controller" in open(os.path.join(work, "data.log")).read(), 10)
        if not wait_for(lambda: "nodes: 4" in status(etcd), 10):
            raise RuntimeError("the nodes did not join")
        subprocess.run([rml, "deploy", topology, "--etcd", etcd], check=True, capture_output=True)
        holder = []

        def placed():
            found = re.search(r"─ (\S+): (?:\S+ )*serving/0\b", status(etcd))
            if found:
                holder[:] = [found.group(1)]
            return bool(found)

        if not wait_for(placed, 10):
            raise RuntimeError("serving/0 was not placed")
        victim = holder[0]
        killed_at = time.monotonic()
        nodes[victim].send_signal(signal.SIGKILL)
        detected = moved = None
        while time.monotonic() - killed_at < 30:
            text = status(etcd)
            now = time.monotonic() - killed_at
            if detected is None and f"─ {victim}  " not in text:
                detected = now
            found = re.search(r"─ (\S+): (?:\S+ )*serving/0\b", text)
            if found and found.group(1) != victim:
                moved = now
                break
            time.sleep(0.01)
        return {"lease_ttl_s": lease_ttl, "detected_s": detected, "placed_elsewhere_s": moved, "victim": victim}
    finally:
        for process in reversed(processes):
            process.kill()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--lease-ttl", type=float, default=3)
    args = parser.parse_args()
    runs = []
    for repeat in range(args.repeats):
        result = one_run(args.lease_ttl)
        result["repeat"] = repeat
        print(json.dumps(result), flush=True)
        runs.append(result)
    moved = [r["placed_elsewhere_s"] for r in runs if r["placed_elsewhere_s"] is not None]
    detected = [r["detected_s"] for r in runs if r["detected_s"] is not None]
    print(f"lease TTL {args.lease_ttl} s: SIGKILL → member gone, median {statistics.median(detected):.2f} s "
          f"(min {min(detected):.2f}, max {max(detected):.2f}); → serving/0 placed elsewhere, median "
          f"{statistics.median(moved):.2f} s (min {min(moved):.2f}, max {max(moved):.2f}); {len(moved)} of {len(runs)} runs",
          file=sys.stderr)


if __name__ == "__main__":
    main()
