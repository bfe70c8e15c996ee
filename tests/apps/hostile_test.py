"""A hostile or careless client against a real `rml run --serve` (issue 9): every attack that
used to crash rml, lose answers, poison the model or reconfigure it is tried, and rml must
answer each with a clear error, keep serving, and keep publishing good models.

Usage: hostile_test.py HTTP_HOST:PORT PREDICT_ADDRESS INGEST_ADDRESS CONTROL_KEY_FILE"""
import gzip
import json
import math
import socket
import struct
import sys
import time
import urllib.error
import urllib.request

import zmq

http, predict_address, ingest_address, key_file = sys.argv[1:5]
with open(key_file) as f:
    control_key = f.read().strip()
CONTROL = {"Authorization": "Bearer " + control_key, "Content-Type": "application/json"}
DATASET = "/usr/share/datasets/fashion-mnist"
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def call(path, body=None, headers=None, method=None):
    request = urllib.request.Request(f"http://{http}{path}", data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def error_of(body):
    return json.loads(body.decode("utf-8"))["error"]  # strict UTF-8: an invalid answer raises


def read_idx(name):
    with gzip.open(f"{DATASET}/{name}", "rb") as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return dims, data[4 + 4 * rank:]


def dealer(address, receive_timeout_ms=10000):
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVTIMEO, receive_timeout_ms)
    socket.connect(address)
    return socket


def encode_predict(request_id, pixels, rows=1, timeout_ms=5000):
    return struct.pack("<BBHIIIQIQ", 1, 1, 0, rows, 784, 1, request_id, timeout_ms, 0) + struct.pack("<%df" % len(pixels), *pixels)


def encode_ingest(batch_id, events):
    frame = struct.pack("<BBHQII", 3, 1, 0, batch_id, len(events), 784)
    for event_id, label, pixels in events:
        frame += struct.pack("<Qqi", event_id, 0, label) + struct.pack("<784f", *pixels)
    return frame


def decode(frame):
    kind, _, code = struct.unpack_from("<BBH", frame, 0)
    if kind == 255:
        request_id, length = struct.unpack_from("<QI", frame, 4)
        return ("error", request_id, code, frame[16:16 + length].decode("utf-8"))
    if kind == 2:
        request_id, version, rows, classes, top_k = struct.unpack_from("<QQIII", frame, 4)
        return ("reply", request_id, version, struct.unpack_from("<%df" % (rows * classes), frame, 32))
    if kind == 4:
        return ("ack",) + struct.unpack_from("<QQII", frame, 4)
    return ("kind %d" % kind,)


def serving_version():
    status, body = call("/v2/models/mlp")
    return json.loads(body)["parameters"]["serving_version"] if status == 200 else 0


def metric(name):
    _, body = call("/metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.decode().splitlines() if line.startswith(name))


(_, rows, cols), images = read_idx("t10k-images-idx3-ubyte.gz")
_, labels = read_idx("t10k-labels-idx1-ubyte.gz")
pixels = lambda index: [float(b) for b in images[index * 784:(index + 1) * 784]]

# 1. 200 000 nested arrays: once a SIGSEGV of the whole process.
nested = b"[" * 200000 + b"]" * 200000
for path in ("/v2/models/mlp/infer", "/v2/models/mlp/policy", "/v2/models/mlp/batching", "/v2/models/mlp/feedback"):
    status, body = call(path, nested, CONTROL)
    check(status == 400 and "deeper than 32 levels" in error_of(body), f"nested arrays to {path}: 400 ({status})")
check(call("/v2/health/live")[0] == 200, "still live after the nested bodies")

# 2. Invalid UTF-8 is refused or replaced: every answer is valid JSON.
status, body = call("/v2/models/mlp/infer", b'{"id":"\xff\xfe","inputs":[]}', {"Content-Type": "application/json"})
check(status == 400 and "not UTF-8" in error_of(body), "invalid UTF-8 in the id: 400, valid JSON")
# A path with a byte that is not UTF-8, sent raw (urllib would refuse to).
host, port = http.split(":")
with socket.create_connection((host, int(port)), timeout=10) as raw:
    raw.sendall(b"GET /v2/models/ml\xe9p/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = b""
    while chunk := raw.recv(65536):
        answer += chunk
head, _, body = answer.partition(b"\r\n\r\n")
check(head.startswith(b"HTTP/1.1 404") and "is not served here" in error_of(body), "a model path that is not UTF-8: 404, valid JSON")
status, body = call("/v2/models/mlp/versions/999999")
check(status == 404 and "is not loaded" in error_of(body), "metadata of an unknown version: 404")

# 3. A web page's CORS simple request cannot reconfigure serving.
status, _ = call("/v2/models/mlp/batching", b'{"queue_requests_max":1}', {"Content-Type": "text/plain", "Origin": "http://evil.example"})
check(status == 401, f"anonymous text/plain batching change: 401 ({status})")
status, _ = call("/v2/models/mlp/policy", b'{"policy":"pinned:1"}', {"Authorization": "Bearer " + control_key, "Content-Type": "text/plain"})
check(status == 415, f"keyed but text/plain: 415 ({status})")
status, body = call("/v2/models/mlp/batching", b'{}', CONTROL)
check(status == 200 and json.loads(body)["queue_requests_max"] > 1, "the queue bound was not changed")

# 4. Poisonous events are refused at ingest, naming batch, event and feature.
ingest = dealer(ingest_address)
poison = [(9_000_000 + index, index % 10, [3e38 if (index + feature) % 2 else -3e38 for feature in range(784)]) for index in range(64)]
ingest.send(encode_ingest(4242, poison))
answer = decode(ingest.recv())
check(answer[0] == "error" and answer[1] == 4242 and "event 9000000: feature 0 is" in answer[3] and "beyond the bound" in answer[3],
      f"poisonous batch refused at ingest: {answer}")

# 5. Refusals carry the request's id.
predictor = dealer(predict_address)
predictor.send(encode_predict(777, [float("nan")] * 784))
answer = decode(predictor.recv())
check(answer[0] == "error" and answer[1] == 777 and "is NaN" in answer[3], f"NaN features refused with id 777: {answer}")
predictor.send(struct.pack("<BBHIIIQIQ", 1, 1, 0, 1, 784, 1, 778, 0, 0) + b"\0" * 100)
answer = decode(predictor.recv())
check(answer[0] == "error" and answer[1] == 778, f"a length that disagrees with the header refused with id 778: {answer}")

# 6. One client pipelining 3000 requests gets 3000 answers (some refused overloaded), none lost.
burst = dealer(predict_address, 20000)
for request_id in range(1, 3001):
    burst.send(encode_predict(100000 + request_id, pixels(request_id % 10000)))
seen, overloaded = set(), 0
try:
    for _ in range(3000):
        answer = decode(burst.recv())
        seen.add(answer[1])
        overloaded += answer[0] == "error" and answer[2] == 10
except zmq.error.Again:
    pass
check(len(seen) == 3000, f"3000 pipelined requests, {len(seen)} answered ({overloaded} refused overloaded)")

# 7. After training, more labelled events: the trainer publishes above the final version.
before = serving_version()
good = [(5_000_000 + index, labels[index % 10000], pixels(index % 10000)) for index in range(64 * 40)]
for batch in range(40):
    ingest.send(encode_ingest(50_000 + batch, good[batch * 64:(batch + 1) * 64]))
acks = [decode(ingest.recv()) for _ in range(40)]
check(all(answer[0] == "ack" for answer in acks), "40 batches of good events acked")
deadline = time.time() + 60
while serving_version() <= before and time.time() < deadline:
    time.sleep(0.2)
check(serving_version() > before, f"a model published after training is served: v{before} -> v{serving_version()}")
check(metric("rml_trainer_publishes_refused_total") == 0, "no snapshot refused by the registry")

# 8. Answers stay finite over both interfaces.
predictor.send(encode_predict(779, pixels(5)))
answer = decode(predictor.recv())
check(answer[0] == "reply" and all(math.isfinite(p) for p in answer[3]), "ZeroMQ answer finite")
body = json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": pixels(6)}]}).encode()
status, answer_body = call("/v2/models/mlp/infer", body, {"Content-Type": "application/json"})
outputs = json.loads(answer_body)["outputs"] if status == 200 else []
check(status == 200 and all(math.isfinite(p) for p in outputs[0]["data"]), "HTTP answer finite, valid JSON")

print("hostile client: %d failures" % len(failures))
sys.exit(1 if failures else 0)
