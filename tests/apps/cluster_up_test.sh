#!/bin/bash
# rml cluster up: etcd and three nodes on loopback come up, rml status lists them, a deployed
# topology is placed on them and each runs its part, and SIGTERM stops every process it started (etcd's port closes,
# no node is left running). A second cluster up on the same etcd port is refused, saying why.
set -euo pipefail
rml=$1
topology=$2
. "$(dirname "$0")/free_ports.sh"
work=$(mktemp -d)
up=
cleanup() {
  [[ -n "$up" ]] && kill -9 "$up" 2>/dev/null || true
  pkill -9 -f -- "--etcd http://127.0.0.1:$etcd_port" 2>/dev/null || true
  pkill -9 -f -- "--listen-client-urls=http://127.0.0.1:$etcd_port" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAILED: $*" >&2
  for log in "$work"/up.log "$work"/cluster/*.log; do [[ -f "$log" ]] && { echo "--- $log" >&2; tail -20 "$log" >&2; }; done
  exit 1
}
# Ports held together while chosen, so they differ (the kernel often hands out neighbours:
# etcd's peer port is given, not left to be the client port + 1). The nodes pick their own.
ports=$(free_ports 2)
etcd_port=${ports% *}
peer_port=${ports#* }
etcd=http://127.0.0.1:$etcd_port
"$rml" cluster up --nodes 3 --data-dir "$work/cluster" --etcd-port "$etcd_port" --etcd-peer-port "$peer_port" --base-port 0 --http-base-port 0 \
  --lease-ttl 2 > "$work/up.log" 2>&1 &
up=$!
deadline=$((SECONDS + 60))
until grep -q "rml cluster up: etcd at $etcd and 3 nodes on loopback" "$work/up.log"; do
  kill -0 "$up" 2>/dev/null || fail "rml cluster up exited early"
  ((SECONDS < deadline)) || fail "rml cluster up did not come up within 60 s"
  sleep 0.2
done
status=$("$rml" status --etcd "$etcd")
grep -q "nodes: 3$" <<< "$status" || fail "status does not list 3 nodes: $status"
grep -qE "─ node-1  127\.0\.0\.1:[0-9]+ .*labels role=data$" <<< "$status" || fail "node-1 is not listed with role=data: $status"

# A second one on the same port is refused; one whose etcd cannot start says why.
set +e
message=$("$rml" cluster up --nodes 1 --data-dir "$work/other" --etcd-port "$etcd_port" 2>&1)
code=$?
set -e
((code == 1)) && grep -q "an etcd already answers at $etcd" <<< "$message" || fail "a second cluster up: exit $code, $message"
set +e
message=$("$rml" cluster up --nodes 1 --data-dir "$work/third" --etcd-port "$(free_ports 1)" --etcd-peer-port "$etcd_port" 2>&1)
code=$?
set -e
((code == 1)) && grep -q "etcd exited at once; the last line of its log" <<< "$message" && grep -q "address already in use" <<< "$message" ||
  fail "a cluster up whose etcd cannot bind: exit $code, $message"

"$rml" deploy "$topology" --etcd "$etcd"
deadline=$((SECONDS + 15))
until "$rml" status --etcd "$etcd" | grep -q "node-1: ingest/0 feature/0 trainer/0 registry/0"; do
  ((SECONDS < deadline)) || fail "the topology was not placed: $("$rml" status --etcd "$etcd")"
  sleep 0.2
done
# Each node runs what is placed on it, its state in the cluster's directory.
deadline=$((SECONDS + 30))
until grep -q "rml node node-1: serves topology edge-serving, state in $work/cluster/node-1" "$work/cluster/node-1.log" &&
      grep -q "rml node node-1: runs feature, ingest, registry, trainer of topology edge-serving" "$work/cluster/node-1.log" &&
      grep -q "rml node node-2: runs serving" "$work/cluster/node-2.log" &&
      grep -q "rml node node-3: runs serving" "$work/cluster/node-3.log"; do
  ((SECONDS < deadline)) || fail "the nodes did not start what was placed on them"
  sleep 0.2
done

kill -TERM "$up"
wait "$up" || fail "rml cluster up did not exit 0 on SIGTERM"
up=
grep -q "stopping 4 processes" "$work/up.log" || fail "cluster up did not stop its 4 processes"
! "$rml" status --etcd "$etcd" > /dev/null 2>&1 || fail "etcd still answers after cluster up stopped"
! pgrep -f -- "--etcd $etcd" > /dev/null || fail "a node outlived cluster up"
echo "cluster up: passed"
