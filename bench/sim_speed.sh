#!/bin/bash
# rml sim's speed (issue 13's benchmarks): simulated seconds per wall second of one run of
# each shipped scenario (median of RUNS), and the wall time of a sweep of SEEDS seeds of the
# scenarios named (all cores). Prints the machine first.
# Usage: bench/sim_speed.sh RML [RUNS] [SEEDS (0: no sweep)] [SWEPT SCENARIOS...]
set -euo pipefail
rml=$1
runs=${2:-5}
seeds=${3:-1000}
shift 3 || true
swept=("$@")
[ ${#swept[@]} -eq 0 ] && swept=(replica-crash)
here=$(cd "$(dirname "$0")/.." && pwd)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%F)"
for scenario in "$here"/sim/scenarios/*.yaml; do
  name=$(basename "$scenario" .yaml)
  case $name in cluster*) continue ;; esac
  speeds=()
  for run in $(seq 1 "$runs"); do
    speeds+=("$("$rml" sim "$scenario" --seed "$run" --quiet | sed -n 's/.* s in \([0-9.]*\) wall s (\([0-9]*\)x).*/\2/p')")
  done
  median=$(printf '%s\n' "${speeds[@]}" | sort -n | sed -n "$(( (runs + 1) / 2 ))p")
  echo "$name: ${median}x simulated/wall (median of $runs seeds: ${speeds[*]})"
done
[ "$seeds" -gt 0 ] || exit 0
for name in "${swept[@]}"; do
  start=$(date +%s.%N)
  "$rml" sim "$here/sim/scenarios/$name.yaml" --seeds "1..$seeds" --verify 3 2>/dev/null | grep -v "^  replayed" | sed "s/^/  /"
  end=$(date +%s.%N)
  echo "$name: $seeds seeds swept in $(echo "$end - $start" | bc) s wall on $(nproc) cores"
done
