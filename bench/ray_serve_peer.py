"""The Ray Serve peer of the serving benchmark: the same model (mlp or lenet, PyTorch) behind
Ray Serve's HTTP proxy with @serve.batch, answering the same KServe V2 infer requests rml's
load generator sends (binary tensor data extension or JSON), with the top class per row.

    ray_serve_peer.py --model mlp --port 18500 [--replicas 1] [--batch 64] [--wait-ms 0.5]

Runs until killed. Weights are PyTorch's default initialisation: throughput and latency do
not depend on their values. Threads: each replica's PyTorch uses one thread per replica CPU
(torch.set_num_threads), Ray gets every core."""
import argparse
import json
import os
import signal
import time

import numpy as np
import ray
import torch
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


def build(model: str) -> torch.nn.Module:
    if model == "mlp":
        net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                  torch.nn.Linear(128, 10))
    else:
        net = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 28, 28)), torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(),
                                  torch.nn.MaxPool2d(2), torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                                  torch.nn.Flatten(), torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84),
                                  torch.nn.ReLU(), torch.nn.Linear(84, 10))
    return net.eval()


def parse_v2(body: bytes, header_length: str | None) -> np.ndarray:
    """The input tensor of a V2 infer request: binary tensor data or JSON "data"."""
    json_bytes = int(header_length) if header_length else len(body)
    request = json.loads(body[:json_bytes])
    tensor = request["inputs"][0]
    shape = tensor["shape"]
    if "data" in tensor:
        return np.asarray(tensor["data"], dtype=np.float32).reshape(shape)
    return np.frombuffer(body, dtype=np.float32, count=int(np.prod(shape)), offset=json_bytes).reshape(shape)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="mlp", choices=["mlp", "lenet"])
    parser.add_argument("--port", type=int, default=18500)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--wait-ms", type=float, default=0.5)
    args = parser.parse_args()
    cpus = os.cpu_count()
    threads = max(1, cpus // args.replicas)

    @serve.deployment(num_replicas=args.replicas, ray_actor_options={"num_cpus": cpus / args.replicas / 2},
                      max_ongoing_requests=1024)
    class Classifier:
        def __init__(self):
            torch.set_num_threads(threads)
            self.net = build(args.model)

        @serve.batch(max_batch_size=args.batch, batch_wait_timeout_s=args.wait_ms / 1000.0)
        async def predict(self, arrays: list[np.ndarray]) -> list[list[int]]:
            rows = [len(a) for a in arrays]
            with torch.inference_mode():
                scores = self.net(torch.from_numpy(np.concatenate(arrays)))
            classes = scores.argmax(dim=1).tolist()
            answers, first = [], 0
            for count in rows:
                answers.append(classes[first:first + count])
                first += count
            return answers

        async def __call__(self, request: Request) -> Response:
            body = await request.body()
            array = parse_v2(body, request.headers.get("inference-header-content-length"))
            classes = await self.predict(array)
            return JSONResponse({"model_name": args.model, "outputs": [
                {"name": "classes", "datatype": "INT64", "shape": [len(classes), 1], "data": classes}]})

    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="error", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(Classifier.bind(), route_prefix=f"/v2/models/{args.model}/infer")
    print(f"ray serve: {args.model} on http://127.0.0.1:{args.port}/v2/models/{args.model}/infer, "
          f"{args.replicas} replica(s), batch {args.batch}, wait {args.wait_ms} ms, {threads} torch thread(s)", flush=True)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.2)
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
