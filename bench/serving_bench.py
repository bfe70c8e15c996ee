"""The serving benchmark (issue 4): for mlp and lenet on this machine, with rml's load
generator on the same cores, over ZeroMQ and over HTTP (KServe V2, binary tensors):

  * the maximum throughput at p99 <= 5 ms (open-loop Poisson load, latency from the scheduled
    send time, no errors allowed), and the p99 at half that throughput;
  * the two ceilings of the same run: compute/'s raw batched forward pass (batch 512) and raw
    ZeroMQ moving the same ~3 KB requests one way without compute;
  * batching's speed-up: rml's default dynamic batching vs batch size 1 at the same objective;
  * Ray Serve (@serve.batch, PyTorch) serving the same model under the same load generator
    over HTTP, at p99 <= 5 ms and at a relaxed p99 <= 100 ms.

    bench/run_serving_bench.sh [--models mlp,lenet] [--repeats 3] [--duration 3] [--no-ray]

Prints one JSON line per measurement and a summary table (medians over repeats)."""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
build = os.path.join(root, "build")
rml = os.path.join(build, "apps", "rml", "rml")


def log(message):
    print(f"bench: {message}", file=sys.stderr, flush=True)


def loadgen(address, model, rate, duration, binary):
    command = [rml, "loadgen", "--address", address, "--rate", str(int(rate)), "--duration", str(duration), "--timeout-ms", "2000"]
    if address.startswith("http"):
        command += ["--model", model, "--connections", "64"] + (["--binary"] if binary else [])
    out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60).stdout
    sent = int(re.search(r"sent (\d+) requests", out).group(1))
    answered = int(re.search(r"(\d+) answered", out).group(1))
    errors = int(re.search(r"answered, (\d+) errors", out).group(1))
    p = re.search(r"p50 (\d+)  p90 (\d+)  p99 (\d+)  p99.9 (\d+)  max (\d+)", out)
    throughput = float(re.search(r"throughput (\d+) answers/s", out).group(1))
    return {"rate": int(rate), "sent": sent, "answered": answered, "errors": errors, "p50_us": int(p.group(1)),
            "p99_us": int(p.group(3)), "throughput": throughput}


def max_rate(address, model, objective_us, duration, start, binary=True, bisections=2):
    """The highest offered rate answered in full with p99 within the objective. p99 over a few
    seconds is noisy, so one failure does not end the climb: it stops after two failures in
    a row (or at the first one below the start), then bisects above the best pass."""
    passes = lambda r: r["errors"] == 0 and r["answered"] == r["sent"] and r["p99_us"] <= objective_us
    probe = lambda rate: loadgen(address, model, rate, duration, binary)
    loadgen(address, model, start / 2, 2, binary)  # warm-up: caches, allocator arenas, connections
    best, failed, misses, rate = None, None, 0, start
    while misses < 2 and rate < 2_000_000:
        result = probe(rate)
        log(f"  {address} {rate:.0f}/s: p99 {result['p99_us']} µs, {result['errors']} errors")
        if passes(result):
            best, misses = result, 0
        else:
            misses += 1
            failed = failed or rate
            if best is None:
                break
        if best is not None and failed is not None and failed <= best["rate"]:
            failed = None
        rate *= 1.25
    if best is None:
        rate = start / 2
        while rate >= 10 and best is None:
            result = probe(rate)
            log(f"  {address} {rate:.0f}/s: p99 {result['p99_us']} µs, {result['errors']} errors")
            if passes(result):
                best = result
            else:
                failed, rate = rate, rate / 2
        if best is None:
            return None
    low, high = best["rate"], (failed if failed and failed > best["rate"] else best["rate"] * 1.25)
    for _ in range(bisections):
        middle = (low + high) / 2
        result = probe(middle)
        log(f"  {address} {middle:.0f}/s: p99 {result['p99_us']} µs, {result['errors']} errors")
        if passes(result):
            best, low = result, middle
        else:
            high = middle
    half = probe(best["rate"] / 2)
    return {"max_rate": best["rate"], "throughput": best["throughput"], "p99_us": best["p99_us"], "p99_at_half_us": half["p99_us"]}


class rml_server:
    """`rml run --serve` on a trained state (trained once per model, resumed after)."""

    def __init__(self, model, extra):
        self.state = os.path.join(build, "bench-serving", model)
        trained = os.path.isdir(os.path.join(self.state, "registry"))
        # No prediction cache: every request is computed, as the peer computes every one.
        command = [rml, "run", "--model", model, "--data-dir", self.state, "--resume" if trained else "--fresh", "--serve",
                   "--predict-port", "19556", "--ingest-port", "19555", "--http-port", "19800", "--cache-entries", "0"] + extra
        self.output = open(os.path.join(build, f"bench-serving-{model}.out"), "w")
        self.process = subprocess.Popen(command, stdout=self.output, stderr=subprocess.STDOUT)
        path = self.output.name
        for _ in range(1200):
            time.sleep(0.5)
            if "serving model" in open(path).read():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"rml run exited: {open(path).read()[-2000:]}")
        raise RuntimeError("rml run did not start serving")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)
        self.output.close()


class ray_server:
    def __init__(self, model, python, replicas, batch):
        self.output = open(os.path.join(build, f"bench-ray-{model}.out"), "w")
        self.process = subprocess.Popen([python, os.path.join(root, "bench", "ray_serve_peer.py"), "--model", model, "--port", "19500",
                                         "--replicas", str(replicas), "--batch", str(batch)],
                                        stdout=self.output, stderr=subprocess.STDOUT)
        for _ in range(240):
            time.sleep(0.5)
            if "ray serve:" in open(self.output.name).read():
                # Warm-up: the first requests build Ray's handles and PyTorch's kernels.
                loadgen("http://127.0.0.1:19500", model, 50, 2, True)
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"ray serve exited: {open(self.output.name).read()[-2000:]}")
        raise RuntimeError("ray serve did not start")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.output.close()
        subprocess.run(["pkill", "-f", "ray::"], check=False)


def emit(record):
    print(json.dumps(record), flush=True)
    return record


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="mlp,lenet")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3)
    parser.add_argument("--objective-us", type=int, default=5000)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--transports", default="zmq,http",
                        help="what the batching mode is measured over: zmq, http (binary V2), httpjson (JSON V2)")
    parser.add_argument("--modes", default="batching,batch1",
                        help="batching: rml's defaults; batch1: --serve-batch-max 1; replicas2: --replicas 2; "
                             "adaptive: AIMD batching (--adaptive-batching)")
    parser.add_argument("--python", default=sys.executable, help="the Python with ray[serve] and torch")
    args = parser.parse_args()
    records = []
    for repeat in range(args.repeats):
        ceiling = json.loads(subprocess.run([os.path.join(build, "bench", "rml_zmq_ceiling")], capture_output=True, text=True).stdout)
        records.append(emit({"repeat": repeat, "what": "zmq_ceiling", "per_s": ceiling["messages_per_s"]}))
        if "http" in args.transports.split(","):
            # A minimal Beast server answering a fixed reply: what HTTP costs without serving,
            # reading one request per read and, with --burst, every request a read brought
            # (as rml's endpoint does); the ceiling is the faster of the two.
            for variant, flags in (("one_per_read", []), ("burst", ["--burst"])):
                server = subprocess.Popen([os.path.join(build, "bench", "rml_http_ceiling"), "--port", "19801", *flags],
                                          stdout=subprocess.PIPE, text=True)
                try:
                    server.stdout.readline()
                    log(f"http ceiling, {variant} (repeat {repeat})")
                    found = max_rate("http://127.0.0.1:19801", "mlp", args.objective_us, args.duration, 16000)
                    records.append(emit({"repeat": repeat, "what": "http_ceiling", "variant": variant, "objective_us": args.objective_us,
                                         **(found or {})}))
                finally:
                    server.terminate()
                    server.wait()
        for model in args.models.split(","):
            compute = json.loads(subprocess.run([os.path.join(build, "bench", "rml_compute_bench"), "--workload", "throughput", "--model", model,
                                                 "--batch", "512", "--threads", "2"], capture_output=True, text=True).stdout)
            records.append(emit({"repeat": repeat, "what": "compute_ceiling", "model": model, "per_s": compute["samples_per_s"]}))
            start = 16000 if model == "mlp" else 4000
            modes = {"batching": [], "batch1": ["--serve-batch-max", "1"], "replicas2": ["--replicas", "2"],
                     "adaptive": ["--adaptive-batching", "--serve-batch-max", "256", "--latency-objective-us", "2000"]}
            for label in args.modes.split(","):
                extra = modes[label]
                server = rml_server(model, extra)
                try:
                    # httpjson: the same HTTP endpoint, tensors as JSON instead of binary.
                    addresses = {"zmq": "tcp://127.0.0.1:19556", "http": "http://127.0.0.1:19800", "httpjson": "http://127.0.0.1:19800"}
                    chosen = args.transports.split(",") if label == "batching" else ["zmq"]  # batching comparisons: ZeroMQ
                    transports = [(transport, addresses[transport]) for transport in chosen]
                    for transport, address in transports:
                        log(f"rml {model} {transport} {label} (repeat {repeat})")
                        found = max_rate(address, model, args.objective_us, args.duration, start, binary=transport != "httpjson")
                        records.append(emit({"repeat": repeat, "what": "rml", "model": model, "transport": transport, "mode": label,
                                             "objective_us": args.objective_us, **(found or {})}))
                finally:
                    server.stop()
            if "http" in args.transports.split(",") and not args.no_ray:
                # rml over HTTP at the relaxed objective too, for the ratio to Ray Serve there.
                server = rml_server(model, [])
                try:
                    found = max_rate("http://127.0.0.1:19800", model, 100_000, args.duration, start)
                    records.append(emit({"repeat": repeat, "what": "rml", "model": model, "transport": "http", "mode": "batching",
                                         "objective_us": 100_000, **(found or {})}))
                finally:
                    server.stop()
            if not args.no_ray:
                for replicas in (1, 2):
                    peer = ray_server(model, args.python, replicas, 64)
                    try:
                        for objective in (args.objective_us, 100_000):
                            log(f"ray serve {model} replicas {replicas} p99 <= {objective} µs (repeat {repeat})")
                            found = max_rate("http://127.0.0.1:19500", model, objective, args.duration, 100)
                            records.append(emit({"repeat": repeat, "what": "ray", "model": model, "transport": "http", "replicas": replicas,
                                                 "objective_us": objective, **(found or {"max_rate": 0})}))
                    finally:
                        peer.stop()
    summarize(records)


def median_of(records, **match):
    values = [r.get("max_rate", r.get("per_s", 0)) or 0 for r in records if all(r.get(k) == v for k, v in match.items())]
    return statistics.median(values) if values else float("nan")


def summarize(records):
    print("\nsummary (medians over repeats):")
    zmq = median_of(records, what="zmq_ceiling")
    print(f"  raw ZeroMQ ceiling: {zmq:,.0f} messages/s one way")
    http_ceiling = max(median_of(records, what="http_ceiling", variant=variant) for variant in ("one_per_read", "burst"))
    if http_ceiling == http_ceiling:
        print(f"  HTTP ceiling (faster of one request per read and bursts): {http_ceiling:,.0f} requests/s at p99 <= 5 ms")
    for model in sorted({r["model"] for r in records if "model" in r}):
        compute = median_of(records, what="compute_ceiling", model=model)
        lower = min(zmq, compute)
        print(f"  {model}: compute ceiling {compute:,.0f} samples/s (batch 512); lower ceiling {lower:,.0f}")
        for transport in ("zmq", "http"):
            best = median_of(records, what="rml", model=model, transport=transport, mode="batching", objective_us=5000)
            if best != best:
                continue  # not measured in this run
            half = statistics.median([r.get("p99_at_half_us", 0) for r in records if r.get("what") == "rml" and r.get("model") == model and
                                      r.get("transport") == transport and r.get("mode") == "batching" and r.get("objective_us") == 5000] or [0])
            print(f"    rml {transport}: {best:,.0f} predictions/s at p99 <= 5 ms ({best / lower:.2f} of the lower ceiling"
                  + (f", {best / http_ceiling:.2f} of the HTTP ceiling" if transport == "http" and http_ceiling == http_ceiling else "")
                  + f"); p99 at half that: {half} µs")
        one = median_of(records, what="rml", model=model, transport="zmq", mode="batch1", objective_us=5000)
        for mode in ("batching", "adaptive"):
            best = median_of(records, what="rml", model=model, transport="zmq", mode=mode, objective_us=5000)
            if best == best and one == one:  # both measured
                print(f"    {mode} speed-up over batch size 1 (zmq, p99 <= 5 ms): {best / one if one else float('inf'):.2f}x")
        for objective in (5000, 100_000):
            measured = [median_of(records, what="ray", model=model, replicas=n, objective_us=objective) for n in (1, 2)]
            measured = [value for value in measured if value == value]
            if not measured:
                continue
            ray = max(measured)
            ours = median_of(records, what="rml", model=model, transport="http", mode="batching", objective_us=objective)
            ratio = f"{ours / ray:.0f}x" if ray and ray > 0 else "rml only (Ray Serve meets it at no rate)"
            print(f"    vs Ray Serve over HTTP at p99 <= {objective / 1000:g} ms: rml {ours:,.0f}/s, Ray Serve {ray:,.0f}/s: {ratio}")


if __name__ == "__main__":
    main()
