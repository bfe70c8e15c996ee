#!/bin/bash
# A network partition between a node and etcd, made with a network namespace: node b runs in
# its own namespace, reaching etcd over a veth pair; taking the link down cuts it off. b
# stops counting itself a member before its lease can have expired (it cannot renew), the
# cluster drops it when the lease expires and the controller moves b's serving replica to a
# node that can take it; when the link comes back, b joins again as a new incarnation.
# Needs root (ip netns, veth): where namespaces cannot be made, it skips (exit 77) and says why.
set -euo pipefail
rml=$1
topology=$2
if ! command -v ip > /dev/null; then
  echo "SKIPPED: the ip command (iproute2) is not installed"
  exit 77
fi
# First, without touching /run/netns, what `ip netns exec` does on entering a namespace: a
# private mount namespace whose / is remounted as a slave (in a chroot, where / is not a
# mount point, that fails while `ip netns add` works). Then a real namespace and a command
# in it. A skip after that leaves the machine as it found it: `ip netns add` mounts
# /run/netns the first time, and that mount is undone if it was not there before (in a
# chroot `mountpoint` cannot see it, which is why the first probe comes first).
if command -v unshare > /dev/null; then
  entered=$(unshare --mount --net sh -c 'mount --make-rslave /' 2>&1) || {
    echo "SKIPPED: cannot enter a network and mount namespace here: $entered"
    exit 77
  }
fi
netns_was_mounted=false
mountpoint -q /run/netns 2>/dev/null && netns_was_mounted=true
skip() {
  ip netns del "rml-probe-$$" 2>/dev/null || true
  if ! $netns_was_mounted && mountpoint -q /run/netns 2>/dev/null && [[ -z "$(ls -A /run/netns 2>/dev/null)" ]]; then
    umount /run/netns 2>/dev/null || true
  fi
  echo "SKIPPED: $1"
  exit 77
}
ip netns add "rml-probe-$$" 2>/dev/null || skip "cannot create network namespaces here (needs root and CAP_SYS_ADMIN/CAP_NET_ADMIN)"
probe=$(ip netns exec "rml-probe-$$" true 2>&1) || skip "cannot run a command in a network namespace here: $probe"
ip netns del "rml-probe-$$"

namespace="rml-part-$$"
host_link="rmlh$$"
node_link="rmln$$"
host_link=${host_link:0:15}
node_link=${node_link:0:15}
subnet=$((($$ % 200) + 20))
host_ip="10.231.$subnet.1"
node_ip="10.231.$subnet.2"
remove_network() {
  ip link del "$host_link" 2>/dev/null || true
  ip netns del "$namespace" 2>/dev/null || true
}
trap remove_network EXIT
ip netns add "$namespace"
ip link add "$host_link" type veth peer name "$node_link"
ip link set "$node_link" netns "$namespace"
ip addr add "$host_ip/30" dev "$host_link"
ip link set "$host_link" up
ip netns exec "$namespace" ip addr add "$node_ip/30" dev "$node_link"
ip netns exec "$namespace" ip link set "$node_link" up
ip netns exec "$namespace" ip link set lo up

# etcd on loopback and on the host's end of the link (start_etcd.sh, with one more URL).
etcd_extra_urls="http://$host_ip"
. "$(dirname "$0")/start_etcd.sh"
b_etcd="http://$host_ip:$client_port"

"$rml" node --name a --etcd "$etcd" --labels role=data --cores 8 --lease-ttl 2 > "$work/a.log" 2>&1 &
pids+=($!)
within 10 grep -q "is the placement controller" "$work/a.log" || fail "node a did not become the controller"
"$rml" node --name s1 --etcd "$etcd" --labels role=serving --cores 2 --lease-ttl 2 > "$work/s1.log" 2>&1 &
pids+=($!)
ip netns exec "$namespace" "$rml" node --name b --etcd "$b_etcd" --listen "$node_ip:0" --insecure-plain-tcp --labels role=serving --cores 2 \
  --lease-ttl 2 > "$work/b.log" 2>&1 &
pids+=($!)
within 10 eval 'status | grep -q "nodes: 3$"' || fail "three nodes did not join"
first_b=$(status | grep -E "─ b  " | sed -E 's/.*incarnation ([0-9]+).*/\1/')
"$rml" deploy "$topology" --etcd "$etcd"
within 10 eval 'status | grep -qE "─ (b|s1): serving/[01]$"' || fail "serving was not placed: $(status)"
b_replica=$(status | grep -E "─ b: " | grep -oE "serving/[0-9]+" || true)
[[ -n "$b_replica" ]] || fail "node b holds no serving replica: $(status)"

# Partition: b loses etcd. It must stop serving within its TTL; the cluster drops it and moves
# its replica to s2 (s1 already runs one, and serving is anti_affinity).
"$rml" node --name s2 --etcd "$etcd" --labels role=serving --cores 2 --lease-ttl 2 > "$work/s2.log" 2>&1 &
pids+=($!)
within 10 eval 'status | grep -q "nodes: 4$"' || fail "s2 did not join"
cut_at=$SECONDS
ip link set "$host_link" down
within 6 grep -q "rml node b: stops serving" "$work/b.log" || fail "b did not stop serving within 6 s of the partition"
((SECONDS - cut_at <= 4)) || fail "b stopped serving $((SECONDS - cut_at)) s after the partition: later than its lease could live"
within 10 eval '! status | grep -qE "─ b  "' || fail "b was still a member 10 s after the partition"
within 10 eval "status | grep -qE \"─ s2: $b_replica\$\"" || fail "b's $b_replica did not move to s2: $(status)"

# Healed: b joins again, as a new incarnation; nothing moves back.
ip link set "$host_link" up
within 15 eval 'status | grep -qE "─ b  "' || fail "b did not rejoin after the partition healed"
second_b=$(status | grep -E "─ b  " | sed -E 's/.*incarnation ([0-9]+).*/\1/')
((second_b > first_b)) || fail "b rejoined as incarnation $second_b, not above $first_b"
status | grep -qE "─ s2: $b_replica\$" || fail "the replica moved back after healing: $(status)"
echo "cluster partition: passed"
