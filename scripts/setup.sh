#!/usr/bin/env bash
# rml's set-up on Debian 12: installs the Debian packages the build, the tests and the main
# job need (only those missing; the list is scripts/debian-packages), configures and builds
# with CMake + Ninja, then
#   scripts/setup.sh run [rml run options]   runs the main job (`rml run`)
#   scripts/setup.sh test [ctest options]    runs the whole test suite (CTest)
#   scripts/setup.sh build                   stops after the build
#   scripts/setup.sh sanitize                the unit tests under ASan+UBSan, a bounded fuzz run of
#                                            the decoders (libFuzzer), and the concurrency tests
#                                            under TSan (build-asan, build-fuzz, build-tsan; CI
#                                            runs it after `test`)
# RML_BUILD_DIR chooses the build folder (default: build); RML_CUDA=AUTO|ON|OFF (default
# AUTO) whether the CUDA backend is built. Each phase prints how long it took; a failing
# phase says which one failed and, for the install, which package.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${RML_BUILD_DIR:-$root/build}
mode=${1:-build}
[ $# -gt 0 ] && shift

case "$mode" in
  run|test|build|sanitize) ;;
  *) echo "setup: unknown mode '$mode' (expected run, test, build or sanitize)" >&2; exit 2 ;;
esac

phase_started=0
phase_name=""
start_phase() { phase_name=$1; phase_started=$(date +%s.%N); echo "setup: $phase_name ..." >&2; }
end_phase() {
  local took
  took=$(awk -v a="$phase_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  echo "setup: $phase_name done in ${took} s" >&2
}
fail() { echo "setup: FAILED in $phase_name: $*" >&2; exit 1; }

# The package list: the first word of each line that is not a comment.
mapfile -t packages < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$root/scripts/debian-packages" | awk '{ print $1 }')
[ ${#packages[@]} -gt 0 ] || { echo "setup: scripts/debian-packages lists no package" >&2; exit 1; }

start_phase "install"
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages of scripts/debian-packages are installed" >&2
else
  echo "setup: installing ${#missing[@]} of ${#packages[@]} packages (and what they depend on): ${missing[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1; then
    as_root=(sudo)
  else
    fail "packages missing (${missing[*]}), not root, and sudo is not installed; run as root or install them with apt-get"
  fi
  mkdir -p "$build"
  apt_log="$build/setup-apt.log"
  if ! "${as_root[@]}" apt-get update -qq > "$apt_log" 2>&1; then
    tail -20 "$apt_log" >&2
    fail "apt-get update failed (is the network or the package mirror reachable?); log: $apt_log"
  fi
  unavailable=()
  for package in "${missing[@]}"; do
    candidate=$(apt-cache policy "$package" 2>/dev/null | sed -n 's/^ *Candidate: //p')
    if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then unavailable+=("$package"); fi
  done
  [ ${#unavailable[@]} -eq 0 ] ||
    fail "no installable version of ${unavailable[*]} in the apt sources (is this Debian 12 with its main archive?)"
  if ! DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >> "$apt_log" 2>&1; then
    tail -30 "$apt_log" >&2
    broken=()
    for package in "${missing[@]}"; do
      "${as_root[@]}" apt-get install -s -q --no-install-recommends "$package" > /dev/null 2>&1 || broken+=("$package")
    done
    fail "apt-get could not install ${broken[*]:-${missing[*]}}; log: $apt_log"
  fi
  installed=$(grep -c '^Setting up ' "$apt_log" || true)
  echo "setup: apt installed ${missing[*]} ($installed packages with their dependencies; log: $apt_log)" >&2
fi
end_phase

if [ "$mode" = sanitize ]; then
  # Each build holds only what its tests need, at -O0: it compiles 2.5 times faster than -O1
  # under ASan (http_endpoint.cpp: 56 s against 138 s) and the tests still run in a minute.
  sanitized_build() {  # folder, extra cmake arguments...
    local folder=$1
    shift
    cmake -S "$root" -B "$root/$folder" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g" -DRML_CUDA=OFF \
      -DRML_BUILD_BENCH=OFF "$@" >/dev/null || fail "cmake could not configure $folder (its error is above)"
  }
  export UBSAN_OPTIONS="suppressions=$root/tests/sanitizers/ubsan.supp:halt_on_error=1:print_stacktrace=1"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$root/tests/sanitizers/tsan.supp"

  start_phase "ASan+UBSan: build the unit tests"
  sanitized_build build-asan -DRML_SANITIZE=address,undefined
  cmake --build "$root/build-asan" --target compute_tests messaging_tests supervision_tests actors_tests topologies_tests topology_file_tests control_plane_tests \
    etcd_control_plane_tests sim_tests ||
    fail "the ASan+UBSan build failed (the compiler's error is above)"
  end_phase
  start_phase "ASan+UBSan: unit tests"
  (cd "$root/build-asan" && ctest --output-on-failure --timeout 900 -L unit "$@") ||
    fail "a unit test failed under ASan+UBSan (the sanitizer's report is above)"
  end_phase

  start_phase "libFuzzer: the wire, V2 and HTTP decoders"
  CC=clang CXX=clang++ cmake -S "$root" -B "$root/build-fuzz" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRML_FUZZ=ON >/dev/null ||
    fail "cmake could not configure build-fuzz (its error is above)"
  cmake --build "$root/build-fuzz" || fail "the fuzz build failed (the compiler's error is above)"
  (cd "$root/build-fuzz" && ctest --output-on-failure) ||
    fail "a fuzz target found an input that breaks a decoder (the input is in build-fuzz/tests/fuzz/<target>/crash-*)"
  end_phase

  # ThreadSanitizer sees no synchronisation inside Debian's libcaf_core and libzmq (not built
  # with it; their queues are lock-free): every message handed between actor threads, or
  # through a ZeroMQ pipe, is reported as a race (1876 reports in messaging_tests; 252 with
  # CAF's mutex-based `sharing` scheduler, at the mailboxes and libzmq's pipes), so TSan runs
  # on the concurrency rml synchronises itself: the metrics registry and the trace, written
  # from every thread while read.
  start_phase "TSan: build the concurrency tests"
  sanitized_build build-tsan -DRML_SANITIZE=thread
  cmake --build "$root/build-tsan" --target messaging_tests etcd_control_plane_tests || fail "the TSan build failed (the compiler's error is above)"
  end_phase
  start_phase "TSan: concurrency tests"
  "$root/build-tsan/tests/messaging_tests" "[concurrency]" || fail "a test failed under TSan (the race report is above)"
  # The etcd client: unary calls from several threads, a thread per watch, cancel from both.
  "$root/build-tsan/tests/etcd_control_plane_tests" || fail "a test failed under TSan (the race report is above)"
  end_phase
  exit 0
fi

start_phase "configure (cmake)"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DRML_CUDA="${RML_CUDA:-AUTO}" >/dev/null ||
  fail "cmake could not configure $build (its error is above)"
end_phase

start_phase "build (ninja)"
cmake --build "$build" || fail "the build failed (the compiler's error is above)"
end_phase

case "$mode" in
  run)
    start_phase "run (rml run)"
    # The main job starts over each time unless told to continue a previous run.
    case " $* " in
      *" --resume "*|*" --fresh "*) fresh=() ;;
      *) fresh=(--fresh) ;;
    esac
    "$build/apps/rml/rml" run "${fresh[@]}" "$@" || fail "rml run exited with status $?"
    end_phase ;;
  test)
    start_phase "test (ctest)"
    (cd "$build" && ctest --output-on-failure --timeout 900 "$@") || fail "tests failed (ctest's summary is above)"
    end_phase ;;
  build) ;;
esac
