#!/bin/sh
# The Python example client (docs/predict_client.py, Debian's python3-zmq) against a real
# `rml run`: the protocol works from another language. Usage: python_client_test.sh RML WORKDIR
set -eu
rml=$1
work=$2
# --serve: rml keeps serving once its training is done, until this test stops it. Without it
# a loaded machine could let training end (and rml exit) while the requests are on their way.
extra_args="--serve"
. "$(dirname "$0")/start_serving_rml.sh"
/usr/bin/python3 "$(dirname "$0")/../../docs/predict_client.py" --address "tcp://127.0.0.1:$predict_port" --count 5 > "$work/client.out" 2>&1
cat "$work/client.out"
grep -q "of 5 correct" "$work/client.out"
wait_for_output "test accuracy" 120
stop_process "$run" || { echo "FAIL: rml run exited with status $?:"; tail -20 "$work/run.out"; exit 1; }
