#!/bin/sh
# Debian's Prometheus server scrapes a running rml's /metrics (every second) while load runs
# over HTTP and ZeroMQ; prometheus_scrape_test.py then checks the series through its API.
# Usage: prometheus_scrape_test.sh RML WORKDIR
set -eu
rml=$1
work=$2
predict_port=23556
ingest_port=23555
http_port=23800
prometheus_port=23090
extra_args="--serve"
. "$(dirname "$0")/start_serving_rml.sh"
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
# Once training is over (the model version stays put), the ZeroMQ load repeats the first test
# rows the HTTP load sent: the prediction cache answers those.
for attempt in $(seq 1 600); do grep -q "serving model" "$work/run.out" && break; sleep 0.1; done
"$rml" loadgen --address "http://127.0.0.1:$http_port" --model mlp --rate 300 --duration 2 > "$work/loadgen-http.out"
"$rml" loadgen --address "tcp://127.0.0.1:$predict_port" --rate 300 --duration 1 > "$work/loadgen-zmq.out"
status=0
/usr/bin/python3 "$(dirname "$0")/prometheus_scrape_test.py" "127.0.0.1:$prometheus_port" || status=$?
kill -TERM "$scraper" "$run"
wait "$run" || status=$?
wait "$scraper" || true
[ $status -eq 0 ] || tail -20 "$work/prometheus.out"
exit $status
