#!/usr/bin/env python3
"""Prints the model version rml's KServe V2 endpoint on 127.0.0.1:PORT answers an mlp
prediction with, or 0 when it does not answer (no model yet, nothing listening)."""
import json
import sys
import urllib.request

body = json.dumps({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0.5] * 784}]}).encode()
request = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/v2/models/mlp/infer", data=body,
                                 headers={"Content-Type": "application/json"})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        print(int(json.loads(response.read()).get("model_version", 0) or 0))
except Exception:
    print(0)
