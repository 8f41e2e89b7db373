#!/usr/bin/env bash
# Set up (scripts/setup_env.sh) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST   # DDS traffic of the tests stays on loopback
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@" test
