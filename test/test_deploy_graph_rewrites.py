"""A softmax over an inner axis and squares are written out as the same maths; the export applies it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, shape_inference

from unified_perception.deploy.graph_rewrites import (decompose_inner_softmax, matvec_as_matmul,
                                                      rewrite_for_speed, square_pow_as_mul)


def _two_softmaxes(opset: int) -> onnx.ModelProto:
    """``x [2, 5, 3, 4]`` -> softmax over axis 1 (``inner``) and over the last axis (``last``)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 5, 3, 4])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 5, 3, 4]) for n in ("inner", "last")]
    graph = helper.make_graph([helper.make_node("Softmax", ["x"], ["inner"], axis=1, name="sm_inner"),
                               helper.make_node("Softmax", ["x"], ["last"], axis=-1, name="sm_last")],
                              "g", [x], outs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _run(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_inner_softmax_is_replaced_by_the_same_values_and_the_last_axis_one_is_kept() -> None:
    x = (np.random.default_rng(0).standard_normal((2, 5, 3, 4)) * 30).astype(np.float32)  # large logits
    for opset in (13, 18):
        proto = _two_softmaxes(opset)
        before = _run(proto, {"x": x})
        assert decompose_inner_softmax(proto) == 1
        onnx.checker.check_model(proto, full_check=True)
        softmaxes = [n for n in proto.graph.node if n.op_type == "Softmax"]
        assert [n.name for n in softmaxes] == ["sm_last"]
        after = _run(proto, {"x": x})
        np.testing.assert_allclose(after[0], before[0], rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(after[1], before[1])
        np.testing.assert_allclose(after[0].sum(axis=1), 1.0, rtol=1e-5)


def test_squares_become_a_multiplication_with_bit_identical_values_and_other_powers_stay() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 7])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [3, 7]) for n in ("sq_init", "sq_const", "cube")]
    two = onnx.numpy_helper.from_array(np.array(2.0, np.float32), "two")
    three = onnx.numpy_helper.from_array(np.array(3.0, np.float32), "three")
    nodes = [helper.make_node("Constant", [], ["two_c"], value=onnx.numpy_helper.from_array(np.array(2.0, np.float32))),
             helper.make_node("Pow", ["x", "two"], ["sq_init"]),
             helper.make_node("Pow", ["x", "two_c"], ["sq_const"]),
             helper.make_node("Pow", ["x", "three"], ["cube"])]
    proto = helper.make_model(helper.make_graph(nodes, "g", [x], outs, initializer=[two, three]),
                              opset_imports=[helper.make_opsetid("", 18)])
    values = (np.random.default_rng(1).standard_normal((3, 7)) * 1e3).astype(np.float32)
    before = _run(proto, {"x": values})
    assert square_pow_as_mul(proto) == 2
    onnx.checker.check_model(proto, full_check=True)
    assert [n.op_type for n in proto.graph.node] == ["Constant", "Mul", "Mul", "Pow"]
    after = _run(proto, {"x": values})
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


def test_a_matrix_vector_product_becomes_a_matrix_product_and_a_squeeze() -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 50, 7])
    outs = [helper.make_tensor_value_info("mv", TensorProto.FLOAT, [2, 50]),
            helper.make_tensor_value_info("mm", TensorProto.FLOAT, [2, 50, 3])]
    rng = np.random.default_rng(2)
    vector = onnx.numpy_helper.from_array(rng.standard_normal(7).astype(np.float32), "v")
    matrix = onnx.numpy_helper.from_array(rng.standard_normal((7, 3)).astype(np.float32), "m")
    nodes = [helper.make_node("MatMul", ["a", "v"], ["mv"], name="mv"),
             helper.make_node("MatMul", ["a", "m"], ["mm"], name="mm")]
    proto = helper.make_model(helper.make_graph(nodes, "g", [a], outs, initializer=[vector, matrix]),
                              opset_imports=[helper.make_opsetid("", 18)])
    values = rng.standard_normal((2, 50, 7)).astype(np.float32)
    before = _run(proto, {"a": values})
    assert matvec_as_matmul(proto) == 1
    assert rewrite_for_speed(proto)["matrix_vector"] == 0       # nothing left to rewrite
    onnx.checker.check_model(proto, full_check=True)
    assert [n.op_type for n in proto.graph.node] == ["MatMul", "Squeeze", "MatMul"]
    assert "v" not in {i.name for i in proto.graph.initializer}, "the unused vector is dropped"
    after = _run(proto, {"a": values})
    np.testing.assert_allclose(after[0], before[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(after[1], before[1])


def test_the_exported_model_has_no_softmax_over_an_inner_axis(tiny_model_path: Path) -> None:
    graph = shape_inference.infer_shapes(onnx.load(str(tiny_model_path))).graph
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in graph.value_info}
    inner = [n.name for n in graph.node if n.op_type == "Softmax"
             and next((a.i for a in n.attribute if a.name == "axis"), -1) % ranks[n.input[0]]
             != ranks[n.input[0]] - 1]
    assert inner == []
    assert any(n.op_type == "Exp" and "_decomposed" in n.name for n in graph.node)
    assert not [n.name for n in graph.node if n.op_type == "Pow"], "squares should be Mul"
    initializers = {i.name: i for i in graph.initializer}
    assert not [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in initializers
                and len(initializers[n.input[1]].dims) == 1], "matrix-vector products should be rewritten"
