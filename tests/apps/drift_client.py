#!/usr/bin/env python3
"""A client whose traffic drifts, against a running `rml run --serve` (tests/apps/drift_test.sh).

    drift_client.py HOST:PORT CONTROL_KEY_FILE PHASE COUNT [FIRST]

Sends COUNT Fashion-MNIST test images (from FIRST on) to /v2/models/mlp/infer over HTTP, one
request each, and labels every answer through /v2/models/mlp/feedback. PHASE says how:
  plain    the images and their true labels
  relabel  the images, each labelled as the next class (concept drift: the answers turn wrong)
  invert   each pixel p sent as 255 − p, with its true label (input drift)
Prints how many answers were right. The standard library and docs/predict_client.py's IDX reader.
"""
import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs"))
from predict_client import read_idx  # noqa: E402  (the IDX reader the documented client has)

address, key_file, phase, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
first = int(sys.argv[5]) if len(sys.argv) > 5 else 0
dataset = "/usr/share/datasets/fashion-mnist"


(images_total, rows, cols), images = read_idx(dataset + "/t10k-images-idx3-ubyte.gz")
_, labels = read_idx(dataset + "/t10k-labels-idx1-ubyte.gz")
key = open(key_file).read().strip()
width = rows * cols


def post(path, body, headers):
    request = urllib.request.Request(f"http://{address}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


right = 0
for offset in range(count):
    index = (first + offset) % images_total
    pixels = list(images[index * width:(index + 1) * width])
    if phase == "invert":
        pixels = [255 - p for p in pixels]
    request_id = f"{phase}-{first + offset}"
    answer = post("/v2/models/mlp/infer",
                  {"id": request_id, "inputs": [{"name": "input", "shape": [1, width], "datatype": "FP32", "data": pixels}]}, {})
    probabilities = next(output["data"] for output in answer["outputs"] if output["name"] == "probabilities")
    predicted = max(range(10), key=lambda c: probabilities[c])
    label = (labels[index] + 1) % 10 if phase == "relabel" else labels[index]
    right += predicted == label
    post("/v2/models/mlp/feedback", {"id": request_id, "label": label}, {"Authorization": f"Bearer {key}"})
print(f"{phase}: {right} of {count} right")
