#!/usr/bin/env python3
"""PyTorch doing exactly what bench/compute_bench.cpp does, for side-by-side ratios.

Same architectures, initialisation scheme (PyTorch's defaults, which rml's kaiming_uniform
reproduces), hyper-parameters, data order (rml's SplitMix64 Fisher-Yates, reimplemented
below) and thread count. Prints one JSON line per run, like rml_compute_bench.

PyTorch runs at its best: MKL and oneDNN (mkldnn) as shipped, torch.set_num_threads to the
given count, inference under torch.inference_mode, and for inference the faster of eager
and TorchScript (traced and frozen) is reported.
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn

MASK = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, bound):
        return ((self.next_u64() >> 32) * bound) >> 32


def shuffled_indices(count, seed):
    order = list(range(count))
    random = SplitMix64(seed)
    for index in range(count, 1, -1):
        other = random.below(index)
        order[index - 1], order[other] = order[other], order[index - 1]
    return order


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(directory, part):
    prefix = os.path.join(directory, "train" if part == "train" else "t10k")
    images = read_idx(prefix + "-images-idx3-ubyte.gz").reshape(-1, 784).astype(np.float32) / 255.0
    labels = read_idx(prefix + "-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(images), torch.from_numpy(labels)


def make_model(name):
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10))


def accuracy(model, x, y):
    model.eval()
    with torch.inference_mode():
        correct = sum(int((model(x[i:i + 1000]).argmax(1) == y[i:i + 1000]).sum()) for i in range(0, len(x), 1000))
    model.train()
    return correct / len(x)


def train_epoch(model, optimizer, x, y, order, batch):
    loss_fn = nn.CrossEntropyLoss()
    order = torch.tensor(order)
    total = 0.0
    for begin in range(0, len(order), batch):
        index = order[begin:begin + batch]
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[index]), y[index])
        loss.backward()
        optimizer.step()
        total += loss.item() * len(index)
    return total / len(order)


def percentile(values, fraction):
    values = sorted(values)
    return values[min(len(values) - 1, int(fraction * len(values)))]


def inference_variants(model, example):
    """Eager and TorchScript (traced, frozen) forms of the model, for inference."""
    model.eval()
    with torch.inference_mode():
        scripted = torch.jit.freeze(torch.jit.trace(model, example))
        for _ in range(50):
            scripted(example)
    return {"eager": model, "torchscript": scripted}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workload", choices=["train", "online", "latency", "throughput"], default="train")
    parser.add_argument("--model", choices=["mlp", "lenet"], default="mlp")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0)
    parser.add_argument("--data-dir", default=os.environ.get("RML_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
    o = parser.parse_args()

    torch.set_num_threads(o.threads)
    torch.manual_seed(o.seed)
    x, y = load(o.data_dir, "train")
    tx, ty = load(o.data_dir, "test")
    model = make_model(o.model)
    lr = o.lr if o.lr > 0 else (0.001 if o.workload == "online" else 0.05)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    result = {"system": "pytorch", "workload": o.workload, "model": o.model, "threads": torch.get_num_threads(),
              "seed": o.seed, "torch": torch.__version__}
    order = shuffled_indices(len(x), o.seed)

    if o.workload == "train":
        start = time.perf_counter()
        mean_loss = train_epoch(model, optimizer, x, y, order, 64)
        elapsed = time.perf_counter() - start
        result.update(samples_per_s=round(len(x) / elapsed, 1), test_accuracy=round(accuracy(model, tx, ty), 4),
                      mean_loss=round(mean_loss, 4))
    elif o.workload == "online":
        count = min(o.samples, len(x)) if o.samples > 0 else len(x)
        loss_fn = nn.CrossEntropyLoss()
        correct = 0
        start = time.perf_counter()
        for step in range(count):
            index = order[step]
            sample, label = x[index:index + 1], y[index:index + 1]
            optimizer.zero_grad(set_to_none=True)
            logits = model(sample)
            # The training forward pass is the prediction before the update.
            correct += int(logits.argmax(1)[0] == label[0])
            loss_fn(logits, label).backward()
            optimizer.step()
        elapsed = time.perf_counter() - start
        result.update(samples=count, samples_per_s=round(count / elapsed, 1),
                      progressive_accuracy=round(correct / count, 4), test_accuracy=round(accuracy(model, tx, ty), 4))
    else:
        train_epoch(model, optimizer, x, y, order, 64)
        best = None
        for variant, forward in inference_variants(model, tx[:1]).items():
            with torch.inference_mode():
                if o.workload == "latency":
                    count = min(o.samples, len(tx)) if o.samples > 0 else len(tx)
                    for i in range(200):
                        forward(tx[0:1]).argmax(1)
                    latencies = []
                    for row in range(count):
                        start = time.perf_counter()
                        int(forward(tx[row:row + 1]).argmax(1)[0])
                        latencies.append((time.perf_counter() - start) * 1e6)
                    measured = {"samples": count, "p50_us": round(percentile(latencies, 0.5), 2),
                                "p99_us": round(percentile(latencies, 0.99), 2), "variant": variant}
                    better = best is None or measured["p50_us"] < best["p50_us"]
                else:
                    forward(tx[:256]).argmax(1)
                    done = 0
                    start = time.perf_counter()
                    for _ in range(3):
                        for begin in range(0, len(tx) - 255, 256):
                            forward(tx[begin:begin + 256]).argmax(1)
                            done += 256
                    measured = {"batch": 256, "samples_per_s": round(done / (time.perf_counter() - start), 1),
                                "variant": variant}
                    better = best is None or measured["samples_per_s"] > best["samples_per_s"]
            if better:
                best = measured
        result.update(best)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
