"""The exported graph is static apart from the batch axis, and TensorRT-friendly.

A random light model at 64x128 is exported; after ONNX shape inference every intermediate tensor and
output has a known rank and concrete dims except possibly axis 0 (the batch N, the only dynamic
axis). Panoptic grouping uses precomputed index tensors (no Range), no floor-division arithmetic (no
Mod/Xor), and its id arithmetic runs in int32: int64 tensors come only from the ONNX ops whose
outputs are int64 by specification (ArgMax, ArgMin, TopK indices) and are cast straight away.
"""

from __future__ import annotations

from collections import Counter

import onnx
import pytest
from onnx import TensorProto, shape_inference

from unified_perception.train.export import export_model
from unified_perception.train.model import build_unified_model

HEIGHT, WIDTH = 64, 128
INT64_BY_SPEC = {"ArgMax", "ArgMin", "TopK"}


@pytest.fixture(scope="module")
def inferred(tmp_path_factory: pytest.TempPathFactory) -> onnx.ModelProto:
    model = build_unified_model("resnet18", HEIGHT, WIDTH, seed=0, preset="light")
    path = export_model(model, tmp_path_factory.mktemp("graph") / "model.onnx")
    return shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True)


def _dims(value: onnx.ValueInfoProto) -> list[int | str] | None:
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tensor.shape.dim]


def test_every_tensor_but_the_batch_axis_has_a_static_shape(inferred: onnx.ModelProto) -> None:
    values = list(inferred.graph.value_info) + list(inferred.graph.output)
    assert len(values) > 300, "shape inference annotated too few tensors to be a meaningful check"
    unknown_rank = [v.name for v in values if _dims(v) is None]
    assert not unknown_rank, f"tensors of unknown rank: {unknown_rank[:10]}"
    symbolic = [(v.name, _dims(v)) for v in values
                if not all(isinstance(d, int) for d in _dims(v)[1:])]
    assert not symbolic, f"non-batch axes left symbolic: {symbolic[:10]}"


def test_no_range_or_integer_floor_division_ops(inferred: onnx.ModelProto) -> None:
    ops = Counter(node.op_type for node in inferred.graph.node)
    assert ops["Range"] == 0 and ops["Mod"] == 0 and ops["Xor"] == 0, ops
    assert ops["Resize"] > 0, "expected the model's upsampling in the graph"


def test_int64_appears_only_where_onnx_mandates_it(inferred: onnx.ModelProto) -> None:
    dtype = {v.name: v.type.tensor_type.elem_type
             for v in list(inferred.graph.value_info) + list(inferred.graph.output)}
    producers = Counter(node.op_type for node in inferred.graph.node if node.op_type != "Constant"
                        and any(dtype.get(o) == TensorProto.INT64 for o in node.output))
    assert set(producers) <= INT64_BY_SPEC, producers
    int64 = {o for node in inferred.graph.node if node.op_type in INT64_BY_SPEC
             for o in node.output if dtype.get(o) == TensorProto.INT64}
    consumers = Counter(node.op_type for node in inferred.graph.node
                        if any(i in int64 for i in node.input))
    assert set(consumers) == {"Cast"}, f"int64 ids used before their cast to int32: {consumers}"
    ids = {o.name: o.type.tensor_type.elem_type for o in inferred.graph.output}
    assert ids["instances"] == ids["panoptic"] == TensorProto.INT32
