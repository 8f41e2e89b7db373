"""A softmax over an inner axis, squares, matrix-vector products, few-channel bilinear upsamplings
(with the class ArgMax over one) and Atan are written out as the same maths; the export applies them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, shape_inference

import torch
import torch.nn.functional as F

from unified_perception.deploy.graph_rewrites import (atan_as_arithmetic, decompose_inner_softmax,
                                                      linear_upsampling_matrix, matvec_as_matmul,
                                                      rewrite_for_speed, small_resize_as_matmul,
                                                      square_pow_as_mul,
                                                      upsampled_argmax_channels_last)


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


def test_the_interpolation_matrix_is_torch_bilinear_upsampling() -> None:
    x = np.random.default_rng(3).standard_normal((5, 7)).astype(np.float32)
    for fh, fw in ((2, 2), (4, 4), (3, 10), (1, 4)):
        expected = F.interpolate(torch.from_numpy(x)[None, None], scale_factor=(float(fh), float(fw)),
                                 mode="bilinear", align_corners=False)[0, 0].numpy()
        separable = linear_upsampling_matrix(5, fh) @ x @ linear_upsampling_matrix(7, fw).T
        np.testing.assert_allclose(separable, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(linear_upsampling_matrix(6, 4).sum(axis=1), 1.0, rtol=1e-6)


def _resizes(channels: tuple[int, ...], factors: tuple[float, float], mode: str = "linear",
             argmax_keepdims: int | None = None) -> onnx.ModelProto:
    """One Resize per entry of ``channels`` of an input ``[N, c, 3, 5]`` (N open); with
    ``argmax_keepdims`` an ArgMax over the channels of the first one's output is the output."""
    fh, fw = factors
    scales = onnx.numpy_helper.from_array(np.array([1.0, 1.0, fh, fw], np.float32), "scales")
    inputs, outputs, nodes = [], [], []
    for i, c in enumerate(channels):
        inputs.append(helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, ["N", c, 3, 5]))
        nodes.append(helper.make_node("Resize", [f"x{i}", "", "scales"], [f"y{i}"], mode=mode,
                                      coordinate_transformation_mode="half_pixel", name=f"resize{i}"))
        if i == 0 and argmax_keepdims is not None:
            nodes.append(helper.make_node("ArgMax", ["y0"], ["ids"], axis=1, keepdims=argmax_keepdims,
                                          name="argmax"))
            ids_shape = ["N", 1, "H", "W"] if argmax_keepdims else ["N", "H", "W"]
            outputs.append(helper.make_tensor_value_info("ids", TensorProto.INT64, ids_shape))
        else:
            outputs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, ["N", c, "H", "W"]))
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, initializer=[scales]),
                             opset_imports=[helper.make_opsetid("", 18)])


def test_few_channel_bilinear_upsamplings_become_two_matmuls_with_the_same_values() -> None:
    rng = np.random.default_rng(4)
    proto = _resizes((1, 3, 40), (4.0, 4.0))
    feeds = {f"x{i}": rng.standard_normal((2, c, 3, 5)).astype(np.float32) for i, c in enumerate((1, 3, 40))}
    before = _run(proto, feeds)
    assert small_resize_as_matmul(proto, max_channels=24) == 2
    onnx.checker.check_model(proto, full_check=True)
    assert [n.name for n in proto.graph.node if n.op_type == "Resize"] == ["resize2"], "40 channels stay"
    after = _run(proto, feeds)
    for a, b in zip(after, before):
        assert a.shape == b.shape == (2, a.shape[1], 12, 20)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    nearest = _resizes((1,), (2.0, 2.0), mode="nearest")
    fractional = _resizes((1,), (1.5, 2.0))
    assert small_resize_as_matmul(nearest) == 0 and small_resize_as_matmul(fractional) == 0


def test_the_argmax_over_upsampled_logits_is_taken_channels_last_with_the_same_ids() -> None:
    rng = np.random.default_rng(5)
    logits = rng.standard_normal((2, 19, 3, 5)).astype(np.float32)
    logits[:, 7] = logits[:, 3]             # exact ties: the first index wins, as before
    for keepdims in (0, 1):
        proto = _resizes((19,), (4.0, 4.0), argmax_keepdims=keepdims)
        before = _run(proto, {"x0": logits})[0]
        assert upsampled_argmax_channels_last(proto) == 1
        onnx.checker.check_model(proto, full_check=True)
        ops = [n.op_type for n in proto.graph.node]
        assert "Resize" not in ops and ops.count("ArgMax") == 1
        after = _run(proto, {"x0": logits})[0]
        assert after.shape == before.shape
        np.testing.assert_array_equal(after, before)
        assert not (after == 7).any()


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
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in graph.value_info}
    few_channel = [n.name for n in graph.node if n.op_type == "Resize" and n.input[0] in shapes
                   and 0 < shapes[n.input[0]][1] <= 24
                   and {a.name: a.s for a in n.attribute}.get("mode") == b"linear"]
    assert few_channel == [], "few-channel bilinear upsamplings should be MatMuls"


def test_atan_is_written_out_with_ops_every_provider_has_within_a_micro_radian() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])
    proto = helper.make_model(helper.make_graph([helper.make_node("Atan", ["x"], ["y"], name="a")], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    assert atan_as_arithmetic(proto) == 1
    onnx.checker.check_model(proto, full_check=True)
    assert {n.op_type for n in proto.graph.node} <= {"Clip", "Mul", "Add", "Sqrt", "Div"}
    rng = np.random.default_rng(4)
    values = np.concatenate([rng.uniform(-3, 3, 20000), rng.standard_cauchy(20000) * 1e3,
                             np.logspace(-30, 38, 500), -np.logspace(-30, 38, 500),
                             [0.0, 1.0, -1.0, np.inf, -np.inf]]).astype(np.float32)
    got = _run(proto, {"x": values})[0]
    assert np.abs(got - np.arctan(values.astype(np.float64))).max() < 1e-6
    assert np.isnan(_run(proto, {"x": np.array([np.nan], np.float32)})[0]).all()
    assert atan_as_arithmetic(proto) == 0                       # nothing left to rewrite


def test_the_exported_model_has_no_atan_left(tmp_path: Path) -> None:
    from unified_perception.train.export import export_model
    from unified_perception.train.model import build_unified_model

    # the shipped model's steering adds the bicycle model's atan(wheelbase * curvature)
    model = build_unified_model("resnet18", input_height=64, input_width=128, seed=0, preset="car_lean",
                                latent_ego_motion=True, steering_kinematic=True)
    export_model(model, tmp_path / "car_lean.onnx")
    ops = [n.op_type for n in onnx.load(str(tmp_path / "car_lean.onnx")).graph.node]
    assert "Atan" not in ops and ops.count("Sqrt") >= 2


def test_the_written_out_atan_stays_float_in_int8() -> None:
    from unified_perception.deploy.quantize import kept_float_nodes

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])
    proto = helper.make_model(helper.make_graph(
        [helper.make_node("Atan", ["x"], ["/model/steering/Atan_output_0"], name="/model/steering/Atan"),
         helper.make_node("Identity", ["/model/steering/Atan_output_0"], ["y"], name="out")], "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17)])
    assert atan_as_arithmetic(proto) == 1
    written = [n.name for n in proto.graph.node if n.name != "out"]
    assert len(written) == 30 and set(written) <= set(kept_float_nodes(proto.graph))  # its Adds too
