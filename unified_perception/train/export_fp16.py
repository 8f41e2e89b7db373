"""Float16 weight STORAGE for an exported ONNX graph: half the file, the same float32 compute.

Every large float32 initializer (a weight tensor) is stored as float16 and followed by a ``Cast``
back to float32 under its original name, so every consumer still sees float32 and the graph's
arithmetic, inputs and outputs are those of the float32 model. ONNX Runtime folds the casts of
constant initializers into float32 constants when it creates the session, so its run time is that
of the float32 file (measured in the model card); TensorRT does the same when it builds an engine.
The only change is the rounding of each weight to float16 (relative error <= 2**-11).

Small initializers (scalars, eps, scale factors, index tables) stay float32: their count is what
keeps the file from halving, their bytes are negligible, and rounding an eps of 1e-12 to float16
would make it zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MIN_ELEMENTS = 1024
"""Float32 initializers with at least this many values are stored as float16."""

FP16_MAX = float(np.finfo(np.float16).max)
FP16_SUFFIX = "_fp16"


@dataclass(frozen=True)
class Fp16Storage:
    """What :func:`store_weights_fp16` changed: tensors and values converted, values left float32."""

    tensors: int
    values_fp16: int
    values_fp32: int


def store_weights_fp16(proto: onnx.ModelProto, min_elements: int = MIN_ELEMENTS) -> Fp16Storage:
    """Store the float32 initializers of ``proto``'s main graph with at least ``min_elements``
    values (and every value within float16 range) as float16, each with a Cast to float32 that
    takes over the original name. Modifies ``proto`` in place; returns what changed."""
    graph = proto.graph
    keep: list[TensorProto] = []
    casts: list[onnx.NodeProto] = []
    converted = values_fp16 = values_fp32 = 0
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT:
            keep.append(init)
            continue
        values = numpy_helper.to_array(init)
        if values.size < min_elements or not np.all(np.abs(values) <= FP16_MAX):
            keep.append(init)
            values_fp32 += values.size
            continue
        stored = numpy_helper.from_array(values.astype(np.float16), init.name + FP16_SUFFIX)
        keep.append(stored)
        casts.append(helper.make_node("Cast", [stored.name], [init.name], to=TensorProto.FLOAT,
                                      name=f"{init.name}{FP16_SUFFIX}_to_fp32"))
        converted += 1
        values_fp16 += values.size
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)      # casts first: the graph stays topologically sorted
    return Fp16Storage(converted, values_fp16, values_fp32)


def weights_stored_fp16(proto: onnx.ModelProto) -> bool:
    """True when ``proto`` holds float16 initializers cast to float32 (as written above)."""
    fp16 = {i.name for i in proto.graph.initializer if i.data_type == TensorProto.FLOAT16}
    return any(n.op_type == "Cast" and n.input[0] in fp16 for n in proto.graph.node)
