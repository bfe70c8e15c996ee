# Sourced by the process tests: starts `rml run` in the background on the ports given and
# waits (up to 10 s) until its prediction socket answers with a model.
# Needs: rml, work, predict_port, ingest_port, http_port; extra_args (optional) go to rml run.
# Sets: run (the process id).
rm -rf "$work" && mkdir -p "$work"
"$rml" run --data-dir "$work/state" --rate 15000 --predict-port "$predict_port" --ingest-port "$ingest_port" --http-port "$http_port" ${extra_args:-} > "$work/run.out" 2>&1 &
run=$!
for attempt in $(seq 1 100); do
  if "$rml" predict --address "tcp://127.0.0.1:$predict_port" --count 1 --timeout-ms 200 2>/dev/null | grep -q "model v"; then break; fi
  sleep 0.1
done
