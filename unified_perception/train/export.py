"""ONNX export of a :class:`UnifiedModel` under the model contract (``unified_perception.contract``).

The exported graph takes ``image`` uint8 ``[N, H, W, 3]`` plus the ``state_in_*`` tensors and gives
the contract outputs of the model's tasks plus ``state_out_*``; normalisation, argmax, panoptic
grouping, depth scaling and the blanking of rows without a previous frame all happen inside it. The
batch axis is dynamic; every other axis is static and there are no loops (TensorRT-friendly).
Metadata (contract.ModelMetadata) includes parameter counts and GFLOPs per head measured here with
torch's FlopCounterMode, because the runtime cannot import torch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import onnx
import onnxscript.optimizer
import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from unified_perception import __version__
from unified_perception.contract import (CONTRACT_VERSION, DEFAULT_STEERING_WINDOW, EGO_MOTION,
                                         IMAGE, LATENT, MOTION_PROB, PAIR_VALID, PANOPTIC,
                                         SCENE_FLOW, SEMANTIC, STATE_IN_PREFIX, STATE_OUT_PREFIX,
                                         STEERING, DEPTH, INSTANCES, ModelMetadata,
                                         expected_outputs)
from unified_perception.deploy.graph_rewrites import rewrite_for_speed
from unified_perception.train.export_fp16 import store_weights_fp16
from unified_perception.train.model import UnifiedModel, UnifiedOutput
from unified_perception.train.temporal_state import TemporalState

DEFAULT_OPSET = 18
DEFAULT_INTRINSICS_NORMALIZED = (0.58, 1.92, 0.5, 0.5)
"""[fx/W, fy/H, (cx+0.5)/W, (cy+0.5)/H] of KITTI at 640x192 (monodepth2's), used when none is given."""


def _contract_value(name: str, out: UnifiedOutput) -> Tensor:
    """The contract tensor ``name`` from the model's outputs, in the contract dtype."""
    table = {
        DEPTH.name: lambda: out.depth_m,
        SEMANTIC.name: lambda: out.semantic.to(torch.uint8),
        INSTANCES.name: lambda: out.instances,      # int32 from the grouping
        PANOPTIC.name: lambda: out.panoptic,
        MOTION_PROB.name: lambda: out.motion_prob,
        SCENE_FLOW.name: lambda: out.scene_flow_m,
        EGO_MOTION.name: lambda: out.T_cam_prev_cam_cur,
        STEERING.name: lambda: out.steering_rad,
        LATENT.name: lambda: out.latent,
        PAIR_VALID.name: lambda: out.pair_valid,
    }
    return table[name]()


class ContractGraph(nn.Module):
    """``(image, *state_in) -> (*contract outputs, *state_out)`` around an eval-mode model."""

    def __init__(self, model: UnifiedModel) -> None:
        super().__init__()
        self.model = model
        self.state_suffixes = tuple(model.initial_state(1).named())
        self.output_names = expected_outputs(model.tasks)

    @property
    def input_names(self) -> list[str]:
        return [IMAGE.name] + [STATE_IN_PREFIX + s for s in self.state_suffixes]

    @property
    def all_output_names(self) -> list[str]:
        return list(self.output_names) + [STATE_OUT_PREFIX + s for s in self.state_suffixes]

    def forward(self, image: Tensor, *state_in: Tensor) -> tuple[Tensor, ...]:
        state = TemporalState.from_named(dict(zip(self.state_suffixes, state_in)))
        out, new_state = self.model(image, state)
        named = new_state.named()
        return (tuple(_contract_value(n, out) for n in self.output_names)
                + tuple(named[s] for s in self.state_suffixes))


@dataclass(frozen=True)
class HeadCosts:
    """Parameters and GFLOPs (1e9 multiply-or-add operations, one frame) per model part."""

    parameters: dict[str, int]
    gflops: dict[str, float]


def measure_head_costs(model: UnifiedModel) -> HeadCosts:
    """Count parameters per part and FLOPs of one eval-mode frame (batch 1, previous frame in the
    state) with torch.utils.flop_counter. Includes a ``total``."""
    parts = model.head_modules()
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in parts.items()}
    params["total"] = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    image = torch.zeros(1, model.input_height, model.input_width, 3, dtype=torch.uint8)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(image, model.initial_state(1))
    model.train(was_training)
    counts = counter.get_flop_counts()
    root = type(model).__name__
    gflops = {name: sum(counts.get(f"{root}.{name}", {}).values()) / 1e9 for name in parts}
    gflops["total"] = sum(counts.get("Global", {}).values()) / 1e9
    return HeadCosts(params, {k: round(v, 4) for k, v in gflops.items()})


def build_metadata(model: UnifiedModel, *, recipe: dict | None = None,
                   data_summary: dict | None = None,
                   intrinsics_normalized: Sequence[float] | None = None,
                   costs: HeadCosts | None = None) -> ModelMetadata:
    """The contract metadata of ``model``."""
    costs = costs or measure_head_costs(model)
    k = tuple(float(v) for v in (intrinsics_normalized or DEFAULT_INTRINSICS_NORMALIZED))
    if len(k) != 4:
        raise ValueError(f"intrinsics_normalized must be [fx/W, fy/H, (cx+0.5)/W, (cy+0.5)/H], got {list(k)}")
    lo, hi = model.options.depth_range_m
    return ModelMetadata(
        contract_version=CONTRACT_VERSION, tasks=model.tasks,
        input_height=model.input_height, input_width=model.input_width,
        intrinsics_normalized=k, depth_min_m=lo, depth_max_m=hi,
        steering_window=(model.options.steering_window if model.steering is not None
                         else DEFAULT_STEERING_WINDOW),
        latent_dim=model.latent_dim, backbone=model.backbone_name,
        training_recipe=dict(recipe or {"status": "untrained (random initialisation)"}),
        data_summary=dict(data_summary or {"datasets": []}),
        head_parameters=costs.parameters, head_gflops=costs.gflops,
        producer=f"unified_perception {__version__}")


def fold_constants(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Fold the exporter's leftover constant subgraphs and drop its Identity/duplicate nodes with
    ONNX's own optimizer (onnxscript): standard-domain ops only, same maths, fewer nodes for
    TensorRT's parser. Raises if the result left the standard ONNX domain."""
    folded = onnxscript.optimizer.optimize(proto)
    if not isinstance(folded, onnx.ModelProto):      # an onnx_ir model in some onnxscript versions
        folded = onnxscript.ir.serde.serialize_model(folded)
    domains = {node.domain for node in folded.graph.node} - {"", "ai.onnx"}
    if domains:
        raise RuntimeError(f"constant folding introduced non-standard ops ({sorted(domains)})")
    return folded


def _declare_static_output_shapes(proto: onnx.ModelProto,
                                  shapes: dict[str, tuple[int, ...]]) -> None:
    """Declare every output as ``[N, *static]``: the exporter's shape inference leaves some
    spatial axes symbolic once the batch axis is dynamic."""
    for output in proto.graph.output:
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        dims.add().dim_param = "N"
        for size in shapes[output.name]:
            dims.add().dim_value = int(size)


def export_model(model: UnifiedModel, path: str | Path, *, recipe: dict | None = None,
                 data_summary: dict | None = None,
                 intrinsics_normalized: Sequence[float] | None = None,
                 opset: int = DEFAULT_OPSET, weights_fp16: bool = False) -> Path:
    """Write ``model`` as one ONNX file at ``path`` under the contract; returns the path.

    Uses the TorchScript-based exporter (``dynamo=False``): it handles the data-independent control
    flow here reliably and keeps the batch axis symbolic with ``dynamic_axes``. Every other size is
    a constant in the graph (the model computes spatial sizes from its configured input size, not
    from ``tensor.shape``); leftover constant subgraphs are folded (:func:`fold_constants`) and a
    softmax over the channel axis and squares are written out for faster kernels
    (:mod:`unified_perception.deploy.graph_rewrites`). The
    result is checked with ``onnx.checker`` (full check, shape inference included).
    ``weights_fp16``: store the weights as float16, computed in float32
    (:func:`~unified_perception.train.export_fp16.store_weights_fp16`): half the file size.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu()
    was_training = model.training
    model.eval()
    metadata = build_metadata(model, recipe=recipe, data_summary=data_summary,
                              intrinsics_normalized=intrinsics_normalized)
    graph = ContractGraph(model).eval()
    batch = 2
    image = torch.zeros(batch, model.input_height, model.input_width, 3, dtype=torch.uint8)
    state = tuple(model.initial_state(batch).named().values())
    names_in, names_out = graph.input_names, graph.all_output_names
    dynamic = {name: {0: "N"} for name in names_in + names_out}
    with torch.no_grad():
        shapes = [tuple(t.shape[1:]) for t in graph(image, *state)]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (image, *state), str(path), input_names=names_in,
                          output_names=names_out, dynamic_axes=dynamic, opset_version=opset,
                          dynamo=False, do_constant_folding=True)
    model.train(was_training)
    proto = fold_constants(onnx.load(str(path)))
    rewrite_for_speed(proto)            # same maths, faster kernels
    _declare_static_output_shapes(proto, dict(zip(names_out, shapes)))
    if weights_fp16:
        store_weights_fp16(proto)
    del proto.metadata_props[:]
    for key, value in metadata.to_props().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "unified_perception"
    proto.producer_version = __version__
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return path
