#!/bin/bash
# `rml node` and `rml status` against a real etcd that this test starts on loopback: two
# nodes join and are listed with their labels; a second process under a live node's name
# waits instead of joining; a node killed with SIGKILL drops out when its lease expires and,
# restarted under its name, rejoins with a new incarnation; a node stopped with SIGTERM
# leaves at once (and the waiting one takes its name); bad flags and an etcd that does not
# answer are refused, naming what was wrong.
set -euo pipefail
rml=$1
. "$(dirname "$0")/start_etcd.sh"

nodes_are() { grep -q "nodes: $1\$" <<< "$(status)"; }
incarnation_of() { grep -E "─ $1 " <<< "$(status)" | sed -E 's/.*incarnation ([0-9]+).*/\1/'; }

"$rml" node --name a --etcd "$etcd" --labels zone=a,gpu=0 --cores 2 --lease-ttl 2 > "$work/a.log" 2>&1 &
a=$!
pids+=($a)
"$rml" node --name b --etcd "$etcd" --listen 127.0.0.1:0 --lease-ttl 2 > "$work/b.log" 2>&1 &
b=$!
pids+=($b)
within 10 nodes_are 2 || fail "two nodes did not both join"
grep -E "─ a  127\.0\.0\.1:[0-9]+  incarnation [0-9]+  cores 2  gpus 0  labels gpu=0,zone=a\$" <<< "$(status)" > /dev/null ||
  fail "rml status does not show node a with its address, cores and labels: $(status)"
first_a=$(incarnation_of a)

# A second process under b's name waits: no two nodes act under one name.
"$rml" node --name b --etcd "$etcd" --lease-ttl 2 > "$work/b2.log" 2>&1 &
b2=$!
pids+=($b2)
within 5 grep -q "waiting to join: member name b is held by a live member" "$work/b2.log" || fail "a second node b did not wait"
nodes_are 2 || fail "a second node b was listed"

# a killed outright: gone once its lease expires (etcd's minimum TTL is 2 s).
kill -9 "$a"
within 10 nodes_are 1 || fail "node a, killed, was still listed after 10 s"
! grep -qE "─ a " <<< "$(status)" || fail "node a, killed, is still listed"
# Restarted under its name: a new incarnation.
"$rml" node --name a --etcd "$etcd" --lease-ttl 2 > "$work/a2.log" 2>&1 &
pids+=($!)
within 10 nodes_are 2 || fail "node a did not rejoin"
second_a=$(incarnation_of a)
((second_a > first_a)) || fail "node a rejoined with incarnation $second_a, not above $first_a"

# b stopped with SIGTERM: leaves at once (its lease revoked); the waiting b2 takes the name.
kill -TERM "$b"
wait "$b" || fail "node b did not exit 0 on SIGTERM"
grep -q "left cluster rml" "$work/b.log" || fail "node b did not say it left"
within 5 grep -q "joined cluster rml" "$work/b2.log" || fail "the waiting node b did not join once b left"
within 5 nodes_are 2 || fail "after b left and b2 joined, not two nodes"

# Mistakes are refused, naming them.
set +e
message=$("$rml" node --name c --etcd "$etcd" --labels zone 2>&1)
code=$?
set -e
((code == 2)) && grep -q "labels 'zone': expected KEY=VALUE" <<< "$message" || fail "a bad label: exit $code, $message"
set +e
message=$("$rml" status --etcd "http://127.0.0.1:$(port)" 2>&1)
code=$?
set -e
((code == 1)) && grep -q "cannot reach etcd: http://127.0.0.1:" <<< "$message" || fail "an etcd that does not answer: exit $code, $message"
set +e
message=$("$rml" node --name c --etcd "$etcd" --listen nowhere 2>&1)
code=$?
set -e
((code == 2)) && grep -q "listen 'nowhere': expected HOST:PORT" <<< "$message" || fail "a bad --listen: exit $code, $message"
echo "cluster membership: passed"
