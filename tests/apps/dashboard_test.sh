#!/bin/bash
# GET /dashboard in headless Chromium against a real `rml run --serve` under load, with
# labelled feedback (live accuracy) and inputs that drift (input-drift alarm marked): the
# charts draw and update, and the screenshot is not blank (dashboard_test.py).
# Usage: dashboard_test.sh RML WORKDIR
set -euo pipefail
rml=$1
work=$2
here=$(dirname "$0")
extra_args="--serve --drift-sample-every 1 --drift-window-rows 512"
. "$here/start_serving_rml.sh"
wait_for_output "serving model" 180
# The page and its script are served by rml itself.
/usr/bin/python3 -c "
import urllib.request, sys
page = urllib.request.urlopen('http://127.0.0.1:$http_port/dashboard').read().decode()
assert '<canvas id=\"throughput\"' in page, 'no throughput chart on the page'
script = urllib.request.urlopen('http://127.0.0.1:$http_port/dashboard/chart.js').read()
assert b'Chart.js v3' in script[:200], 'not Chart.js'
"
# Load for the page to draw while it looks: predictions, labelled answers, drifting inputs.
"$rml" loadgen --address "http://127.0.0.1:$http_port" --model mlp --rate 500 --duration 25 > "$work/loadgen.out" 2>&1 &
background_pids="$background_pids $!"
( /usr/bin/python3 "$here/drift_client.py" "127.0.0.1:$http_port" "$work/state/control-key" plain 400 0 &&
  /usr/bin/python3 "$here/drift_client.py" "127.0.0.1:$http_port" "$work/state/control-key" invert 600 400 ) > "$work/clients.out" 2>&1 &
clients=$!
background_pids="$background_pids $clients"
/usr/bin/python3 "$here/dashboard_test.py" "127.0.0.1:$http_port" "$work/dashboard.png"
wait "$clients" || { echo "FAIL: the drifting client failed: $(cat "$work/clients.out")"; exit 1; }
stop_process "$run" || { echo "FAIL: rml run exited with status $?"; exit 1; }
echo "dashboard: passed"
