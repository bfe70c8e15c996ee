#!/bin/sh
# The Python example client (docs/predict_client.py, Debian's python3-zmq) against a real
# `rml run`: the protocol works from another language. Usage: python_client_test.sh RML WORKDIR
set -eu
rml=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
"$rml" run --data-dir "$work/state" --rate 15000 --predict-port 25556 --ingest-port 25555 > "$work/run.out" 2>&1 &
run=$!
# Wait until a model is served (the client retries on not_ready by asking again).
for attempt in $(seq 1 100); do
  if /usr/bin/python3 "$(dirname "$0")/../../docs/predict_client.py" --address tcp://127.0.0.1:25556 --count 5 > "$work/client.out" 2>&1; then
    break
  fi
  sleep 0.1
done
cat "$work/client.out"
wait "$run"
grep -q "of 5 correct" "$work/client.out"
grep -q "test accuracy" "$work/run.out"
