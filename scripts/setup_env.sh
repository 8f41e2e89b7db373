#!/usr/bin/env bash
# Create .venv (once) and install the package with every extra the tests and the demo use.
# Where a ROS 2 install is sourced, its rclpy is used (venv with system site packages) and the
# PyPI ROS wheels are not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="runtime,train,data,sim,eval,dev"
venv_flags=()
if [ -n "${ROS_DISTRO:-}" ] && python3 -c "import rclpy" 2>/dev/null; then
  echo "setup: using the sourced ROS 2 ${ROS_DISTRO} rclpy"
  venv_flags=(--system-site-packages)
else
  extras="$extras,ros"
fi
[ -x .venv/bin/python ] || python3 -m venv "${venv_flags[@]}" .venv
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
.venv/bin/python -m pip install --quiet -e ".[${extras}]"
echo "setup: .venv ready with extras [${extras}]"
