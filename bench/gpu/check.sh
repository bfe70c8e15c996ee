#!/usr/bin/env bash
# The GPU check: the CUDA backend's tests, then its benchmark beside PyTorch's on the same
# GPU, a short table last. Must finish within 5 minutes.
#
#   bench/gpu/check.sh pack [DIR]   here, on Debian with nvcc (no GPU needed): builds
#                                   cuda_tests and rml_gpu_bench (Release) and packs them
#                                   with the shared libraries a bare GPU machine lacks
#                                   (oneDNN, the OpenCL loader and OpenMP runtime it links) and Fashion-MNIST
#                                   into DIR (default .gpu-check, git-ignored, about 45 MB)
#   bench/gpu/check.sh run [DIR]    on the GPU machine (nvcc, PyTorch, no Debian -dev
#                                   packages): runs what DIR holds; CUDA's libraries come
#                                   from /usr/local/cuda or PyTorch's wheels
#   bench/gpu/check.sh              both, where one machine has the packages and a GPU
#   MODEL=lenet BATCH=512 bench/gpu/check.sh profile [DIR]
#                                   on the GPU machine: Nsight Compute's time per kernel of
#                                   a training step (BATCH=1: of batch-1 predictions), rml's
#                                   beside PyTorch's
#
# With the device tool: `bench/gpu/check.sh pack`, then run `bench/gpu/check.sh run` there
# with carry [".gpu-check"]. Logs and JSON lines go to $OUT when it is set (else DIR/out).
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-all}
pack=${2:-$root/.gpu-check}
case "$pack" in /*) ;; *) pack=$root/$pack ;; esac

pack_it() {
  local build=${RML_BUILD_DIR:-$root/build}
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRML_CUDA=ON >/dev/null || exit 1
  cmake --build "$build" --target cuda_tests rml_gpu_bench rml || exit 1
  rm -rf "$pack" && mkdir -p "$pack/bin" "$pack/lib" "$pack/fashion-mnist"
  cp "$build/tests/cuda_tests" "$build/bench/rml_gpu_bench" "$build/apps/rml/rml" "$pack/bin/"
  # Debian's libraries that a machine without Debian's packages lacks (oneDNN, CAF, ZeroMQ,
  # RocksDB, ...): every one the binaries link but the C and C++ runtimes (xz: oneDNN alone
  # is 40 MB).
  local library
  for library in $(ldd "$pack"/bin/* | awk '/=> \// { print $1 }' | sort -u); do
    case "$library" in
      libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|libresolv.so.*|libgcc_s.so.*|libstdc++.so.*|ld-linux*) continue ;;
      libcudart.so.*|libcublas.so.*|libcublasLt.so.*|libcudnn*) continue ;;  # CUDA's own: the GPU machine has them
    esac
    local path
    path=$(ldd "$pack"/bin/* | awk -v name="$library" '$1 == name && $3 ~ /^\// { print $3; exit }')
    xz -T0 -6 -c "$(readlink -f "$path")" > "$pack/lib/$library.xz" || exit 1
  done
  cp /usr/share/datasets/fashion-mnist/*.gz "$pack/fashion-mnist/"
  du -sh "$pack"
}

# Unpacks the pack's libraries and points the loader and the data at them.
environment() {
  [ -x "$pack/bin/cuda_tests" ] || { echo "check: $pack/bin/cuda_tests missing: run 'bench/gpu/check.sh pack' first" >&2; exit 1; }
  out=${OUT:-$pack/out}
  mkdir -p "$out"
  # Unpacked outside the pack, which then stays small enough to carry again.
  local libraries
  libraries=$(mktemp -d)
  for packed in "$pack"/lib/*.xz; do
    [ -e "$packed" ] && xz -d -c "$packed" > "$libraries/$(basename "${packed%.xz}")"
  done
  # CUDA 13's cuBLAS and cuDNN 9: the toolkit's own, else those PyTorch's wheels bring.
  local wheels
  wheels=$(python3 -c 'import glob, site, os
dirs = [d for p in site.getsitepackages() for d in glob.glob(os.path.join(p, "nvidia", "*", "lib"))]
print(":".join(dirs))' 2>/dev/null)
  export LD_LIBRARY_PATH="$libraries:/usr/local/cuda/lib64:${wheels}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export RML_FASHION_MNIST_DIR="$pack/fashion-mnist"
  if ldd "$pack/bin/cuda_tests" | grep "not found"; then
    echo "check: libraries missing on this machine (above); LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >&2
  fi
}

# Where a training step's time goes on the device, kernel by kernel, rml beside PyTorch:
# Nsight Compute times a window of kernels in each one's steady loop (a few steps' worth,
# past the warm-up and cuDNN's algorithm search). MODEL and BATCH from the environment.
profile_it() {
  environment
  local model=${MODEL:-lenet} batch=${BATCH:-512}
  local ncu
  ncu=$(command -v ncu || ls /usr/local/cuda/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)
  [ -n "$ncu" ] || { echo "check: no ncu (Nsight Compute) on this machine" >&2; exit 1; }
  local ncu_options=(--clock-control none --metrics gpu__time_duration.sum --launch-skip 6000 --launch-count 120 --csv)
  # BATCH=1: batch-1 predictions (the latency workload); else training steps at BATCH.
  local workload=(--train-batches "$batch" --no-inference) what="training at batch $batch"
  [ "$batch" = 1 ] && workload=(--no-training) what="batch-1 predictions"
  echo "== rml, $model $what" >&2
  timeout 100 "$ncu" "${ncu_options[@]}" "$pack/bin/rml_gpu_bench" --models "$model" "${workload[@]}" --seconds 1 \
    > "$out/ncu_rml.txt" 2>&1
  echo "== PyTorch, $model $what" >&2
  timeout 100 "$ncu" "${ncu_options[@]}" python3 "$root/bench/gpu/torch_gpu_peer.py" --models "$model" "${workload[@]}" --seconds 1 \
    > "$out/ncu_torch.txt" 2>&1
  python3 "$root/bench/gpu/kernel_table.py" "$out/ncu_rml.txt" "$out/ncu_torch.txt" | tee "$out/kernels.txt"
}

run_it() {
  environment
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
  echo "== CUDA tests" >&2
  timeout 200 "$pack/bin/cuda_tests" --durations yes 2>&1 | tee "$out/cuda_tests.log" | grep -E "epoch|passed|failed|FAILED|SKIPPED|s: " | tail -30
  local tests_status=${PIPESTATUS[0]}
  echo "== rml benchmark" >&2
  timeout 60 "$pack/bin/rml_gpu_bench" --seconds 1 2> "$out/rml_bench.err" | tee "$out/rml_gpu_bench.jsonl"
  cat "$out/rml_bench.err" >&2
  echo "== PyTorch peer" >&2
  timeout 90 python3 "$root/bench/gpu/torch_gpu_peer.py" --seconds 1 | tee "$out/torch_gpu_peer.jsonl"
  echo "== rml run --device cuda (mlp, one epoch through the whole pipeline)" >&2
  local state
  state=$(mktemp -d)
  timeout 240 "$pack/bin/rml" run --device cuda --data-dir "$state/rml-data" --dataset-dir "$pack/fashion-mnist" \
    --predict-port 0 --ingest-port 0 --http-port 0 > "$out/rml_run.log" 2> "$out/rml_run.err"
  local run_status=$?
  grep -E "rml run:|cuda|CPU|trainer" "$out/rml_run.err" | head -5
  tail -4 "$out/rml_run.log"
  echo "rml run --device cuda exit status: $run_status"
  python3 "$root/bench/gpu/table.py" "$out/rml_gpu_bench.jsonl" "$out/torch_gpu_peer.jsonl" | tee "$out/table.txt"
  echo "cuda_tests exit status: $tests_status"
  [ "$tests_status" -eq 0 ] && [ "$run_status" -eq 0 ]
}

case "$mode" in
  pack) pack_it ;;
  run) run_it ;;
  profile) profile_it ;;
  all) pack_it && run_it ;;
  *) echo "check: unknown mode '$mode' (expected pack, run, profile or nothing)" >&2; exit 2 ;;
esac
