#!/bin/sh
# NVIDIA's tritonclient (PyPI) against a real `rml run` over HTTP (tritonclient_test.py).
# The client is installed into a virtual environment under the build directory on first use;
# without access to PyPI the test is skipped (exit 77) and says so.
# Usage: tritonclient_test.sh RML WORKDIR VENV
set -eu
rml=$1
work=$2
venv=$3
if ! "$venv/bin/python" -c "import tritonclient.http, numpy" 2>/dev/null; then
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  if ! "$venv/bin/pip" install -q "tritonclient[http]" numpy > "$work.pip.log" 2>&1; then
    cat "$work.pip.log"
    # Only an unreachable package index is a reason to skip; any other failure of the
    # installation is a failure of this test's set-up and says so.
    if grep -Eq "NewConnectionError|Temporary failure in name resolution|Network is unreachable|Connection refused|Max retries exceeded|No matching distribution found|Could not find a version" "$work.pip.log"; then
      echo "SKIPPED: PyPI cannot be reached, so tritonclient could not be installed (rml's HTTP endpoint is still tested by messaging_tests and the process tests)"
      exit 77
    fi
    echo "FAIL: installing tritonclient into $venv failed for a reason other than the network (above)"
    exit 1
  fi
fi
extra_args="--serve"
. "$(dirname "$0")/start_serving_rml.sh"
status=0
"$venv/bin/python" "$(dirname "$0")/tritonclient_test.py" "127.0.0.1:$http_port" mlp "$work/state/control-key" || status=$?
stop_process "$run" || { echo "FAIL: rml run exited with status $?"; status=1; }
exit $status
