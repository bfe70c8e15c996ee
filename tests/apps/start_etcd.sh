# Sourced by the cluster tests (bash): starts Debian's etcd on loopback ports the kernel
# picked, with its data in a fresh directory, and waits until `rml status` reads it.
# Needs: rml (and, optionally, etcd_extra_urls). Sets: work (a temporary directory, removed
# at exit), etcd (its client URL), pids (processes killed at exit: add yours). Defines: fail
# MESSAGE (prints the end of every log in $work, exits 1), port (a free loopback port;
# free_ports N for several that differ), within SECONDS COMMAND... (retries the command until
# it succeeds or the time passes), status (rml status against this etcd).
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  rm -rf "$work"
  # A test that made more (network namespaces) defines remove_network before sourcing this.
  if declare -F remove_network > /dev/null; then remove_network; fi
}
trap cleanup EXIT
fail() {
  echo "FAILED: $*" >&2
  for log in "$work"/*.log; do echo "--- $log" >&2; tail -20 "$log" >&2; done
  exit 1
}
. "$(dirname "${BASH_SOURCE[0]}")/free_ports.sh"
port() { free_ports 1; }
within() {
  local seconds=$1
  shift
  local deadline=$((SECONDS + seconds))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
ports=$(free_ports 2)
client_port=${ports% *}
peer_port=${ports#* }
etcd=http://127.0.0.1:$client_port
# etcd_extra_urls (optional): another address etcd listens on too, as http://IP (same port).
listen_urls=$etcd${etcd_extra_urls:+,$etcd_extra_urls:$client_port}
/usr/bin/etcd --name=rml-test --data-dir="$work/etcd" --listen-client-urls="$listen_urls" --advertise-client-urls="$etcd" \
  --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
  --initial-cluster="rml-test=http://127.0.0.1:$peer_port" --logger=zap --log-outputs="$work/etcd.log" --log-level=warn &
pids+=($!)
within 20 "$rml" status --etcd "$etcd" > /dev/null 2>&1 || fail "etcd did not come up at $etcd"
status() { "$rml" status --etcd "$etcd"; }
