#!/bin/sh
# NVIDIA's tritonclient (PyPI) against a real `rml run` over HTTP (tritonclient_test.py).
# The client is installed into a virtual environment under the build directory on first use;
# without access to PyPI the test is skipped (exit 77) and says so.
# Usage: tritonclient_test.sh RML WORKDIR VENV
set -eu
rml=$1
work=$2
venv=$3
if ! "$venv/bin/python" -c "import tritonclient.http, numpy" 2>/dev/null; then
  /usr/bin/python3 -m venv "$venv"
  if ! "$venv/bin/pip" install -q "tritonclient[http]" numpy; then
    echo "SKIPPED: tritonclient could not be installed from PyPI (no network?)"
    exit 77
  fi
fi
predict_port=24556
ingest_port=24555
http_port=24800
extra_args="--serve"
. "$(dirname "$0")/start_serving_rml.sh"
status=0
"$venv/bin/python" "$(dirname "$0")/tritonclient_test.py" "127.0.0.1:$http_port" mlp || status=$?
kill -TERM "$run"
wait "$run" || status=$?
exit $status
