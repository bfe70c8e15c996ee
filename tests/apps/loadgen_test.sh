#!/bin/sh
# rml loadgen against a real `rml run`: open-loop load is sent for a second, every request is
# answered (prediction or explicit error) and the latency percentiles are printed.
# Usage: loadgen_test.sh RML WORKDIR
set -eu
rml=$1
work=$2
# --serve: rml keeps serving once its training is done, until this test stops it. Without it
# a loaded machine could let training end (and rml exit) while the requests are on their way.
extra_args="--serve"
. "$(dirname "$0")/start_serving_rml.sh"
"$rml" loadgen --address "tcp://127.0.0.1:$predict_port" --rate 500 --duration 1 > "$work/loadgen.out"
cat "$work/loadgen.out"
stop_process "$run" || { echo "FAIL: rml run exited with status $?:"; tail -20 "$work/run.out"; exit 1; }
sent=$(sed -n 's/^sent \([0-9]*\) requests.*/\1/p' "$work/loadgen.out")
answered=$(sed -n 's/.*, \([0-9]*\) answered, 0 errors$/\1/p' "$work/loadgen.out")
test "$sent" -gt 100
test "$sent" = "$answered"
grep -q "latency µs from scheduled send: p50" "$work/loadgen.out"
