#!/bin/sh
# SIGTERM under load: while open-loop load runs over ZeroMQ and HTTP, `rml run --serve` gets
# SIGTERM, drains and exits 0. Every request it admitted is answered (rml reports 0
# unanswered; the clients received at least every answer serving had counted when the signal
# was sent), and no client sees an error other than a refusal at admission (overloaded, when
# a loaded machine falls behind the offered load), the refusals of a server that is draining
# (not_ready / HTTP 503), or no answer / no connection once the sockets closed. What is expected follows from what the test observed, not from the machine's speed.
# Usage: drain_test.sh RML WORKDIR
set -eu
rml=$1
work=$2
extra_args="--serve"
. "$(dirname "$0")/start_serving_rml.sh"
metric() { /usr/bin/python3 "$(dirname "$0")/metric.py" "127.0.0.1:$http_port" "$@"; }
"$rml" loadgen --address "tcp://127.0.0.1:$predict_port" --rate 3000 --duration 20 --timeout-ms 5000 > "$work/zmq.out" &
zmq_load=$!
"$rml" loadgen --address "http://127.0.0.1:$http_port" --model mlp --rate 1000 --duration 20 --timeout-ms 5000 --connections 8 > "$work/http.out" &
http_load=$!
background_pids="$background_pids $zmq_load $http_load"
# The signal goes once both interfaces have had answers, while the load still runs (a slow
# machine, or a sanitizer build, takes seconds before the first HTTP request leaves).
since=$(date +%s)
until [ "$(metric rml_http_infer_latency_seconds_count)" -ge 50 ] && [ "$(metric rml_requests_total 'outcome="ok"')" -ge 200 ]; do
  if [ $(( $(date +%s) - since )) -ge 18 ]; then
    echo "FAIL: the load was not answered over both interfaces within 18 s"; tail -5 "$work/run.out"; exit 1
  fi
  sleep 0.1
done
answered_before_signal=$(metric rml_requests_total 'outcome="ok"')
kill -TERM "$run"
status=0
wait "$run" || status=$?
wait "$zmq_load"
wait "$http_load"
cat "$work/zmq.out" "$work/http.out"
tail -3 "$work/run.out"
echo "serving had answered $answered_before_signal requests when SIGTERM was sent"
test $status -eq 0 || { echo "FAIL: rml run exited with status $status"; exit 1; }
grep -q "drained serving, 0 requests unanswered" "$work/run.out" || { echo "FAIL: rml left requests unanswered"; exit 1; }
clients_answered=0
for out in "$work/zmq.out" "$work/http.out"; do
  answered=$(sed -n 's/.*, \([0-9]*\) answered, .*/\1/p' "$out")
  test "$answered" -ge 1 || { echo "FAIL: $out: no answer at all"; exit 1; }
  clients_answered=$((clients_answered + answered))
  if grep "^errors" "$out" | grep -Ev "^errors (overloaded|not_ready|no_answer|http_503|connection_lost|no_connection):"; then
    echo "FAIL: $out has errors other than a draining server's refusals"
    exit 1
  fi
done
if [ "$clients_answered" -lt "$answered_before_signal" ]; then
  echo "FAIL: the clients received $clients_answered answers, fewer than the $answered_before_signal serving had sent"
  exit 1
fi
echo "drain under load: every admitted request answered"
