#!/bin/sh
# A hostile or careless client (hostile_test.py) against a real `rml run --serve`: bodies that
# once crashed it, bursts that lost answers, events that poisoned the model, anonymous
# reconfiguration; rml must refuse each clearly, keep serving, and keep publishing.
# Usage: hostile_test.sh RML WORKDIR
set -eu
rml=$1
work=$2
extra_args="--serve --publish-steps 20"
. "$(dirname "$0")/start_serving_rml.sh"
wait_for_output "serving model" 300
status=0
/usr/bin/python3 "$(dirname "$0")/hostile_test.py" "127.0.0.1:$http_port" "tcp://127.0.0.1:$predict_port" \
  "tcp://127.0.0.1:$ingest_port" "$work/state/control-key" || status=$?
stop_process "$run" || { echo "FAIL: rml run exited with status $?:"; tail -20 "$work/run.out"; status=1; }
exit $status
