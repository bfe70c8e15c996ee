#!/usr/bin/env bash
# rml's set-up on Debian 12: installs the Debian packages the build, the tests and the main
# job need (only when one is missing), configures and builds with CMake + Ninja, then
#   scripts/setup.sh run [rml run options]   runs the main job (`rml run`)
#   scripts/setup.sh test                    runs the whole test suite (CTest)
#   scripts/setup.sh build                   stops after the build
# RML_BUILD_DIR chooses the build folder (default: build); RML_CUDA=AUTO|ON|OFF (default
# AUTO) whether the CUDA backend is built.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${RML_BUILD_DIR:-$root/build}
mode=${1:-build}
[ $# -gt 0 ] && shift

case "$mode" in
  run|test|build) ;;
  *) echo "setup.sh: unknown mode '$mode' (expected run, test or build)" >&2; exit 2 ;;
esac

# Every package the build, tests and main job use. Keep in step with cmake/RmlDependencies.cmake.
packages=(
  cmake ninja-build g++ pkg-config
  libdnnl-dev libcaf-dev catch2 zlib1g-dev libxxhash-dev libcli11-dev librocksdb-dev libzmq3-dev cppzmq-dev python3-zmq
  libboost-dev rapidjson-dev libjemalloc-dev prometheus python3-venv
  dataset-fashion-mnist
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    echo "setup: missing packages (${missing[*]}) and not root, and sudo is not installed;" \
         "run as root or install them with apt-get" >&2
    exit 1
  fi
  if ! "${as_root[@]}" apt-get update -qq ||
     ! DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
    echo "setup: apt-get could not install ${missing[*]}" >&2
    exit 1
  fi
fi

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRML_CUDA="${RML_CUDA:-AUTO}" >/dev/null
cmake --build "$build"

case "$mode" in
  run)
    # The main job starts over each time unless told to continue a previous run.
    case " $* " in
      *" --resume "*|*" --fresh "*) exec "$build/apps/rml/rml" run "$@" ;;
      *) exec "$build/apps/rml/rml" run --fresh "$@" ;;
    esac ;;
  test) cd "$build" && exec ctest --output-on-failure --timeout 900 "$@" ;;
  build) ;;
esac
