#!/bin/sh
# rml loadgen against a real `rml run`: open-loop load is sent for a second, every request is
# answered (prediction or explicit error) and the latency percentiles are printed.
# Usage: loadgen_test.sh RML WORKDIR
set -eu
rml=$1
work=$2
rm -rf "$work" && mkdir -p "$work"
"$rml" run --data-dir "$work/state" --rate 15000 --predict-port 27556 --ingest-port 27555 > "$work/run.out" 2>&1 &
run=$!
for attempt in $(seq 1 100); do
  if "$rml" predict --address tcp://127.0.0.1:27556 --count 1 --timeout-ms 200 2>/dev/null | grep -q "model v"; then break; fi
  sleep 0.1
done
"$rml" loadgen --address tcp://127.0.0.1:27556 --rate 500 --duration 1 > "$work/loadgen.out"
cat "$work/loadgen.out"
wait "$run"
sent=$(sed -n 's/^sent \([0-9]*\) requests.*/\1/p' "$work/loadgen.out")
answered=$(sed -n 's/.*, \([0-9]*\) answered$/\1/p' "$work/loadgen.out")
test "$sent" -gt 100
test "$sent" = "$answered"
grep -q "latency µs from scheduled send: p50" "$work/loadgen.out"
