#!/bin/sh
# `rml run --topology FILE` takes the file's options, serving replicas and supervisor, and the
# command line wins over the file: the trace shows the policy set, the metrics the replicas.
# Usage: topology_run_test.sh RML WORKDIR TOPOLOGY
set -eu
rml=$1
work=$2
topology=$3
rm -rf "$work"
mkdir -p "$work"
run_with() {
  label=$1
  shift
  "$rml" run --topology "$topology" --data-dir "$work/state" --fresh --predict-port 0 --ingest-port 0 --http-port 0 \
    --trace "$work/trace-$label.jsonl" "$@" > "$work/run-$label.out" 2>&1 || { cat "$work/run-$label.out"; exit 1; }
}
run_with file
grep -q "rml run: topology canary-run," "$work/run-file.out"
grep -q '"kind":"policy_set","detail":"canary:10"' "$work/trace-file.jsonl"
grep -q '"kind":"policy_set","detail":"latest"' "$work/trace-file.jsonl" && { echo "the file's policy was not applied"; exit 1; }
run_with flag --policy latest
grep -q '"kind":"policy_set","detail":"latest"' "$work/trace-flag.jsonl"
if grep -q '"kind":"policy_set","detail":"canary:10"' "$work/trace-flag.jsonl"; then
  echo "--policy on the command line did not win over the topology file"
  exit 1
fi
echo "topology options applied; the command line wins"
