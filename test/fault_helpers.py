"""Helpers of the fault suite: a model that yields NaN / Inf on chosen frames, a running node.

``poisoned_model`` edits an exported contract model with ``onnx``: every floating-point output
(including the temporal state) is multiplied by a factor computed from the input image, which is
NaN when the image's top-left pixel has red value 255, +Inf when it is 254, and 1 otherwise. The
rest of the model is untouched, so the node sees a real model that breaks on specific frames.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from rclpy.node import Node
from rclpy.parameter import Parameter

from ros_helpers import RosSession
from unified_perception.ros.node import PerceptionNode, autostart

NAN_CORNER, INF_CORNER = 255, 254
"""Top-left red value that makes :func:`poisoned_model` output NaN / Inf (any other: finite)."""


def _const(name: str, value: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name))


def poisoned_model(source: Path, target: Path) -> Path:
    """Write ``source`` with every float output scaled by the corner factor (see module doc)."""
    model = onnx.load(str(source))
    graph = model.graph
    nodes = [
        _const("poison_starts", np.array([0, 0, 0], np.int64)),
        _const("poison_ends", np.array([1, 1, 1], np.int64)),
        _const("poison_axes", np.array([1, 2, 3], np.int64)),
        _const("poison_flat", np.array([-1], np.int64)),
        _const("poison_one", np.array(1.0, np.float32)),
        _const("poison_nan_value", np.array(float(NAN_CORNER), np.float32)),
        _const("poison_inf_value", np.array(float(INF_CORNER), np.float32)),
        helper.make_node("Slice", ["image", "poison_starts", "poison_ends", "poison_axes"],
                         ["poison_corner_u8"]),
        helper.make_node("Cast", ["poison_corner_u8"], ["poison_corner_4d"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["poison_corner_4d", "poison_flat"], ["poison_corner"]),
        helper.make_node("Equal", ["poison_corner", "poison_nan_value"], ["poison_is_nan_b"]),
        helper.make_node("Cast", ["poison_is_nan_b"], ["poison_is_nan"], to=TensorProto.FLOAT),
        helper.make_node("Equal", ["poison_corner", "poison_inf_value"], ["poison_is_inf_b"]),
        helper.make_node("Cast", ["poison_is_inf_b"], ["poison_is_inf"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["poison_one", "poison_is_nan"], ["poison_keep"]),
        helper.make_node("Div", ["poison_keep", "poison_keep"], ["poison_nan_factor"]),   # 0/0
        helper.make_node("Sub", ["poison_one", "poison_is_inf"], ["poison_not_inf"]),
        helper.make_node("Div", ["poison_one", "poison_not_inf"], ["poison_inf_factor"]),  # 1/0
        helper.make_node("Mul", ["poison_nan_factor", "poison_inf_factor"], ["poison_factor"]),
    ]
    for out in graph.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        raw, rank = f"{out.name}_unpoisoned", len(out.type.tensor_type.shape.dim)
        for node in graph.node:
            node.output[:] = [raw if o == out.name else o for o in node.output]
            node.input[:] = [raw if i == out.name else i for i in node.input]
        nodes += [_const(f"{out.name}_poison_shape", np.array([-1] + [1] * (rank - 1), np.int64)),
                  helper.make_node("Reshape", ["poison_factor", f"{out.name}_poison_shape"],
                                   [f"{out.name}_poison"]),
                  helper.make_node("Mul", [raw, f"{out.name}_poison"], [out.name])]
    graph.node.extend(nodes)
    onnx.save(model, str(target))
    return target


def frame_with_corner(rgb: np.ndarray, corner: int) -> np.ndarray:
    """``rgb`` with an 8x8 top-left block of red value ``corner`` (it survives an area resize)."""
    out = rgb.copy()
    out[:8, :8, 0] = corner
    return out


@contextmanager
def running_node(model: Path, namespace: str, *overrides: Parameter,
                 args: list[str] | None = None) -> Iterator[tuple[RosSession, PerceptionNode, Node]]:
    """An autostarted node in ``/namespace`` (CPU, no warm-up) and a tester node beside it."""
    session = RosSession(args)
    try:
        node = PerceptionNode(context=session.context, cli_args=[
            "--ros-args", "-r", f"__ns:=/{namespace}"], parameter_overrides=[
            Parameter("model_path", value=str(model)), Parameter("providers", value=["cpu"]),
            Parameter("warmup_runs", value=0), *overrides])
        assert autostart(node)
        session.add(node)
        tester = session.add(Node(f"{namespace}_tester", namespace=namespace,
                                  context=session.context))
        yield session, node, tester
    finally:
        session.close()
