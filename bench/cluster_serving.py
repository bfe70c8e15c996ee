#!/usr/bin/env python3
"""Serving across nodes (issue 11): cross-node latency, failover under load, scale-out.

Starts Debian's etcd and three `rml node`s on loopback — `data` (role=data: source, ingest,
feature, trainer, registry) and `e1`, `e2` (role=serving, one serving replica each) — deploys
tests/data/cluster-serve-topology.yaml, waits until training is over (the served version
stops moving), then measures with `rml loadgen` (open-loop, latency from the scheduled send):

  same node   predictions at e1's own prediction socket (serving in that process)
  cross node  predictions at data's socket: data runs no serving, its request ledger sends
              them over BASP to serving on e1 or e2 (the peer resolver's choice)
  failover    load at data's socket; the serving node data forwards to is killed with
              SIGKILL mid-run: requests sent, answered, failed, and the worst latency (the
              outage a client saw); then the time until its lease expired (etcd noticed)
  scale-out   the highest answer rate at one serving node, then at both at once (one loadgen
              each) — on a 2-core machine the processes share the same two cores

Each repeat is a fresh cluster (failover kills a node).

    python3 bench/cluster_serving.py --repeats 3 --rate 2000
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
import urllib.request

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rml = os.path.join(root, "build", "apps", "rml", "rml")
topology = os.path.join(root, "tests", "data", "cluster-serve-topology.yaml")


def free_ports(count):
    held = [socket.socket() for _ in range(count)]
    for each in held:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in held]
    for each in held:
        each.close()
    return ports


def status(etcd):
    return subprocess.run([rml, "status", "--etcd", etcd], capture_output=True, text=True).stdout


def wait_for(predicate, timeout, step=0.05):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return True
        time.sleep(step)
    return False


def start_etcd(work, client, peer):
    """Debian's etcd on loopback with its data and log under `work`, up when it returns."""
    etcd = f"http://127.0.0.1:{client}"
    process = subprocess.Popen(
        ["/usr/bin/etcd", "--name=bench", f"--data-dir={work}/etcd", f"--listen-client-urls={etcd}",
         f"--advertise-client-urls={etcd}", f"--listen-peer-urls=http://127.0.0.1:{peer}",
         f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}", f"--initial-cluster=bench=http://127.0.0.1:{peer}",
         "--logger=zap", f"--log-outputs={work}/etcd.log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not wait_for(lambda: "nodes:" in status(etcd), 20):
        process.kill()
        raise RuntimeError("etcd did not come up")
    return process


def start_node(work, etcd, name, labels, lease_ttl, http_port, predict_port=None):
    """An `rml node` offering 8 cores to placement, its log in work/NAME.log."""
    log = open(os.path.join(work, f"{name}.log"), "w")
    command = [rml, "node", "--name", name, "--etcd", etcd, "--labels", labels, "--cores", "8", "--lease-ttl", str(lease_ttl),
               "--data-dir", os.path.join(work, name), "--http-port", str(http_port)]
    if predict_port:
        command += ["--predict-port", str(predict_port)]
    return subprocess.Popen(command, stdout=log, stderr=log)


def stop_all(processes, work):
    """Kills what a run started, last first, and removes its folder."""
    for process in reversed(processes):
        process.kill()
        process.wait()
    shutil.rmtree(work, ignore_errors=True)


def repeats_parser():
    """The arguments run_repeats reads (--repeats, --output); a bench adds its own."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", help="append each run as a JSON line here")
    return parser


def run_repeats(args, one_run):
    """`args.repeats` fresh runs, each printed (and appended to `args.output`) as a JSON line."""
    runs = []
    for repeat in range(args.repeats):
        result = one_run(args)
        result["repeat"] = repeat
        print(json.dumps(result), flush=True)
        if args.output:
            with open(args.output, "a") as out:
                out.write(json.dumps(result) + "\n")
        runs.append(result)
    return runs


def served_version(http_port):
    body = json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0.5] * 784}]}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{http_port}/v2/models/mlp/infer", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(json.loads(response.read()).get("model_version", 0) or 0)
    except Exception:
        return 0


def loadgen(port, rate, duration, timeout_ms=4000):
    return subprocess.Popen([rml, "loadgen", "--address", f"tcp://127.0.0.1:{port}", "--rate", str(rate), "--duration", str(duration),
                             "--timeout-ms", str(timeout_ms)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def parse_loadgen(text):
    sent = re.search(r"sent (\d+) requests in [\d.]+ s \(target \d+/s\), (\d+) answered, (\d+) errors", text)
    latency = re.search(r"p50 (\d+)  p90 (\d+)  p99 (\d+)  p99\.9 (\d+)  max (\d+)", text)
    rate = re.search(r"throughput (\d+) answers/s", text)
    if not sent or not latency:
        raise RuntimeError("loadgen said: " + text)
    kinds = {kind: int(count) for kind, count in re.findall(r"^errors (\S+): (\d+)$", text, re.M)}
    return {"sent": int(sent.group(1)), "answered": int(sent.group(2)), "errors": int(sent.group(3)), "error_kinds": kinds,
            "p50_us": int(latency.group(1)), "p99_us": int(latency.group(3)), "p999_us": int(latency.group(4)),
            "max_us": int(latency.group(5)), "answers_per_s": int(rate.group(1)) if rate else 0}


def run_load(port, rate, duration):
    process = loadgen(port, rate, duration)
    out, _ = process.communicate()
    return parse_loadgen(out)


def one_run(args):
    work = tempfile.mkdtemp(prefix="rml-cluster-serving-")
    client, peer, *node_ports = free_ports(8)
    etcd = f"http://127.0.0.1:{client}"
    processes, nodes = [], {}
    http = {"data": node_ports[0], "e1": node_ports[1], "e2": node_ports[2]}
    predict = {"data": node_ports[3], "e1": node_ports[4], "e2": node_ports[5]}
    try:
        processes.append(start_etcd(work, client, peer))
        for name, labels in [("data", "role=data"), ("e1", "role=serving"), ("e2", "role=serving")]:
            nodes[name] = start_node(work, etcd, name, labels, args.lease_ttl, http[name], predict[name])
            processes.append(nodes[name])
            if name == "data":  # the first node leads the placement: it is not the one killed
                wait_for(lambda: "is the placement controller" in open(os.path.join(work, "data.log")).read(), 10)
        if not wait_for(lambda: "nodes: 3" in status(etcd), 10):
            raise RuntimeError("the nodes did not join")
        subprocess.run([rml, "deploy", topology, "--etcd", etcd], check=True, capture_output=True)
        if not wait_for(lambda: served_version(http["e1"]) >= 1 and served_version(http["e2"]) >= 1, 120, 0.2):
            raise RuntimeError("serving never got a model")
        # Training over: the version has not moved for 3 s (then the trainer is idle).
        last, since = served_version(http["e1"]), time.monotonic()
        while time.monotonic() - since < 3:
            time.sleep(0.5)
            now = served_version(http["e1"])
            if now != last:
                last, since = now, time.monotonic()
        result = {"lease_ttl_s": args.lease_ttl, "rate": args.rate, "served_version": last}
        run_load(predict["e1"], args.rate, 1)  # warm-up: connections, caches, the forwarding path
        run_load(predict["data"], args.rate, 1)
        if not args.only_failover:
            result["same_node"] = run_load(predict["e1"], args.rate, args.duration)
            result["cross_node"] = run_load(predict["data"], args.rate, args.duration)
            # Scale-out: one serving node offered the saturating rate, then both nodes at once.
            result["one_node_max"] = run_load(predict["e1"], args.saturate_rate, args.duration)
            both = [loadgen(predict[name], args.saturate_rate, args.duration) for name in ("e1", "e2")]
            outputs = [parse_loadgen(process.communicate()[0]) for process in both]
            result["two_nodes_max"] = {"answers_per_s": sum(each["answers_per_s"] for each in outputs), "each": outputs}

        # Failover: kill the serving node data forwards to, mid-load.
        data_log = open(os.path.join(work, "data.log")).read()
        preferred = re.findall(r"rml node data: found serving on (127\.0\.0\.1:\d+)", data_log)[-1]
        victim = re.search(r"─ (e[12])  " + re.escape(preferred) + " ", status(etcd)).group(1)
        process = loadgen(predict["data"], args.rate, args.failover_duration)
        time.sleep(args.failover_duration / 2)
        killed_at = time.monotonic()
        nodes[victim].send_signal(signal.SIGKILL)
        detected = None
        while process.poll() is None or detected is None:
            if detected is None and f"─ {victim}  " not in status(etcd):
                detected = time.monotonic() - killed_at
            if time.monotonic() - killed_at > 30:
                break
            time.sleep(0.02)
        result["failover"] = parse_loadgen(process.communicate()[0])
        result["failover"]["victim"] = victim
        result["failover"]["lease_expired_s"] = detected
        return result
    finally:
        stop_all(processes, work)


def main():
    parser = repeats_parser()
    parser.add_argument("--rate", type=int, default=2000, help="requests/s of the latency and failover runs")
    parser.add_argument("--saturate-rate", type=int, default=30000, help="requests/s offered in the scale-out runs")
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--failover-duration", type=float, default=8)
    parser.add_argument("--lease-ttl", type=float, default=3)
    parser.add_argument("--only-failover", action="store_true", help="skip the latency and scale-out runs")
    args = parser.parse_args()
    runs = run_repeats(args, one_run)

    def median(path):
        values = []
        for run in runs:
            value = run
            for key in path:
                value = value[key]
            values.append(value)
        return statistics.median(values)

    print(f"failover error kinds: {[r['failover']['error_kinds'] for r in runs]}", file=sys.stderr)
    if args.only_failover:
        return
    print(f"same node:  p50 {median(['same_node', 'p50_us'])} µs, p99 {median(['same_node', 'p99_us'])} µs", file=sys.stderr)
    print(f"cross node: p50 {median(['cross_node', 'p50_us'])} µs, p99 {median(['cross_node', 'p99_us'])} µs", file=sys.stderr)
    print(f"failover: errors {[r['failover']['errors'] for r in runs]}, answered/sent "
          f"{[(r['failover']['answered'], r['failover']['sent']) for r in runs]}, worst latency (ms) "
          f"{[round(r['failover']['max_us'] / 1000) for r in runs]}, lease expired after (s) "
          f"{[round(r['failover']['lease_expired_s'] or -1, 2) for r in runs]}", file=sys.stderr)
    print(f"scale-out: one node {median(['one_node_max', 'answers_per_s'])}/s, two nodes {median(['two_nodes_max', 'answers_per_s'])}/s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
