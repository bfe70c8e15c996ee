#!/usr/bin/env bash
# Sets up the serving benchmark's Python peer (a virtual environment with Ray Serve and
# PyTorch from PyPI, outside the product), builds rml, and runs bench/serving_bench.py.
#   bench/run_serving_bench.sh [serving_bench.py options]
# RML_BENCH_VENV chooses the environment's folder (default: build/bench-venv).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${RML_BENCH_VENV:-$root/build/bench-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, numpy, ray.serve" 2>/dev/null; then
  echo "bench: installing PyTorch, NumPy and Ray Serve into $venv (PyPI)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch numpy "ray[serve]"
fi
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" --target rml rml_compute_bench rml_zmq_ceiling >/dev/null
echo "bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
exec "$venv/bin/python" "$root/bench/serving_bench.py" --python "$venv/bin/python" "$@"
