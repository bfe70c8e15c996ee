#!/bin/sh
# Debian's Prometheus server scrapes a running rml's /metrics (every second) while load runs
# over HTTP and ZeroMQ; prometheus_scrape_test.py then checks the series through its API.
# Usage: prometheus_scrape_test.sh RML WORKDIR
set -eu
rml=$1
work=$2
extra_args="--serve"
. "$(dirname "$0")/start_serving_rml.sh"
prometheus_port=$(free_ports 1)
cat > "$work/prometheus.yml" <<CONFIG
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: rml
    static_configs:
      - targets: ["127.0.0.1:$http_port"]
CONFIG
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
  --web.listen-address="127.0.0.1:$prometheus_port" > "$work/prometheus.out" 2>&1 &
scraper=$!
background_pids="$background_pids $scraper"
# Once training is over (the model version stays put), the ZeroMQ load repeats the first test
# rows the HTTP load sent: the prediction cache answers those.
wait_for_output "serving model" 300
"$rml" loadgen --address "http://127.0.0.1:$http_port" --model mlp --rate 300 --duration 2 > "$work/loadgen-http.out"
"$rml" loadgen --address "tcp://127.0.0.1:$predict_port" --rate 300 --duration 1 > "$work/loadgen-zmq.out"
cat "$work/loadgen-http.out" "$work/loadgen-zmq.out"
# What the series must at least count follows from what the clients saw answered, not from
# how fast the machine was.
http_answered=$(sed -n 's/.*, \([0-9]*\) answered, .*/\1/p' "$work/loadgen-http.out")
zmq_answered=$(sed -n 's/.*, \([0-9]*\) answered, .*/\1/p' "$work/loadgen-zmq.out")
status=0
if [ "$http_answered" -lt 1 ] || [ "$zmq_answered" -lt 1 ]; then
  echo "FAIL: no prediction answered (HTTP $http_answered, ZeroMQ $zmq_answered)"; status=1
fi
[ $status -ne 0 ] || /usr/bin/python3 "$(dirname "$0")/prometheus_scrape_test.py" "127.0.0.1:$prometheus_port" "$http_answered" "$zmq_answered" || status=$?
if ! kill -0 "$scraper" 2>/dev/null; then
  echo "FAIL: prometheus exited during the test:"; tail -20 "$work/prometheus.out"; status=1
fi
stop_process "$scraper" || true
stop_process "$run" || { echo "FAIL: rml run exited with status $?:"; tail -20 "$work/run.out"; status=1; }
[ $status -eq 0 ] || tail -20 "$work/prometheus.out"
exit $status
