#!/bin/bash
# rml sim end to end:
#  1. every shipped scenario holds its invariants on two seeds (a sweep, which also replays a
#     seed and compares its trace hash);
#  2. one run prints seed=N first, and the same seed gives a byte-identical trace (another
#     seed a different one); --report writes an SVG timeline;
#  3. a planted bug (the request ledger forgets what a lost node held) is caught by a sweep of
#     six seeds of replica-crash, which names the invariant and the command that replays it,
#     and that command shows the violation with the trace around it;
#  4. bad arguments are refused with a message.
# Usage: sim_test.sh RML SCENARIOS WORKDIR
set -euo pipefail
rml=$1
scenarios=$2
work=$3
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAILED: $*" >&2; exit 1; }

for scenario in "$scenarios"/*.yaml; do
  case $(basename "$scenario") in cluster*.yaml) continue ;; esac
  name=$(basename "$scenario" .yaml)
  seeds=1..2
  [ "$name" = hundred-nodes ] && seeds=1..1
  if ! "$rml" sim "$scenario" --seeds $seeds --jobs 2 --verify 1 --scratch "$work" > "$work/$name.out" 2>&1; then
    cat "$work/$name.out"
    fail "scenario $name broke an invariant or did not replay"
  fi
  grep -q ", 0 with violations" "$work/$name.out" || fail "$name: no summary line"
  grep -q "replayed seed 1: trace [0-9a-f]* == " "$work/$name.out" || fail "$name: the sweep did not replay a seed"
  echo "$name: $(grep 'runs,' "$work/$name.out")"
done

run() { "$rml" sim "$scenarios/replica-crash.yaml" --quiet --scratch "$work" "$@"; }
run --seed 5 --trace "$work/a.txt" --report "$work/a.svg" > "$work/one.out"
[ "$(head -1 "$work/one.out")" = "seed=5" ] || fail "the first line is not seed=5: $(head -1 "$work/one.out")"
grep -q "invariants hold" "$work/one.out" || fail "replica-crash seed 5: $(cat "$work/one.out")"
grep -q "edge-2 crashes (fault)" "$work/a.txt" || fail "the trace does not show the crash"
grep -q "<svg" "$work/a.svg" || fail "--report wrote no SVG"
run --seed 5 --trace "$work/b.txt" > /dev/null
cmp "$work/a.txt" "$work/b.txt" || fail "seed 5 twice gave different traces"
run --seed 6 --trace "$work/c.txt" > /dev/null
if cmp -s "$work/a.txt" "$work/c.txt"; then fail "seeds 5 and 6 gave the same trace"; fi

set +e
"$rml" sim "$scenarios/replica-crash.yaml" --seeds 1..6 --jobs 2 --verify 1 --scratch "$work" --plant-bug drop-requests-of-lost-node > "$work/planted.out" 2>&1
status=$?
set -e
cat "$work/planted.out"
[ $status -eq 3 ] || fail "the planted bug's sweep exited $status, not 3"
replay=$(grep -o "rml sim [^ ]*replica-crash.yaml --seed [0-9]* --plant-bug drop-requests-of-lost-node" "$work/planted.out" || true)
[ -n "$replay" ] || fail "the sweep did not name exactly_one_answer's first seed with its replay command"
grep -q "^  exactly_one_answer " "$work/planted.out" || fail "the sweep did not blame exactly_one_answer"
seed=$(echo "$replay" | sed 's/.*--seed \([0-9]*\).*/\1/')
set +e
run --seed "$seed" --plant-bug drop-requests-of-lost-node > "$work/replayed.out"
status=$?
set -e
[ $status -eq 3 ] || fail "replaying seed $seed exited $status, not 3"
grep -q "^VIOLATION exactly_one_answer at .*got no answer" "$work/replayed.out" || fail "the replay shows no violation"
grep -q "^replay: rml sim .* --seed $seed --plant-bug drop-requests-of-lost-node" "$work/replayed.out" || fail "the replay prints no replay command"
grep -q "trace around the first violation" "$work/replayed.out" || fail "the replay prints no trace"

set +e
"$rml" sim "$scenarios/replica-crash.yaml" --seeds 5..1 2> "$work/bad.err"; status=$?
set -e
[ $status -eq 2 ] && grep -q "expected A..B" "$work/bad.err" || fail "--seeds 5..1 was not refused"
set +e
"$rml" sim "$work/none.yaml" 2> "$work/bad.err"; status=$?
set -e
[ $status -eq 2 ] && grep -q "none.yaml: cannot open the scenario file" "$work/bad.err" || fail "a missing scenario was not refused"
echo "rml sim: every shipped scenario clean, replays byte for byte, the planted bug caught at seed $seed"
