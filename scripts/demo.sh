#!/usr/bin/env bash
# Set up (scripts/setup_env.sh) and run the main job on the embedded synthetic data:
# render a synthetic driving bag, export a unified model under the contract, print its contract.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
out=out/demo
mkdir -p "$out"
up=.venv/bin/unified-perception
"$up" synth --out "$out/synthetic" --frames 30 --seed 0 --size 192x640
"$up" export --backbone resnet18 --preset light --size 192x640 --out "$out/unified_resnet18.onnx"
"$up" info "$out/unified_resnet18.onnx"
echo "demo: bag and model written to $out/"
