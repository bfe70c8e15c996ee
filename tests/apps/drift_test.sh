#!/bin/bash
# Monitoring watches the model, end to end, against a real `rml run` and a webhook receiver:
#  1. training on a stream that is relabelled at event 60 000 (every label moves to the next
#     class): the concept-drift detectors on the trainer's predict-then-train outcomes raise
#     no alarm before the change and all three after it, within a stated delay; the same run
#     without the change (the stationary control) raises none;
#  2. serving, with clients that label its answers: true labels, then labels moved by one
#     class — the detectors on the feedback stream alarm after the change, not before;
#  3. request inputs like the training data, then inverted (255 − p): the input-drift alarm
#     is off, then on;
# every alarm is on /metrics, in the trace, and POSTed to the webhook as JSON.
# Usage: drift_test.sh RML WORKDIR
set -euo pipefail
rml=$1
work=$2
here=$(dirname "$0")
rm -rf "$work" && mkdir -p "$work"
. "$here/free_ports.sh"
hook_port=$(free_ports 1)
/usr/bin/python3 - "$hook_port" "$work/alerts.jsonl" > "$work/hook.log" 2>&1 <<'EOF' &
import http.server, sys
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[2], "ab") as out:
            out.write(body + b"\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
EOF
hook=$!
fail() {
  echo "FAIL: $*"
  tail -20 "$work/run.out" 2>/dev/null || true
  exit 1
}

# 1. The labelled stream drifts at event 60 000 of 120 000.
"$rml" run --data-dir "$work/train-state" --predict-port 0 --ingest-port 0 --http-port 0 --epochs 2 --stream-drift-at 60000 \
  --trace "$work/train.trace" --alert-webhook "http://127.0.0.1:$hook_port/alerts" > "$work/train.out" 2> "$work/train.err" ||
  fail "rml run with a drifting stream exited with status $?: $(tail -5 "$work/train.err")"
grep '"concept_drift"' "$work/train.trace" > "$work/train-alarms" || fail "no concept-drift alarm in the trace"
cat "$work/train-alarms"
# outcomes=N: how many training outcomes the detectors had seen (the trainer's event offset).
before=$(grep -c 'stream=training' "$work/train-alarms")
early=$(sed -nE 's/.*detector=([a-z_]+) stream=training outcomes=([0-9]+) .*/\2/p' "$work/train-alarms" | awk '$1 < 60000' | wc -l)
[ "$early" -eq 0 ] || fail "$early concept-drift alarms on the training stream before the change at 60000"
for detector in adwin page_hinkley ddm; do
  at=$(sed -nE "s/.*detector=$detector stream=training outcomes=([0-9]+) .*/\1/p" "$work/train-alarms" | sed -n 1p)  # sed -n 1p reads all: no SIGPIPE under pipefail
  [ -n "$at" ] || fail "$detector raised no alarm on the relabelled training stream"
  # Stated delays (bench/RESULTS.md): the error jumps from ~0.15 to ~0.9, far beyond the
  # 0.2 → 0.5 of the synthetic streams; each detector within 600 outcomes.
  (( at - 60000 <= 600 )) || fail "$detector alarmed $((at - 60000)) outcomes after the change (bound 600)"
  echo "training: $detector alarmed $((at - 60000)) outcomes after the change"
done
grep -q "drift: training_alarms=" "$work/train.err" || fail "rml run's report has no drift line"
(( before >= 3 )) || fail "fewer than three alarms"
for _ in $(seq 50); do [ -s "$work/alerts.jsonl" ] && break; sleep 0.1; done
grep -q '"alert":"drift","stream":"training","detector":"adwin"' "$work/alerts.jsonl" || fail "the webhook got no training alarm: $(cat "$work/alerts.jsonl" 2>/dev/null)"

# The control: the same two epochs without the change raise no alarm at all.
"$rml" run --data-dir "$work/control-state" --predict-port 0 --ingest-port 0 --http-port 0 --epochs 2 \
  --trace "$work/control.trace" > "$work/control.out" 2> "$work/control.err" ||
  fail "the control run exited with status $?: $(tail -5 "$work/control.err")"
if grep '"concept_drift"' "$work/control.trace"; then fail "the stationary control run raised the concept-drift alarms above"; fi
grep -q "drift: training_alarms=0 " "$work/control.err" || fail "the control run's report does not say 0 alarms: $(grep drift: "$work/control.err")"

# 2 and 3. Serving: feedback, then inputs, drift. Every request's row is sampled, and the
# input window is small, so that a few hundred requests decide.
extra_args="--serve --drift-sample-every 1 --drift-window-rows 512 --trace $work/serve.trace --alert-webhook http://127.0.0.1:$hook_port/alerts"
. "$here/start_serving_rml.sh"
background_pids="$background_pids $hook"
wait_for_output "test accuracy" 180
metric() { /usr/bin/python3 "$here/metric.py" "127.0.0.1:$http_port" "$@"; }
client() { /usr/bin/python3 "$here/drift_client.py" "127.0.0.1:$http_port" "$work/state/control-key" "$@"; }
client plain 1500 0
(( $(metric rml_drift_alarms_total 'stream="feedback"') == 0 )) || fail "feedback alarms on true labels: $(grep concept_drift "$work/serve.trace")"
(( $(metric rml_drift_outcomes_total 'stream="feedback"') >= 1400 )) || fail "the feedback outcomes did not reach monitoring"
(( $(metric rml_input_drift_alarm) == 0 )) || fail "an input-drift alarm on inputs like the training data"
(( $(metric rml_input_drift_rows_total) >= 1400 )) || fail "sampled inputs did not reach monitoring"
client relabel 600 1500
(( $(metric rml_drift_alarms_total 'stream="feedback"') >= 1 )) || fail "no feedback alarm after the labels moved"
grep '"concept_drift"' "$work/serve.trace" | grep -q 'stream=feedback' || fail "no feedback alarm in the trace"
client invert 600 2100
(( $(metric rml_input_drift_alarm) == 1 )) || fail "no input-drift alarm on inverted inputs"
grep '"input_drift"' "$work/serve.trace" || fail "no input-drift event in the trace"
for _ in $(seq 50); do grep -q '"stream":"inputs"' "$work/alerts.jsonl" && break; sleep 0.1; done
grep -q '"stream":"feedback"' "$work/alerts.jsonl" || fail "the webhook got no feedback alarm"
grep -q '"stream":"inputs","detector":"psi"' "$work/alerts.jsonl" || fail "the webhook got no input alarm"
(( $(metric rml_alerts_total 'outcome="sent"') >= 3 )) || fail "rml_alerts_total does not count the alerts sent"
# Every series the shipped alerting rules (docs/alerts/rml-rules.yml) read is on /metrics.
/usr/bin/python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:$http_port/metrics').read().decode())" > "$work/metrics.txt"
for series in $(grep -oE 'rml_[a-z_]+' "$here/../../docs/alerts/rml-rules.yml" | sort -u); do
  grep -q "^$series[{ ]" "$work/metrics.txt" || fail "$series, which docs/alerts/rml-rules.yml reads, is not on /metrics"
done
stop_process "$run" || fail "rml run exited with status $? when stopped"
echo "drift: passed"
