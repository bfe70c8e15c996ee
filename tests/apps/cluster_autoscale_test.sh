#!/bin/bash
# Serving scales across nodes under load and back when it ends: a data node and two serving
# nodes on a real etcd, serving deployed with replicas {min: 1, max: 2}. Load sent through
# the data node (it forwards to serving) backs up the one replica's queue; the nodes report
# their load to etcd, the controller adds the second replica on the other serving node, and
# removes it once the load is light again. Every prediction is answered, none fails, while
# replicas are added and removed.
set -euo pipefail
rml=$1
topology=$2
. "$(dirname "$0")/start_etcd.sh"

read -r data_http edge1_http edge2_http <<< "$(free_ports 3)"
start_node() {  # NAME LABELS HTTP_PORT
  "$rml" node --name "$1" --etcd "$etcd" --labels "$2" --cores 8 --lease-ttl 2 --data-dir "$work/$1-state" --http-port "$3" > "$work/$1.log" 2>&1 &
  pids+=($!)
}
start_node data role=data "$data_http"
within 10 grep -q "is the placement controller" "$work/data.log" || fail "the first node did not become the controller"
start_node edge-1 role=serving "$edge1_http"
start_node edge-2 role=serving "$edge2_http"
within 10 eval 'status | grep -q "nodes: 3$"' || fail "three nodes did not join"
"$rml" deploy "$topology" --etcd "$etcd"
within 10 eval 'status | grep -q "scaling serving: 1 replicas wanted (1..2, chosen by its minimum)"' || fail "serving did not start at its minimum: $(status)"
serving_nodes() { grep -l "runs serving of topology autoscaled-serving" "$work"/edge-*.log 2>/dev/null | wc -l; }
within 30 eval '(( $(serving_nodes) == 1 ))' || fail "one serving node did not start serving"

served_version() { python3 "$(dirname "$0")/served_version.py" "$1"; }
within 120 eval '(( $(served_version "$data_http") >= 1 ))' || fail "no model was served through the data node"

# Load beyond one replica: the controller adds the second.
# 1500 requests/s of 12 rows, beside the trainer: more than one replica's batcher keeps
# without a backlog on two shared cores, within what the machine computes (clients allow 4 s).
"$rml" loadgen --address "http://127.0.0.1:$data_http" --rate 1500 --rows 12 --binary --duration 14 --connections 64 --timeout-ms 4000 > "$work/loadgen.log" 2>&1 &
load=$!
pids+=($load)
within 20 grep -q "rml node data: scales serving from 1 to 2 replicas" "$work/data.log" || fail "serving was not scaled up under load"
within 10 eval 'status | grep -q "scaling serving: 2 replicas wanted (1..2, chosen by the autoscaler)"' || fail "status does not show the autoscaled count: $(status)"
within 30 eval '(( $(serving_nodes) == 2 ))' || fail "the second serving node did not start serving"
# Under the same load, two replicas' compute (each about a third busy) is too much for one
# (down_utilization 0.5): no scale-down while it lasts.
sleep 4
! grep -q "rml node data: scales serving from 2 to 1" "$work/data.log" || fail "serving was scaled down under the load that scaled it up"
wait "$load" 2>/dev/null || true
cat "$work/loadgen.log"
# Every request answered, none failed, while the second replica was placed, started and found.
every_answered() {  # LOADGEN_LOG: sent = answered, no errors
  read -r sent answered errors <<< "$(sed -nE 's/^sent ([0-9]+) requests .*, ([0-9]+) answered, ([0-9]+) errors$/\1 \2 \3/p' "$1")"
  (( sent > 0 && answered == sent && errors == 0 ))
}
every_answered "$work/loadgen.log" || fail "requests went unanswered or failed while serving scaled up: $(cat "$work/loadgen.log")"

# Light load: back to one replica; the node that stops drains first, the other keeps
# serving, and every request is answered: one that reaches the draining replica, or the lane
# it stops, before the forwarding node has moved is sent again by that node's ledger — to
# another node (request_ledger.hpp), not back to the one draining; one that arrives while
# the name moves (CAF's registry erases, then puts) waits in the ledger for the new target.
"$rml" loadgen --address "http://127.0.0.1:$data_http" --rate 100 --rows 8 --binary --duration 12 > "$work/light.log" 2>&1 &
light=$!
pids+=($light)
within 30 grep -q "rml node data: scales serving from 2 to 1 replicas" "$work/data.log" || fail "serving was not scaled down when idle"
wait "$light" 2>/dev/null || true
cat "$work/light.log"
every_answered "$work/light.log" || fail "requests went unanswered or failed while serving scaled down: $(cat "$work/light.log")"
grep "rml node data: scales serving" "$work/data.log"
within 10 eval 'status | grep -q "scaling serving: 1 replicas wanted"' || fail "status does not show one replica: $(status)"
(( $(served_version "$data_http") >= 1 )) || fail "predictions through the data node stopped after scaling down"
echo "cluster autoscale: passed"
