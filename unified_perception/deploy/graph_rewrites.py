"""Rewrites of an ONNX graph into the same maths with faster kernels (:func:`rewrite_for_speed`).

``Softmax`` over an axis that is not the last one (the depth head's 32 disparity bins, axis 1 of
``[N, 32, H, W]``) makes ONNX Runtime's CPU kernel transpose the tensor to put the axis last and
back again: at 192x640 that one node took about a quarter of the whole model's time. Written out
as ``exp(x - max) / sum(exp(x - max))`` with ``ReduceMax`` / ``ReduceSum`` over the same axis, every
op runs on the tensor where it lies (measured 5x faster for that node). The definition is the
ONNX one (opset >= 13: softmax along ``axis`` alone), the max is subtracted first as in every
numerically safe softmax, and results match the fused kernel to float32 rounding (~1e-7).

``Pow(x, 2)`` (the squared distances of the panoptic grouping) runs the general ``pow`` per
element; ``Mul(x, x)`` is the same correctly rounded square, bit for bit, several times faster.

``MatMul(A, v)`` with a constant vector ``v [C]`` (the grouping's "is this class a thing" lookup,
``[N, H*W, C] @ [C]``) takes a matrix-vector path in ONNX Runtime's CPU kernel that was 28x slower
than ``MatMul(A, v[:, None])`` followed by ``Squeeze(-1)``: the same dot products.

Bilinear ``Resize`` (half-pixel centres, integer factors) of a tensor with few channels (the motion
mask's 1, the scene flow's 3, the semantic logits' 19 at the full-resolution ends of the heads) runs
in ONNX Runtime's blocked layout, whose blocks of 16 channels make a 1-channel upsampling cost as
much as a 16-channel one, followed by a reorder of the full-size result. Bilinear interpolation is
separable and linear: ``Y = A_h @ X @ A_w^T`` with constant ``[H, h]`` and ``[W, w]`` interpolation
matrices (two rows of weights per output, edges clamped as in ``Resize``) is the same sum of the
same two products per axis, in the plain layout, on the channels that exist.

``ArgMax`` over the channels of such an upsampling (the semantic class ids from the upsampled
logits) reads ``[N, C, H, W]`` with a stride of ``H * W`` between the values it compares: 0.36 ms
at 96x320 for 19 classes. The same interpolation written channels-last (transpose the small
``[N, C, h, w]`` input, then the two MatMuls) puts the classes next to each other, and ``ArgMax``
over the last axis took 0.12 ms. Same values, same first-index tie rule.

``Atan`` (the steering head's bicycle model, ``atan(wheelbase * curvature)``) has no kernel in
ONNX Runtime's CUDA provider: it runs on the CPU, with a copy to the host and back in the middle of
the graph, which also rules out CUDA graphs. Written out with ops every provider has: two argument
halvings ``atan(x) = 2 atan(x / (1 + sqrt(1 + x^2)))`` bring any ``x`` into ``|z| <= tan(pi/8)``,
where the odd series ``z - z^3/3 + ... + z^17/17`` is within 1e-9 of ``atan(z)``; the result is
``4 * that`` (|x| clipped at 1e18 first, where ``x^2`` would overflow; ``atan`` is pi/2 there to
float32 precision). Within 1e-6 rad of ``atan`` everywhere (float32 rounding).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference

SOFTMAX_SUFFIX = "_decomposed"


def _default_opset(proto: onnx.ModelProto) -> int:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def _shapes(proto: onnx.ModelProto) -> dict[str, tuple[int | None, ...]]:
    """Tensor name -> shape from ONNX shape inference; None for a dimension it leaves open (the
    batch). Tensors of unknown rank are absent."""
    graph = shape_inference.infer_shapes(proto).graph
    return {v.name: tuple(d.dim_value if d.HasField("dim_value") else None
                          for d in v.type.tensor_type.shape.dim)
            for v in [*graph.value_info, *graph.input, *graph.output]
            if v.type.tensor_type.HasField("shape")}


def _ranks(proto: onnx.ModelProto) -> dict[str, int]:
    """Tensor name -> rank, from ONNX shape inference (tensors of unknown rank are absent)."""
    return {name: len(shape) for name, shape in _shapes(proto).items()}


def _softmax_axis(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "axis"), -1)


def _decomposed(node: onnx.NodeProto, axis: int, opset: int) -> tuple[list[onnx.NodeProto], onnx.TensorProto]:
    """The nodes of ``exp(x - max) / sum(exp(x - max))`` over ``axis`` writing ``node``'s output."""
    x, y, base = node.input[0], node.output[0], (node.name or node.output[0]) + SOFTMAX_SUFFIX
    axes = numpy_helper.from_array(np.array([axis], np.int64), f"{base}/axes")
    if opset >= 18:      # ReduceMax takes its axes as an input from opset 18, ReduceSum from 13
        reduce_max = helper.make_node("ReduceMax", [x, axes.name], [f"{base}/max"], keepdims=1,
                                      name=f"{base}/ReduceMax")
    else:
        reduce_max = helper.make_node("ReduceMax", [x], [f"{base}/max"], axes=[axis], keepdims=1,
                                      name=f"{base}/ReduceMax")
    nodes = [
        reduce_max,
        helper.make_node("Sub", [x, f"{base}/max"], [f"{base}/shifted"], name=f"{base}/Sub"),
        helper.make_node("Exp", [f"{base}/shifted"], [f"{base}/exp"], name=f"{base}/Exp"),
        helper.make_node("ReduceSum", [f"{base}/exp", axes.name], [f"{base}/sum"], keepdims=1,
                         name=f"{base}/ReduceSum"),
        helper.make_node("Div", [f"{base}/exp", f"{base}/sum"], [y], name=f"{base}/Div"),
    ]
    return nodes, axes


def decompose_inner_softmax(proto: onnx.ModelProto) -> int:
    """Replace every ``Softmax`` of ``proto``'s main graph over a non-last axis by the same softmax
    written out (see the module docstring). Modifies ``proto`` in place; returns how many were
    replaced. Models below opset 13 (whose Softmax flattens the trailing axes) are left alone."""
    opset = _default_opset(proto)
    if opset < 13:
        return 0
    ranks = _ranks(proto)
    graph = proto.graph
    nodes: list[onnx.NodeProto] = []
    replaced = 0
    for node in graph.node:
        rank = ranks.get(node.input[0]) if node.op_type == "Softmax" and node.domain in ("", "ai.onnx") else None
        axis = _softmax_axis(node) if rank else -1
        if not rank or axis % rank == rank - 1:
            nodes.append(node)
            continue
        written_out, axes = _decomposed(node, axis % rank, opset)
        nodes += written_out
        graph.initializer.append(axes)
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return replaced


def _constant_value(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    """The value of ``name`` when it is an initializer or a ``Constant`` node's output."""
    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            return None if value is None else numpy_helper.to_array(value)
    return None


def square_pow_as_mul(proto: onnx.ModelProto) -> int:
    """Replace every ``Pow(x, 2)`` of the main graph (a constant float exponent of exactly 2) by
    ``Mul(x, x)``. Modifies ``proto`` in place; returns how many were replaced."""
    replaced = 0
    for node in proto.graph.node:
        if node.op_type != "Pow" or node.domain not in ("", "ai.onnx"):
            continue
        exponent = _constant_value(proto.graph, node.input[1])
        if exponent is None or exponent.size != 1 or float(exponent.reshape(())) != 2.0:
            continue
        x = node.input[0]
        node.op_type = "Mul"
        del node.input[:]
        node.input.extend([x, x])
        del node.attribute[:]
        replaced += 1
    return replaced


def matvec_as_matmul(proto: onnx.ModelProto) -> int:
    """Replace every ``MatMul(A, v)`` of the main graph whose ``v`` is a 1-D initializer and whose
    ``A`` has rank >= 2 by ``Squeeze(MatMul(A, v[:, None]), -1)``. Modifies ``proto`` in place;
    returns how many were replaced. Needs opset >= 13 (Squeeze with an axes input)."""
    if _default_opset(proto) < 13:
        return 0
    graph = proto.graph
    vectors = {i.name: i for i in graph.initializer if len(i.dims) == 1}
    ranks = _ranks(proto)
    nodes: list[onnx.NodeProto] = []
    replaced = 0
    for node in graph.node:
        vector = vectors.get(node.input[1]) if node.op_type == "MatMul" and node.domain in ("", "ai.onnx") else None
        if vector is None or ranks.get(node.input[0], 0) < 2:
            nodes.append(node)
            continue
        base = (node.name or node.output[0]) + "_column"
        column = numpy_helper.from_array(numpy_helper.to_array(vector).reshape(-1, 1), f"{base}/vector")
        axes = numpy_helper.from_array(np.array([-1], np.int64), f"{base}/axes")
        graph.initializer.extend([column, axes])
        nodes += [helper.make_node("MatMul", [node.input[0], column.name], [f"{base}/out"], name=f"{base}/MatMul"),
                  helper.make_node("Squeeze", [f"{base}/out", axes.name], [node.output[0]],
                                   name=f"{base}/Squeeze")]
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return replaced


def linear_upsampling_matrix(size_in: int, factor: int) -> np.ndarray:
    """``[size_in * factor, size_in]`` float32: row ``i`` holds the weights of bilinear ``Resize``
    (``half_pixel`` / ``pytorch_half_pixel`` centres, the same as torch's ``align_corners=False``)
    for output ``i``: source ``(i + 0.5) / factor - 0.5`` clamped to ``[0, size_in - 1]``."""
    out = np.arange(size_in * factor, dtype=np.float64)
    src = np.clip((out + 0.5) / factor - 0.5, 0.0, size_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, size_in - 1)
    frac = src - lo
    matrix = np.zeros((out.size, size_in), dtype=np.float64)
    np.add.at(matrix, (np.arange(out.size), lo), 1.0 - frac)
    np.add.at(matrix, (np.arange(out.size), hi), frac)
    return matrix.astype(np.float32)


SEPARABLE_RESIZE_MAX_CHANNELS = 24
"""Bilinear upsamplings of at most this many channels become two MatMuls
(:func:`small_resize_as_matmul`); wider ones stay a blocked-layout Resize."""

_HALF_PIXEL = {b"half_pixel", b"pytorch_half_pixel"}


def _integer_upsampling(graph: onnx.GraphProto, node: onnx.NodeProto,
                        shape: tuple[int | None, ...]) -> tuple[int, int] | None:
    """``(f_h, f_w)`` when ``node`` is a bilinear half-pixel Resize of the last two axes of a 4-D
    input of ``shape`` (channels, height and width known) by integer factors >= 1 given as
    constants; None otherwise."""
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if (attrs.get("mode", b"nearest") != b"linear" or attrs.get("antialias", 0)
            or attrs.get("coordinate_transformation_mode", b"half_pixel") not in _HALF_PIXEL
            or "axes" in attrs or len(shape) != 4 or None in shape[1:]):
        return None
    scales = _constant_value(graph, node.input[2]) if len(node.input) > 2 and node.input[2] else None
    sizes = _constant_value(graph, node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if scales is not None and scales.size == 4:
        factors = scales.astype(np.float64)
    elif sizes is not None and sizes.size == 4 and shape[0] is not None:
        factors = sizes.astype(np.float64) / np.asarray(shape, np.float64)
    else:
        return None
    if not (factors[:2] == 1.0).all() or (factors[2:] != np.round(factors[2:])).any() \
            or (factors[2:] < 1.0).any():
        return None
    return int(factors[2]), int(factors[3])


def _separable_upsampling(graph: onnx.GraphProto, node: onnx.NodeProto,
                          shapes: dict[str, tuple[int | None, ...]], max_channels: int
                          ) -> tuple[tuple[int, int], tuple[int | None, ...]] | None:
    """``((f_h, f_w), input shape)`` when ``node`` is a Resize that the separable rewrites take: a
    bilinear integer-factor upsampling (:func:`_integer_upsampling`, not by 1x1) of at most
    ``max_channels`` channels; None otherwise."""
    if node.op_type != "Resize" or node.domain not in ("", "ai.onnx"):
        return None
    shape = shapes.get(node.input[0])
    factors = _integer_upsampling(graph, node, shape) if shape else None
    if factors is None or shape[1] > max_channels or factors == (1, 1):
        return None
    return factors, shape


def small_resize_as_matmul(proto: onnx.ModelProto,
                           max_channels: int = SEPARABLE_RESIZE_MAX_CHANNELS) -> int:
    """Replace every bilinear integer-factor ``Resize`` of the main graph whose input
    ``[N, C, h, w]`` (N may be open) has ``C <= max_channels`` by ``MatMul(A_h, MatMul(X, A_w^T))`` (see the module
    docstring). Modifies ``proto`` in place; returns how many were replaced."""
    graph = proto.graph
    shapes = _shapes(proto)
    nodes: list[onnx.NodeProto] = []
    replaced = 0
    for node in graph.node:
        plan = _separable_upsampling(graph, node, shapes, max_channels)
        if plan is None:
            nodes.append(node)
            continue
        factors, shape = plan
        base = (node.name or node.output[0]) + "_separable"
        rows = numpy_helper.from_array(linear_upsampling_matrix(shape[2], factors[0]), f"{base}/rows")
        cols = numpy_helper.from_array(np.ascontiguousarray(linear_upsampling_matrix(shape[3], factors[1]).T),
                                       f"{base}/columns")
        graph.initializer.extend([rows, cols])
        nodes += [helper.make_node("MatMul", [node.input[0], cols.name], [f"{base}/wide"], name=f"{base}/MatMul_w"),
                  helper.make_node("MatMul", [rows.name, f"{base}/wide"], [node.output[0]], name=f"{base}/MatMul_h")]
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return replaced


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    return consumers


def _channel_argmax(node: onnx.NodeProto | None) -> bool:
    """Whether ``node`` is an ArgMax over axis 1 of a 4-D tensor (first index on ties)."""
    if node is None or node.op_type != "ArgMax" or node.domain not in ("", "ai.onnx"):
        return False
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return attrs.get("axis", 0) in (1, -3) and not attrs.get("select_last_index", 0)


def upsampled_argmax_channels_last(proto: onnx.ModelProto,
                                   max_channels: int = SEPARABLE_RESIZE_MAX_CHANNELS) -> int:
    """Replace every ``ArgMax(Resize(X), axis=1)`` of the main graph, where the Resize is one that
    :func:`small_resize_as_matmul` takes and the ArgMax is its only reader, by the upsampling
    written channels-last and an ArgMax over the last axis (see the module docstring). Modifies
    ``proto`` in place; returns how many were replaced. Needs opset >= 13."""
    if _default_opset(proto) < 13:
        return 0
    graph = proto.graph
    shapes = _shapes(proto)
    consumers = _consumers(graph)
    outputs = {o.name for o in graph.output}
    plans: dict[str, tuple[onnx.NodeProto, tuple[int, int], tuple[int | None, ...]]] = {}
    for node in graph.node:     # ArgMax name -> (its Resize, factors, the Resize's input shape)
        plan = _separable_upsampling(graph, node, shapes, max_channels)
        readers = consumers.get(node.output[0], []) if plan else []
        if (plan is None or node.output[0] in outputs or len(readers) != 1
                or not _channel_argmax(readers[0])):
            continue
        plans[readers[0].name or readers[0].output[0]] = (node, *plan)
    if not plans:
        return 0
    dropped = {id(resize) for resize, _, _ in plans.values()}
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        if id(node) in dropped:
            continue
        key = node.name or node.output[0]
        if key not in plans:
            nodes.append(node)
            continue
        resize, (fh, fw), (_, c, h, w) = plans[key]
        big_h, big_w = h * fh, w * fw
        keepdims = {a.name: helper.get_attribute_value(a) for a in node.attribute}.get("keepdims", 1)
        base = key + "_channels_last"
        rows = numpy_helper.from_array(linear_upsampling_matrix(h, fh), f"{base}/rows")
        cols = numpy_helper.from_array(linear_upsampling_matrix(w, fw), f"{base}/columns")
        flat = numpy_helper.from_array(np.array([0, h, big_w * c], np.int64), f"{base}/flat_shape")
        full = numpy_helper.from_array(np.array([0, big_h, big_w, c], np.int64), f"{base}/full_shape")
        graph.initializer.extend([rows, cols, flat, full])
        out = node.output[0]
        nodes += [
            helper.make_node("Transpose", [resize.input[0]], [f"{base}/nhwc"], perm=[0, 2, 3, 1],
                             name=f"{base}/Transpose"),
            helper.make_node("MatMul", [cols.name, f"{base}/nhwc"], [f"{base}/wide"], name=f"{base}/MatMul_w"),
            helper.make_node("Reshape", [f"{base}/wide", flat.name], [f"{base}/wide_flat"], name=f"{base}/Reshape_flat"),
            helper.make_node("MatMul", [rows.name, f"{base}/wide_flat"], [f"{base}/tall_flat"], name=f"{base}/MatMul_h"),
            helper.make_node("Reshape", [f"{base}/tall_flat", full.name], [f"{base}/logits"], name=f"{base}/Reshape_full"),
            helper.make_node("ArgMax", [f"{base}/logits"], [out if not keepdims else f"{base}/ids"], axis=3,
                             keepdims=0, name=f"{base}/ArgMax"),
        ]
        if keepdims:
            axes = numpy_helper.from_array(np.array([1], np.int64), f"{base}/axes")
            graph.initializer.append(axes)
            nodes.append(helper.make_node("Unsqueeze", [f"{base}/ids", axes.name], [out], name=f"{base}/Unsqueeze"))
    del graph.node[:]
    graph.node.extend(nodes)
    return len(plans)


def drop_unused_initializers(graph: onnx.GraphProto) -> int:
    """Remove initializers that no node reads and that are no graph output (left over by the
    rewrites; ONNX Runtime would warn about each one). Returns how many were removed."""
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [init for init in graph.initializer if init.name in used]
    removed = len(graph.initializer) - len(kept)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return removed


def restore_fp32_weights(proto: onnx.ModelProto) -> int:
    """Undo float16 weight storage (``export --weights-fp16``): every ``Cast`` to float32 of a
    float16 initializer becomes a float32 initializer under the Cast's output name (the values
    the float16 file computes with, exactly). A quantizer looks for weights among the
    initializers, so without this the convolutions of a float16-stored file would keep float
    weights. Modifies ``proto`` in place; returns how many weights were restored."""
    graph = proto.graph
    fp16 = {init.name: init for init in graph.initializer if init.data_type == onnx.TensorProto.FLOAT16}
    casts = [n for n in graph.node if n.op_type == "Cast" and len(n.input) == 1 and n.input[0] in fp16
             and {a.name: helper.get_attribute_value(a) for a in n.attribute}.get("to")
             == onnx.TensorProto.FLOAT]
    for cast in casts:
        values = numpy_helper.to_array(fp16[cast.input[0]]).astype(np.float32)
        graph.initializer.append(numpy_helper.from_array(values, cast.output[0]))
        graph.node.remove(cast)
    drop_unused_initializers(graph)
    return len(casts)


ATAN_SERIES_TERMS = 9
"""Terms of the odd series of ``atan`` after two argument halvings (|z| <= 0.4142: the first left
out, z^19/19, is under 2e-9)."""
ATAN_CLIP = 1e18
"""|x| beyond which ``atan(x)`` is pi/2 in float32 and ``x * x`` would overflow."""


def _scalar(graph: onnx.GraphProto, name: str, value: float) -> str:
    graph.initializer.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name))
    return name


def atan_as_arithmetic(proto: onnx.ModelProto) -> int:
    """Replace every float ``Atan`` of the main graph by the argument-halving series of the module
    docstring (Mul, Add, Sqrt, Div, Clip: kernels on every provider). Modifies ``proto`` in place;
    returns how many were replaced."""
    graph = proto.graph
    replaced, nodes = 0, []
    for node in graph.node:
        if node.op_type != "Atan" or node.domain not in ("", "ai.onnx"):
            nodes.append(node)
            continue
        base = f"{node.name or node.output[0]}_arith"
        one = _scalar(graph, f"{base}/one", 1.0)
        new: list[onnx.NodeProto] = []

        def op(kind: str, inputs: list[str], tag: str) -> str:
            out = f"{base}/{tag}"
            new.append(helper.make_node(kind, inputs, [out], name=out))
            return out

        z = op("Clip", [node.input[0], _scalar(graph, f"{base}/low", -ATAN_CLIP),
                        _scalar(graph, f"{base}/high", ATAN_CLIP)], "clipped")
        for halving in range(2):              # atan(x) = 2 atan(x / (1 + sqrt(1 + x^2)))
            root = op("Sqrt", [op("Add", [op("Mul", [z, z], f"sq{halving}"), one], f"sq1_{halving}")],
                      f"root{halving}")
            z = op("Div", [z, op("Add", [root, one], f"den{halving}")], f"half{halving}")
        z2 = op("Mul", [z, z], "z2")
        series = _scalar(graph, f"{base}/c{ATAN_SERIES_TERMS - 1}",
                         (-1) ** (ATAN_SERIES_TERMS - 1) / (2 * ATAN_SERIES_TERMS - 1))
        for k in range(ATAN_SERIES_TERMS - 2, -1, -1):   # Horner in z^2: sum (-1)^k z^2k / (2k + 1)
            series = op("Add", [op("Mul", [series, z2], f"h{k}"),
                                _scalar(graph, f"{base}/c{k}", (-1) ** k / (2 * k + 1))], f"p{k}")
        four_z = op("Mul", [z, _scalar(graph, f"{base}/four", 4.0)], "four_z")
        new.append(helper.make_node("Mul", [four_z, series], [node.output[0]], name=f"{base}/atan"))
        nodes += new
        replaced += 1
    if replaced:
        del graph.node[:]
        graph.node.extend(nodes)
    return replaced


def rewrite_for_speed(proto: onnx.ModelProto) -> dict[str, int]:
    """Apply every rewrite of this module to ``proto`` in place; returns how many of each."""
    counts = {"inner_softmax": decompose_inner_softmax(proto), "square_pow": square_pow_as_mul(proto),
              "matrix_vector": matvec_as_matmul(proto), "atan": atan_as_arithmetic(proto),
              "upsampled_argmax": upsampled_argmax_channels_last(proto),
              "small_resize": small_resize_as_matmul(proto)}
    drop_unused_initializers(proto.graph)
    return counts
