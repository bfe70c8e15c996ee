#!/bin/sh
# SIGTERM under load: while open-loop load runs over ZeroMQ and HTTP, `rml run --serve` gets
# SIGTERM, drains and exits 0. Every request it admitted is answered (rml reports 0
# unanswered, and no client sees an error other than the refusals of a server that is
# draining or gone: not_ready / HTTP 503, or no answer / no connection once the sockets
# closed).
# Usage: drain_test.sh RML WORKDIR
set -eu
rml=$1
work=$2
predict_port=22556
ingest_port=22555
http_port=22800
extra_args="--serve"
. "$(dirname "$0")/start_serving_rml.sh"
"$rml" loadgen --address "tcp://127.0.0.1:$predict_port" --rate 3000 --duration 4 --timeout-ms 2000 > "$work/zmq.out" &
zmq_load=$!
"$rml" loadgen --address "http://127.0.0.1:$http_port" --model mlp --rate 1000 --duration 4 --timeout-ms 2000 --connections 8 > "$work/http.out" &
http_load=$!
sleep 2
kill -TERM "$run"
status=0
wait "$run" || status=$?
wait "$zmq_load"
wait "$http_load"
cat "$work/zmq.out" "$work/http.out"
tail -3 "$work/run.out"
test $status -eq 0
grep -q "drained serving, 0 requests unanswered" "$work/run.out"
for out in "$work/zmq.out" "$work/http.out"; do
  answered=$(sed -n 's/.*, \([0-9]*\) answered, .*/\1/p' "$out")
  test "$answered" -gt 500
  if grep "^errors" "$out" | grep -Ev "^errors (not_ready|no_answer|http_503|connection_lost|no_connection):"; then
    echo "FAIL: $out has errors other than a draining server's refusals"
    exit 1
  fi
done
echo "drain under load: every admitted request answered"
