#!/usr/bin/env python3
"""PyTorch on the same GPU doing what bench/gpu/gpu_bench.cpp does, for side-by-side ratios.

Same architectures (mlp 784-256-128-10, LeNet-5 with padding 2, ReLU and max pooling),
same workloads, float32 with TF32 off on both sides (rml's default; TF32 would change the
arithmetic, not just the speed). PyTorch runs at its best: cudnn.benchmark on, SGD with its
fused CUDA kernel where this version has one, no host sync inside the training loop, and
for training and inference alike the faster of eager mode and a captured CUDA graph (the
slower candidate goes to stderr). One JSON line per measurement.
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_peer import make_model as architecture  # noqa: E402  the CPU peer's models, the same layers


def sgd(parameters):
    try:
        return torch.optim.SGD(parameters, lr=0.05, momentum=0.9, fused=True), "fused"
    except (TypeError, RuntimeError):
        return torch.optim.SGD(parameters, lr=0.05, momentum=0.9, foreach=True), "foreach"


def train_loop(step, seconds):
    """Runs step(index) for `seconds` after a warm-up; (steps, elapsed, last loss)."""
    for index in range(20):
        step(index)
    torch.cuda.synchronize()
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(50):
            loss = step(steps)
            steps += 1
    torch.cuda.synchronize()
    return steps, time.perf_counter() - start, float(loss.detach())


def eager_step(name, batches):
    device = torch.device("cuda")
    torch.manual_seed(1)
    model = architecture(name).to(device)
    optimizer, kind = sgd(model.parameters())

    def eager(index):
        x, y = batches[index % 16]
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return "eager, " + kind + " SGD", eager


def graphed_step(name, batches):
    """A whole step captured as a CUDA graph (PyTorch's "whole network capture": forward,
    backward and optimizer step replayed as one launch, the batch copied into static
    inputs first)."""
    device = torch.device("cuda")
    torch.manual_seed(1)
    model = architecture(name).to(device)
    optimizer, kind = sgd(model.parameters())
    static_x, static_y = batches[0][0].clone(), batches[0][1].clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(static_x), static_y).backward()
            optimizer.step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        static_loss = F.cross_entropy(model(static_x), static_y)
        static_loss.backward()
        optimizer.step()

    def graphed(index):
        x, y = batches[index % 16]
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
        return static_loss

    return "cuda graph, " + kind + " SGD", graphed


def train(name, batch, seconds):
    """The faster of eager and captured training steps."""
    batches = [(torch.rand(batch, 784, device="cuda"), torch.randint(0, 10, (batch,), device="cuda"))
               for _ in range(16)]
    best = None
    for make in (eager_step, graphed_step):
        try:
            variant, step = make(name, batches)
            steps, elapsed, loss = train_loop(step, seconds)
        except RuntimeError as failure:  # a capture this version refuses: the other row stands
            print(json.dumps({"peer": "torch", "variant": make.__name__, "model": name, "batch": batch,
                              "skipped": str(failure)[:300]}), file=sys.stderr)
            continue
        row = {"peer": "torch", "variant": variant, "model": name, "workload": "train", "batch": batch,
               "samples_per_s": steps * batch / elapsed, "steps": steps, "last_loss": loss}
        print(json.dumps(dict(row, candidate=True)), file=sys.stderr)
        if best is None or row["samples_per_s"] > best["samples_per_s"]:
            best = row
    return best


def predictors(model, batch):
    """(variant, predict(host) -> host classes) for eager mode and a CUDA graph."""
    device = torch.device("cuda")

    def eager(host):
        return model(host.to(device, non_blocking=True)).argmax(1).cpu()

    static_input = torch.zeros(batch, 784, device=device)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            model(static_input).argmax(1)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_output = model(static_input).argmax(1)

    def graphed(host):
        static_input.copy_(host, non_blocking=True)
        graph.replay()
        return static_output.cpu()

    return [("eager", eager), ("cuda graph", graphed)]


def infer(name, seconds):
    torch.manual_seed(1)
    model = architecture(name).cuda().eval()
    results = []
    with torch.inference_mode():
        best = None
        for variant, predict in predictors(model, 1):
            host = torch.rand(1, 784).pin_memory()
            for _ in range(200):
                predict(host)
            micros = []
            start = time.perf_counter()
            while time.perf_counter() - start < seconds / 2:
                begin = time.perf_counter()
                predict(host)
                micros.append((time.perf_counter() - begin) * 1e6)
            micros.sort()
            row = {"peer": "torch", "variant": variant, "model": name, "workload": "latency", "batch": 1,
                   "p50_us": micros[len(micros) // 2], "p99_us": micros[len(micros) * 99 // 100],
                   "calls": len(micros)}
            if best is None or row["p50_us"] < best["p50_us"]:
                best = row
        results.append(best)
        best = None
        for variant, predict in predictors(model, 1024):
            host = torch.rand(1024, 784).pin_memory()
            for _ in range(20):
                predict(host)
            calls = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds / 2:
                predict(host)
                calls += 1
            row = {"peer": "torch", "variant": variant, "model": name, "workload": "throughput", "batch": 1024,
                   "samples_per_s": calls * 1024 / (time.perf_counter() - start), "calls": calls}
            if best is None or row["samples_per_s"] > best["samples_per_s"]:
                best = row
        results.append(best)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", default="mlp,lenet")
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--train-batches", default="64,512", help="training batch sizes")
    parser.add_argument("--no-inference", action="store_true", help="skip the inference measurements")
    parser.add_argument("--no-training", action="store_true", help="skip the training measurements")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    print(json.dumps({"peer": "torch", "version": torch.__version__, "gpu": torch.cuda.get_device_name()}), flush=True)
    for name in args.models.split(","):
        for batch in (int(b) for b in args.train_batches.split(",") if b and not args.no_training):
            print(json.dumps(train(name, batch, args.seconds)), flush=True)
        if not args.no_inference:
            for row in infer(name, args.seconds):
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
