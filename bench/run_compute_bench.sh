#!/usr/bin/env bash
# Sets up the benchmark's Python (a virtual environment with PyTorch from PyPI, outside the
# product: rml never depends on it), builds rml, and runs bench/compute_bench.py.
#   bench/run_compute_bench.sh [compute_bench.py options]
# RML_BENCH_VENV chooses the environment's folder (default: build/bench-venv).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=${RML_BENCH_VENV:-$root/build/bench-venv}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then
  echo "bench: installing PyTorch and NumPy into $venv (PyPI)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch numpy
fi
cmake -S "$root" -B "$root/build" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$root/build" --target rml_compute_bench >/dev/null
# OpenBLAS settings some machines carry would slow NumPy; PyTorch uses MKL, but clear them
# so the peer runs as shipped.
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
echo "bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" >&2
exec "$venv/bin/python" "$root/bench/compute_bench.py" "$@"
