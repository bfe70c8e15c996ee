"""NVIDIA's tritonclient (PyPI, http) against a running rml: KServe V2 health, metadata,
inference with JSON and binary tensors, FP32 and INT64 inputs, a version in the path,
errors as the client reports them, and labelled feedback through rml's extension."""
import json
import sys
import urllib.error
import urllib.request

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

url, model, control_key_file = sys.argv[1], sys.argv[2], sys.argv[3]
with open(control_key_file) as key_file:
    control_key = key_file.read().strip()
client = httpclient.InferenceServerClient(url=url)

assert client.is_server_live()
assert client.is_server_ready()
assert client.is_model_ready(model)
server = client.get_server_metadata()
assert server["name"] == "rml", server
metadata = client.get_model_metadata(model)
assert metadata["name"] == model
assert metadata["inputs"][0]["shape"] == [-1, 784], metadata
assert [o["name"] for o in metadata["outputs"]] == ["probabilities", "classes"]
version = metadata["versions"][-1]

images = np.random.default_rng(1).integers(0, 256, size=(3, 784))


def infer(array, datatype, binary, model_version=""):
    tensor = httpclient.InferInput("input", list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("probabilities", binary_data=binary),
               httpclient.InferRequestedOutput("classes", binary_data=binary)]
    return client.infer(model, [tensor], model_version=model_version, outputs=outputs, request_id="77")


# rml keeps training while it serves: the comparisons below pin the version they compare, so
# that a version published between two requests cannot make them differ.
for binary in (False, True):
    result = infer(images.astype(np.float32), "FP32", binary, model_version=version)
    probabilities = result.as_numpy("probabilities")
    classes = result.as_numpy("classes")
    assert probabilities.shape == (3, 10), probabilities.shape
    assert probabilities.dtype == np.float32
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert classes.shape == (3, 1) and classes.dtype == np.int64
    assert (classes[:, 0] == probabilities.argmax(axis=1)).all()
    # INT64 pixels give the same answer as the same values in FP32.
    integers = infer(images.astype(np.int64), "INT64", binary, model_version=version)
    assert np.allclose(integers.as_numpy("probabilities"), probabilities, atol=1e-6)
    response = result.get_response()
    assert response["model_name"] == model and response["id"] == "77", response

pinned = infer(images.astype(np.float32), "FP32", True, model_version=version)
assert pinned.get_response()["model_version"] == version

try:
    infer(np.zeros((1, 783), dtype=np.float32), "FP32", False)
    raise AssertionError("a wrong shape was accepted")
except InferenceServerException as error:
    assert "inputs[0].shape ends in 783, the model takes 784 features" in error.message(), error.message()
    assert error.status() == "400", error.status()
try:
    client.infer("resnet", [httpclient.InferInput("input", [1, 784], "FP32").set_data_from_numpy(np.zeros((1, 784), np.float32))])
    raise AssertionError("an unknown model was served")
except InferenceServerException as error:
    assert "model 'resnet' is not served here" in error.message(), error.message()

# Feedback is a control endpoint: it needs the control key rml run wrote, and a JSON body.
feedback = json.dumps({"id": "77", "label": 3}).encode()
request = urllib.request.Request(f"http://{url}/v2/models/{model}/feedback", data=feedback, method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {control_key}"})
assert json.load(urllib.request.urlopen(request)) == {"matched": True}
try:
    urllib.request.urlopen(urllib.request.Request(f"http://{url}/v2/models/{model}/feedback", data=feedback, method="POST",
                                                  headers={"Content-Type": "text/plain"}))
    raise AssertionError("feedback without the control key was accepted")
except urllib.error.HTTPError as error:
    assert error.code == 401, error.code
print("tritonclient: every check passed")
