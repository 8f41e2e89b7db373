#!/usr/bin/env bash
# The main job: set up (scripts/setup_env.sh), then `unified-perception demo`: a held-out synthetic
# drive played live through the node with the shipped model (models/unified_synthetic_resnet18.onnx),
# scored on every task. The report lands in out/demo/report/. Arguments go to the demo
# (e.g. --frames 60, --rate 0.2, --model other.onnx; `unified-perception demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/unified-perception demo "$@"
