#!/bin/bash
# SIGKILL under load: three `rml node`s and a real etcd on loopback, the data path on
# `data`, a serving replica on each of e1 and e2. A client streams predictions at data's
# prediction socket (data runs no serving: it forwards them over BASP to one of the serving
# nodes). That node is killed with SIGKILL mid-load: the requests it held are sent again to
# the other by data's request ledger, the resolver moves the name at once, and every request
# is answered — none lost, none failed. After the lost node's lease expires, the placement
# has no second serving node and says so; restarted under its name, the node rejoins and
# takes its replica again.
set -euo pipefail
rml=$1
topology=$2
. "$(dirname "$0")/start_etcd.sh"

read -r data_http data_predict e1_http e2_http <<< "$(free_ports 4)"
start_node() {  # NAME LABELS HTTP_PORT [PREDICT_PORT]
  "$rml" node --name "$1" --etcd "$etcd" --labels "$2" --cores 8 --lease-ttl 2 --data-dir "$work/$1-state" --http-port "$3" \
    --predict-port "${4:-0}" >> "$work/$1.log" 2>&1 &
  pids+=($!)
  eval "pid_$1=$!"
}
start_node data role=data "$data_http" "$data_predict"
within 10 grep -q "is the placement controller" "$work/data.log" || fail "the first node did not become the controller"
start_node e1 role=serving "$e1_http"
within 10 eval 'status | grep -q "nodes: 2$"' || fail "e1 did not join"
start_node e2 role=serving "$e2_http"
within 10 eval 'status | grep -q "nodes: 3$"' || fail "e2 did not join"
"$rml" deploy "$topology" --etcd "$etcd"
within 30 grep -q "rml node e1: runs .*serving" "$work/e1.log" || fail "e1 did not start serving"
within 30 grep -q "rml node e2: runs .*serving" "$work/e2.log" || fail "e2 did not start serving"
within 30 grep -q "rml node data: found serving on 127.0.0.1:" "$work/data.log" || fail "data did not find serving"

served_version() { python3 "$(dirname "$0")/served_version.py" "$1"; }  # HTTP_PORT: the version served, 0 while none
within 120 eval '(( $(served_version "$e1_http") >= 1 && $(served_version "$e2_http") >= 1 ))' || fail "the serving nodes never got a model"
# The serving node data forwards to (the resolver's choice: e1 preferred, e2 when e1's
# serving was not up yet when data first looked): that one is killed.
preferred=$(sed -n 's/.*rml node data: found serving on \(127\.0\.0\.1:[0-9]*\).*/\1/p' "$work/data.log" | tail -1)
victim=$(status | sed -n "s/.*─ \(e[12]\)  $preferred .*/\1/p")
[ -n "$victim" ] || fail "data forwards to $preferred, which is neither e1 nor e2: $(status)"
survivor=$([ "$victim" = e1 ] && echo e2 || echo e1)
eval "victim_pid=\$pid_$victim victim_http=\$${victim}_http"

"$rml" loadgen --address "tcp://127.0.0.1:$data_predict" --rate 300 --duration 6 --timeout-ms 4000 > "$work/loadgen.out" &
load=$!
sleep 2
kill -9 "$victim_pid"
wait "$load" || fail "rml loadgen failed: $(cat "$work/loadgen.out")"
cat "$work/loadgen.out"
sent=$(sed -n 's/^sent \([0-9]*\) requests.*/\1/p' "$work/loadgen.out")
answered=$(sed -n 's/.*, \([0-9]*\) answered, 0 errors$/\1/p' "$work/loadgen.out")
((sent > 1000)) || fail "only $sent requests sent"
[ "$sent" = "$answered" ] || fail "$victim killed under load: $sent requests sent, not all answered without error: $(cat "$work/loadgen.out")"
survivor_address=$(status | sed -n "s/.*─ $survivor  \(127\.0\.0\.1:[0-9]*\).*/\1/p")
grep -q "rml node data: found serving on $survivor_address" "$work/data.log" || fail "data never moved to $survivor ($survivor_address)"

# The lost node's lease expires: its replica has nowhere to go (anti-affinity), and the
# status says so.
within 15 eval 'status | grep -q "components.serving: replica"' || fail "the lost replica was not reported unplaced: $(status)"
# Restarted under its name, it rejoins and runs serving again.
mv "$work/$victim.log" "$work/$victim-before.log"
start_node "$victim" role=serving "$victim_http"
within 30 grep -q "rml node $victim: runs .*serving" "$work/$victim.log" || fail "$victim did not run serving again after rejoining"
within 60 eval '(( $(served_version "$victim_http") >= 1 ))' || fail "the restarted $victim did not get a model"
echo "cluster failover: passed"
