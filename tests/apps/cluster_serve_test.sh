#!/bin/bash
# A topology split over two `rml node`s and a real etcd on loopback: the data path on one,
# serving on the other. The trainer on `data` publishes to the registry there, the registry
# pushes each version over BASP to serving on `edge`, and predictions asked of edge's HTTP
# port are answered with them. A node that runs nothing of serving forwards predictions to
# serving where it runs. Undeploy stops the components on every node.
set -euo pipefail
rml=$1
topology=$2
. "$(dirname "$0")/start_etcd.sh"

read -r data_http edge_http <<< "$(free_ports 2)"
start_node() {  # NAME LABELS HTTP_PORT
  "$rml" node --name "$1" --etcd "$etcd" --labels "$2" --cores 8 --lease-ttl 2 --data-dir "$work/$1-state" --http-port "$3" > "$work/$1.log" 2>&1 &
  pids+=($!)
  eval "pid_$1=$!"
}
start_node data role=data "$data_http"
within 10 grep -q "is the placement controller" "$work/data.log" || fail "the first node did not become the controller"
start_node edge role=serving "$edge_http"
within 10 eval 'status | grep -q "nodes: 2$"' || fail "two nodes did not join"
"$rml" deploy "$topology" --etcd "$etcd"

within 30 grep -q "rml node data: runs feature, ingest, registry, source, trainer of topology split-pipeline" "$work/data.log" ||
  fail "data did not start the data path"
within 30 grep -q "rml node edge: runs monitor, serving of topology split-pipeline" "$work/edge.log" || fail "edge did not start serving"
within 10 grep -q "rml node edge: found registry on 127.0.0.1:" "$work/edge.log" || fail "edge did not find the registry on data"

served_version() { python3 "$(dirname "$0")/served_version.py" "$1"; }  # HTTP_PORT: the version served, 0 while none
within 120 eval '(( $(served_version "$edge_http") >= 1 ))' || fail "edge never served a model trained on data"
# Training goes on on data: each version reaches edge, and the controller (data) moves etcd's
# model pointer with them; once training is over both rest on the last one (several were
# published: one per 100 steps).
latest_published() { status | sed -n 's/.*model mlp: latest v\([0-9]*\)$/\1/p'; }
within 120 eval '[ -n "$(latest_published)" ] && (( $(latest_published) >= 3 )) && (( $(served_version "$edge_http") == $(latest_published) ))' ||
  fail "edge serves v$(served_version "$edge_http"), the model pointer is at v$(latest_published): $(status)"
grep -q "rml node data: model mlp: version pointer at v" "$work/data.log" || fail "data did not say it moved the model pointer"
# data runs no serving: its HTTP endpoint forwards to serving on edge, once its resolver has
# found edge's serving ready (it asks again every 250 ms; a request without a deadline, as
# this one, is not held waiting for it). On a fast machine training is over within seconds
# and this comes right after edge's first model.
within 10 eval '(( $(served_version "$data_http") >= 1 ))' || fail "data's HTTP port did not answer through serving on edge"

# The dashboard's view of the cluster: every node's /metrics says who the members are and
# where each replica is placed.
metric() { python3 "$(dirname "$0")/metric.py" "127.0.0.1:$1" "$2" "$3"; }
for port in "$data_http" "$edge_http"; do
  within 10 eval '(( $(metric '"$port"' rml_cluster_member "node=\"data\"") == 1 && $(metric '"$port"' rml_cluster_member "node=\"edge\"") == 1 ))' ||
    fail "the node on port $port does not export both members"
  (( $(metric "$port" rml_cluster_replica 'component="serving",replica="0",node="edge"') == 1 )) || fail "the node on port $port does not export serving's placement on edge"
  (( $(metric "$port" rml_cluster_replica 'component="trainer",replica="0",node="data"') == 1 )) || fail "the node on port $port does not export the trainer's placement on data"
done

"$rml" undeploy --etcd "$etcd"
within 30 grep -q "rml node edge: nothing deployed: stopping monitor, serving" "$work/edge.log" || fail "edge did not stop on undeploy"
within 30 grep -q "rml node data: nothing deployed: stopping" "$work/data.log" || fail "data did not stop on undeploy"
echo "cluster serve: passed"
