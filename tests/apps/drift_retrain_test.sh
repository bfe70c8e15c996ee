#!/bin/bash
# Drift's response, end to end (`--on-drift retrain`): the training stream is relabelled at
# event 60 000 (every label moves to the next class). The concept-drift alarm starts a
# retrain; its versions are mirrored beside the stable one (shadow), then answer a share as
# a canary. Clients label answers the new way, and the canary rule promotes the retrained
# model. After that, the answers are right again under the new labels. Nothing starts before
# the change.
# Usage: drift_retrain_test.sh RML WORKDIR
set -euo pipefail
rml=$1
work=$2
here=$(dirname "$0")
# Slow enough that the loop begins while clients are there to label: 120 000 events at
# 15 000/s (start_serving_rml.sh's rate) take about 8 s.
extra_args="--serve --epochs 2 --stream-drift-at 60000 --on-drift retrain --retrain-shadow-comparisons 100 --retrain-canary-percent 30 --trace $work/trace.jsonl"
. "$here/start_serving_rml.sh"
fail() {
  echo "FAIL: $*"
  grep -E '"(concept_drift|retrain_[a-z_]+|canary_[a-z_]+)"' "$work/trace.jsonl" | tail -20 || true
  tail -20 "$work/run.out"
  exit 1
}
client() { /usr/bin/python3 "$here/drift_client.py" "127.0.0.1:$http_port" "$work/state/control-key" "$@"; }
traced() { grep -q "\"kind\":\"$1\"" "$work/trace.jsonl" 2>/dev/null; }
waited=0
until traced retrain_requested; do
  (( waited++ < 600 )) || fail "no retrain began within 60 s"
  sleep 0.1
done
grep '"retrain_' "$work/trace.jsonl"
# The retrain began at the change, not before: the trainer went back from an offset past
# 60 000, and no concept-drift alarm on the training stream came before it.
grep '"retrain_started"' "$work/trace.jsonl" | grep -qE 'offset (6[0-9]{4}|[7-9][0-9]{4}|1[0-9]{5}) back to' ||
  fail "the trainer's retrain did not start after event 60000"
early=$(grep '"concept_drift"' "$work/trace.jsonl" | sed -nE 's/.*stream=training outcomes=([0-9]+) .*/\1/p' | awk '$1 < 60000' | wc -l)
(( early == 0 )) || fail "$early training alarms before the change"
# Clients label answers the new way until the canary decides (labelled answers on both lanes).
round=0
until traced retrain_promoted || traced retrain_rolled_back || traced retrain_abandoned; do
  (( round < 12 )) || fail "no canary decision after $round rounds of 300 labelled requests"
  client relabel 300 $((round * 300)) > "$work/round-$round.out"
  round=$((round + 1))
done
grep '"retrain_' "$work/trace.jsonl"
traced retrain_promoted || fail "the retrained model was not promoted"
(( $(/usr/bin/python3 "$here/metric.py" "127.0.0.1:$http_port" rml_retrains_total 'outcome="promoted"') == 1 )) ||
  fail "rml_retrains_total does not count the promotion"
# Served alone now, the retrained model answers the new labels.
client relabel 500 5000 > "$work/after.out"
cat "$work/after.out"
right=$(sed -nE 's/^relabel: ([0-9]+) of 500 right$/\1/p' "$work/after.out")
(( right >= 350 )) || fail "after the promotion $right of 500 answers were right under the new labels (bound 350: accuracy 0.7)"
# Serving's own measure agrees: the main lane's live accuracy on the labelled answers.
live=$(/usr/bin/python3 -c "
import sys, urllib.request
for line in urllib.request.urlopen('http://127.0.0.1:$http_port/metrics').read().decode().splitlines():
    if line.startswith('rml_live_accuracy{') and 'lane=\"main\"' in line: print(line.rsplit(' ', 1)[1])")
/usr/bin/python3 -c "import sys; sys.exit(0 if float('$live') >= 0.7 else 1)" || fail "the main lane's live accuracy is $live after the promotion (bound 0.7)"
echo "live accuracy of the main lane after the promotion: $live"
stop_process "$run" || fail "rml run exited with status $? when stopped"
echo "drift retrain: passed ($right of 500 right after the promotion)"
