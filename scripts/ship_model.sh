#!/usr/bin/env bash
# Ship a trained model: export the checkpoint with fp16 weights to the shipped model's path, run the
# demo with it (held-out drive live through the node, scored), and write its model card from the
# checkpoint, the chain recipe and the demo report. After the synthetic chain finished:
#
#   bash scripts/ship_model.sh          # runs/synthetic/synthetic_steering/steering.pt
#
# Options (defaults in brackets): --checkpoint PT [runs/synthetic/synthetic_steering/steering.pt]
#   --chain YAML [config/train/synthetic_chain.yaml]  --model ONNX [models/unified_synthetic_resnet18.onnx]
#   --demo DIR [out/demo]  --frames N [the demo's default]
set -euo pipefail
cd "$(dirname "$0")/.."
checkpoint=runs/synthetic/synthetic_steering/steering.pt
chain=config/train/synthetic_chain.yaml
model=models/unified_synthetic_resnet18.onnx
demo=out/demo
frames=()
max_mb=60   # the car_lean heads: 25.2 M parameters, 43 MB in float16 (car: 51); GitHub refuses files over 100 MB
while [ $# -gt 0 ]; do
  case "$1" in
    --checkpoint) checkpoint=$2 ;;
    --chain) chain=$2 ;;
    --model) model=$2 ;;
    --demo) demo=$2 ;;
    --frames) frames=(--frames "$2") ;;
    *) echo "ship_model.sh: unknown option '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
up=.venv/bin/unified-perception
[ -f "$checkpoint" ] || { echo "ship_model.sh: checkpoint '$checkpoint' not found: train first (unified-perception train --recipe $chain --out runs/synthetic)" >&2; exit 2; }

echo "== ship 1/3: export $checkpoint -> $model (fp16 weights)"
"$up" export --checkpoint "$checkpoint" --weights-fp16 --out "$model"
size=$(stat -c %s "$model")
if [ "$size" -gt $((max_mb * 1000000)) ]; then
  echo "ship_model.sh: $model is $((size / 1000000)) MB, over the ${max_mb} MB cap for models/" >&2
  exit 1
fi
echo "== ship 2/3: demo with $model -> $demo"
"$up" demo --model "$model" --out "$demo" "${frames[@]}"
echo "== ship 3/3: model card"
"$up" model-card --model "$model" --checkpoint "$checkpoint" --chain "$chain" --demo "$demo"
echo "shipped: $model ($((size / 1000000)) MB) and ${model%.onnx}.md"
