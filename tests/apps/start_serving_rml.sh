# Sourced by the process tests: starts `rml run` in the background on the ports given and
# waits until its prediction socket answers with a model (up to 120 s: a loaded CI machine
# can take that long to train the first version). Fails, with the end of rml's output, if rml
# exits first or never answers.
# Needs: rml, work; extra_args (optional) go to rml run.
# Sets: predict_port, ingest_port, http_port (free ports the kernel chose, so tests run beside
# each other and beside anything else on the machine), run (the process id). Defines
# free_ports N (N ports free now, on one line), stop_process PID (SIGTERM if still running,
# then reap; returns its exit status).
rm -rf "$work" && mkdir -p "$work"
. "$(dirname "$0")/free_ports.sh"
ports=$(free_ports 3)
predict_port=${ports%% *}
http_port=${ports##* }
ingest_port=${ports#* }
ingest_port=${ingest_port%% *}
"$rml" run --data-dir "$work/state" --rate 15000 --predict-port "$predict_port" --ingest-port "$ingest_port" --http-port "$http_port" ${extra_args:-} > "$work/run.out" 2>&1 &
run=$!
# Whatever the test started in the background does not outlive it (a failing test must not
# leave ctest waiting on a server): tests add their other processes to background_pids.
background_pids="$run"
trap 'for pid in $background_pids; do kill -KILL "$pid" 2>/dev/null || true; done' EXIT
serving_since=$(date +%s)
until "$rml" predict --address "tcp://127.0.0.1:$predict_port" --count 1 --timeout-ms 500 2>/dev/null | grep -q "model v"; do
  if ! kill -0 "$run" 2>/dev/null; then
    echo "FAIL: rml run exited before it served a prediction:"; tail -20 "$work/run.out"; exit 1
  fi
  if [ $(( $(date +%s) - serving_since )) -gt 120 ]; then
    echo "FAIL: rml run served no prediction within 120 s:"; tail -20 "$work/run.out"; kill -KILL "$run"; exit 1
  fi
  sleep 0.1
done

# A process that already exited is only reaped: its exit status is what it exited with.
stop_process() {
  kill -TERM "$1" 2>/dev/null || true
  wait "$1"
}

# wait_for_output PATTERN SECONDS: waits until rml's output holds PATTERN; fails if rml exits
# first or SECONDS pass.
wait_for_output() {
  waited_since=$(date +%s)
  until grep -q "$1" "$work/run.out"; do
    if ! kill -0 "$run" 2>/dev/null; then
      echo "FAIL: rml run exited before printing '$1':"; tail -20 "$work/run.out"; exit 1
    fi
    if [ $(( $(date +%s) - waited_since )) -gt "$2" ]; then
      echo "FAIL: rml run did not print '$1' within $2 s:"; tail -20 "$work/run.out"; exit 1
    fi
    sleep 0.1
  done
}
