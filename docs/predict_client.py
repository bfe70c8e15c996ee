#!/usr/bin/python3
"""Ask a running `rml run` for predictions over ZeroMQ, from Python (docs/protocol.md).

    /usr/bin/python3 docs/predict_client.py [--address tcp://127.0.0.1:5556] [--count 5]

Uses pyzmq (Debian's python3-zmq) and the standard library only: it reads Fashion-MNIST test
images itself and prints each prediction next to the label.
"""
import argparse
import gzip
import struct
import sys

import zmq

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return dims, data[4 + 4 * rank:]


def encode_predict(request_id, pixels, top_k=3, timeout_ms=1000):
    header = struct.pack("<BBHIIIQIQ", 1, 1, 0, 1, len(pixels), top_k, request_id, timeout_ms, 0)
    return header + struct.pack("<%df" % len(pixels), *pixels)


def decode(frame):
    kind, version, code = struct.unpack_from("<BBH", frame, 0)
    if kind == 255:
        request_id, length = struct.unpack_from("<QI", frame, 4)
        raise RuntimeError("request %d: error %d: %s" % (request_id, code, frame[16:16 + length].decode()))
    request_id, model_version, rows, classes, top_k = struct.unpack_from("<QQIII", frame, 4)
    probabilities = struct.unpack_from("<%df" % (rows * classes), frame, 32)
    top = struct.unpack_from("<%di" % (rows * top_k), frame, 32 + 4 * rows * classes)
    return request_id, model_version, probabilities, top


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", default="tcp://127.0.0.1:5556")
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--dataset-dir", default="/usr/share/datasets/fashion-mnist")
    o = parser.parse_args()
    (count, rows, cols), images = read_idx(o.dataset_dir + "/t10k-images-idx3-ubyte.gz")
    _, labels = read_idx(o.dataset_dir + "/t10k-labels-idx1-ubyte.gz")
    socket = zmq.Context().socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.setsockopt(zmq.RCVTIMEO, 5000)
    socket.connect(o.address)
    correct = 0
    for index in range(o.count):
        pixels = [float(b) for b in images[index * rows * cols:(index + 1) * rows * cols]]
        socket.send(encode_predict(index, pixels))
        request_id, version, probabilities, top = decode(socket.recv())
        assert request_id == index
        correct += top[0] == labels[index]
        print("image %d: %s (p=%.3f), label %s, model v%d" % (index, CLASSES[top[0]], probabilities[top[0]],
                                                             CLASSES[labels[index]], version))
    print("%d of %d correct" % (correct, o.count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
