#!/bin/bash
# rml deploy, scale and undeploy against three `rml node`s and a real etcd on loopback: the
# oldest node becomes the placement controller and places the topology on the members by
# their labels; a scale adds a replica where it fits; a serving node killed with SIGKILL has
# its replica moved to a surviving serving node once its lease expires, and nothing else
# moves; the controller killed, another node takes over, says why what needs role=data
# cannot be placed, and leaves the rest where it is; undeploy clears it; mistakes are
# refused by name.
set -euo pipefail
rml=$1
topology=$2
. "$(dirname "$0")/start_etcd.sh"

start_node() {  # NAME LABELS CORES
  "$rml" node --name "$1" --etcd "$etcd" --labels "$2" --cores "$3" --lease-ttl 2 > "$work/$1.log" 2>&1 &
  pids+=($!)
  eval "pid_$1=$!"
}
start_node data role=data 8
within 10 grep -q "is the placement controller" "$work/data.log" || fail "the first node did not become the controller"
start_node e1 role=serving 2
start_node e2 role=serving 2
start_node e3 role=serving 2
within 10 eval 'status | grep -q "nodes: 4$"' || fail "four nodes did not join"
placed_on() { grep -E "├─ $1:|└─ $1:" <<< "$(status)"; }
has_placement() { placed_on "$1" | grep -q -- "$2"; }

"$rml" deploy "$topology" --etcd "$etcd"
within 10 has_placement data "ingest/0 feature/0 trainer/0 registry/0" || fail "the data path was not placed on data: $(status)"
within 10 has_placement e1 "serving/0" || fail "serving/0 not on e1: $(status)"
has_placement e2 "serving/1" || fail "serving/1 not on e2: $(status)"
grep -q "controller: data (epoch" <<< "$(status)" || fail "status does not name the controller: $(status)"

"$rml" scale serving 3 --etcd "$etcd"
within 10 has_placement e3 "serving/2" || fail "the third serving replica was not placed on e3: $(status)"

# Back to 2, then e1 is lost: serving/0 moves to e3, the serving node without a replica.
"$rml" scale serving 2 --etcd "$etcd"
within 10 eval '! status | grep -q "serving/2"' || fail "scaling back did not remove serving/2: $(status)"
kill -9 "$pid_e1"
within 15 has_placement e3 "serving/0" || fail "serving/0 did not move from the lost e1 to e3: $(status)"
has_placement e2 "serving/1" || fail "serving/1 moved: $(status)"
has_placement data "ingest/0 feature/0 trainer/0 registry/0" || fail "the data path moved: $(status)"

# The controller is lost: another node leads; the data path has nowhere to go and waits,
# saying why; serving stays where it is.
kill -9 "$pid_data"
within 15 eval 'status | grep -qE "controller: e[23] "' || fail "no node took over as controller: $(status)"
within 10 eval 'status | grep -q "not placed: .*components.ingest: replica 1 of 1 fits no node"' ||
  fail "the new controller did not say why ingest cannot be placed: $(status)"
has_placement e2 "serving/1" || fail "serving/1 moved when the controller changed: $(status)"
has_placement e3 "serving/0" || fail "serving/0 moved when the controller changed: $(status)"

# Mistakes are refused, naming them.
set +e
message=$("$rml" scale serving 9 --etcd "$etcd" 2>&1)
code=$?
set -e
((code == 2)) && grep -q "scale serving to 9: the topology allows 2..4" <<< "$message" || fail "scale beyond max: exit $code, $message"
set +e
message=$("$rml" deploy "$work/missing.yaml" --etcd "$etcd" 2>&1)
code=$?
set -e
((code == 2)) && grep -q "missing.yaml: cannot open the topology file" <<< "$message" || fail "a missing file: exit $code, $message"

"$rml" undeploy --etcd "$etcd"
within 10 eval 'status | grep -q "topology: none deployed"' || fail "undeploy did not clear the placement: $(status)"
echo "cluster deploy: passed"
