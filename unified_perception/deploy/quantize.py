"""INT8 static quantization of a contract model (ONNX QDQ), calibrated on the frames of a bag.

The convolutions (the model's compute: encoder, depth, segmentation and motion heads) get int8
weights per output channel and 8-bit activations with ranges measured on real frames; what must
stay exact or is cheap stays float or integer as exported: the encoder's stem (the first
convolution reads the camera image), panoptic grouping (ids, centre NMS), the pose decoder, the
steering attention and the frame latent, the depth softmax and range mapping, the blanking of rows
without a previous frame. So ``semantic``, ``instances``,
``panoptic`` and ``pair_valid`` keep their contract dtypes and meaning; they are computed from
quantized features.

Calibration feeds what the node feeds: each frame decoded (``runtime.image_codec``) and resized
(``runtime.preprocess``) exactly as the runtime does, and as temporal state the ``state_out_*``
the float32 model produced for the previous frame of the bag (zeros on the first frame), so the
two-frame heads and the state inputs are calibrated on the values they will see.

The result is a QDQ file (QuantizeLinear / DequantizeLinear around float ops) for one of two
targets (:data:`TARGETS`). ``tensorrt``: int8 activations, symmetric (zero point 0), which is what
TensorRT's explicit quantization accepts: TensorRT builds its INT8 engine from the file's scales
(no calibration cache), and ONNX Runtime's CPU provider runs the same file too. ``cpu``: uint8
activations with a zero point (the u8s8 kernels ONNX Runtime's CPU provider is fastest with, and
the full 8 bits for the non-negative ReLU outputs); TensorRT rejects non-zero zero points, so this
file is for CPUs only. Its metadata is the float model's plus ``quantization`` (target, format,
types, calibration bag and frames).

Weights of the ``cpu`` target use 7 of their 8 bits by default (``weight_bits=7``, ONNX Runtime's
``reduce_range``). On x86 CPUs without VNNI (AVX2, AVX-512 before Cascade Lake) the u8s8 kernels
multiply with ``VPMADDUBSW``, which adds two uint8 x int8 products into an int16 that saturates
when both are large; VNNI accumulates straight into int32. With full-range weights the shipped
model's motion IoU fell by 19 % on an AVX2 CPU while it moved by 0.4 % on an AVX-512 VNNI one.
With 7-bit weights the pair sum stays inside int16, so every x86 CPU computes the same integers.
On twelve held-out drives on the AVX2 CPU, float32 against 7-bit INT8: motion IoU +0.3 %, depth
AbsRel +0.8 % (with the depth bins' convolution float, :data:`DEPTH_PREDICT_SCOPES`), every other
metric within 0.7 % but ATE -2.0 % (its per-drive changes: -0.8 +- 1.3 % standard error).
``weight_bits=8`` is for CPUs known to have VNNI (or ARM); the engine warns when such a file runs
on an x86 CPU without it. The ``tensorrt`` target keeps 8-bit weights (GPUs accumulate in int32).

Last, the pose translation's scale is corrected against the float model on the calibration frames
(``deploy.pose_correction``): quantized features change the predicted translation's length
slightly and consistently, and odometry integrates it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                      QuantType, quantize_static)

from unified_perception.contract import IMAGE, ContractError, MetadataKey
from unified_perception.deploy.graph_rewrites import restore_fp32_weights, rewrite_for_speed
from unified_perception.deploy.pose_correction import (TranslationCorrection, estimate_correction,
                                                       scale_translation_rows)
from unified_perception.eval.replay_input import InputBag
from unified_perception.eval.replay_settings import ReplayError
from unified_perception.runtime.engine import check_session
from unified_perception.runtime.image_codec import ImageDecodeError, decode_any_rgb
from unified_perception.runtime.preprocess import batch_images
from unified_perception.runtime.state import state_specs

QUANTIZED_OPS = ("Conv", "Relu", "Add", "Concat", "Resize", "MaxPool", "AveragePool")
"""Op types quantized: the convolutions (the compute) and the ops between them, so that feature
maps stay uint8 from one convolution to the next (ReLU folds into the convolution's output range).
Everything else (softmax, ELU, sigmoid, comparisons, MatMul) stays float."""
ENCODER_STEM_SCOPES = ("/model/encoder/conv1/", "/model/encoder/relu/", "/model/encoder/maxpool/")
"""The encoder's stem (7x7 convolution on the normalised image, ReLU, max-pool), kept float. In
int8 its input is the normalised image re-quantized per tensor onto a grid that does not line up
with the camera's own 8 bits, and its 147 taps per channel get 8-bit weights; the pose decoder reads
the stride-4 features those errors run into. On the shipped model's four held-out drives the
quantized stem moved odometry ATE by -6.3 %, RPE rotation by +1.4 % and steering RMSE by +1.3 %;
float, -1.0 %, -0.1 % and +0.1 %. It costs nothing: int8 kernels gain little on three input
channels, and the float max-pool runs in the blocked layout (with ONNX Runtime's QDQ propagation
off, see ``runtime.engine.DISABLED_OPTIMIZERS``)."""
DEPTH_PREDICT_SCOPES = ("/model/depth/predict",)
"""The depth decoder's last convolution (the logits of the 32 disparity bins), kept float. With
7-bit weights (:data:`WEIGHT_BITS`) in it, the shipped model's depth AbsRel rose by 2.0 % on the
twelve held-out drives (every drive +1.4 to +2.8 %); float, by 0.76 %, the same as with the whole
depth decoder at full 8-bit range (0.73 %). It is one convolution of 32 channels (about 0.5 ms of
a 40 ms INT8 pass at 96x320 on an AVX2 CPU)."""
KEPT_FLOAT_SCOPES = ("/model/grouping/", "/model/steering/", "/model/latent/", "/model/pose/",
                     *ENCODER_STEM_SCOPES, *DEPTH_PREDICT_SCOPES)
"""Name scopes never quantized whatever their op type: panoptic grouping (one-hot MatMuls and the
MaxPool centre NMS must stay exact), the steering attention and frame latent (tiny), the pose
decoder (1 % of the time; its 6 numbers are integrated into odometry, so they keep float), the
encoder stem (:data:`ENCODER_STEM_SCOPES`), the depth bins' logits (:data:`DEPTH_PREDICT_SCOPES`).
The motion decoders are quantized: on the shipped model's four held-out drives that moved motion IoU
by -0.4 % and scene-flow EPE by +0.2 %, and took INT8 / float32 from 0.65 to 0.54 at 96x320 (the
light preset's single narrow decoder had lost 4.1 % IoU quantized, for 1 % of the time)."""


@dataclass(frozen=True)
class Target:
    """Quantization types for one runtime."""

    activation_type: QuantType
    activation_symmetric: bool
    activations: str            # for the metadata
    runs_on: str
    weight_bits: int            # default bits of the int8 weights' range (7: ``reduce_range``)


TARGETS: dict[str, Target] = {
    "cpu": Target(QuantType.QUInt8, False, "uint8 asymmetric, per tensor", "ONNX Runtime CPU", 7),
    "tensorrt": Target(QuantType.QInt8, True, "int8 symmetric (zero point 0), per tensor",
                       "TensorRT INT8 (explicit quantization) and ONNX Runtime CPU", 8),
}
WEIGHT_BITS = (7, 8)
"""Ranges of the int8 weights: 7 bits (-64..64, no int16 saturation on x86 CPUs without VNNI) or
the full 8 (-127..127)."""


class QuantizeError(RuntimeError):
    """A problem the user can fix (model, bag, options). The message says what to do."""


@dataclass(frozen=True)
class CalibrationSummary:
    """What the calibration saw: the bag, its camera topic, frames used and frames skipped."""

    bag: str
    image_topic: str
    frames: int
    undecodable: int
    target: str = "cpu"
    translation: TranslationCorrection | None = None    # the pose translation's scale correction
    weight_bits: int = 7


class BagCalibrationReader(CalibrationDataReader):
    """Inputs of consecutive frames of a bag for ``model``: ``image [1, h, w, 3] uint8`` resized
    as the runtime does and every ``state_in_*`` = the float model's ``state_out_*`` of the
    previous frame (zeros first). At most ``frames`` frames; frames that cannot be decoded are
    skipped (and counted) like the node drops them, restarting the state."""

    def __init__(self, model: Path, bag: InputBag, frames: int) -> None:
        self._session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        meta, inputs, _ = check_session(self._session, str(model))
        self._size = (meta.input_height, meta.input_width)
        self._specs = state_specs(inputs)
        self._frames = model_frames(bag, self._size)
        self._limit = frames
        self.used = 0
        self.undecodable = 0
        self.sequences: list[list[np.ndarray]] = [[]]   # the images fed, split where state restarted
        self._state = self._zero_state()

    def _zero_state(self) -> dict[str, np.ndarray]:
        return {spec.in_name: spec.zeros(1) for spec in self._specs}

    def _next_image(self) -> np.ndarray | None:
        for image in self._frames:
            if image is not None:
                return image
            self.undecodable += 1
            self._state = self._zero_state()     # the node restarts pairs after a dropped frame
            if self.sequences[-1]:
                self.sequences.append([])
        return None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.used >= self._limit:
            return None
        image = self._next_image()
        if image is None:
            return None
        feeds = {IMAGE.name: image, **self._state}
        outs = self._session.run([spec.out_name for spec in self._specs], feeds)
        self._state = {spec.in_name: value for spec, value in zip(self._specs, outs)}
        self.used += 1
        self.sequences[-1].append(image)
        return feeds


def kept_float_nodes(graph: onnx.GraphProto, scopes: Sequence[str] = KEPT_FLOAT_SCOPES) -> list[str]:
    """Names of nodes in ``scopes`` (by node name or the name of a tensor they write)."""
    return [n.name for n in graph.node
            if any(s in name for s in scopes for name in (n.name, *n.output))]


def _check_model(model: Path) -> onnx.ModelProto:
    if not model.is_file():
        raise QuantizeError(f"model file '{model}' does not exist: give an ONNX file exported with "
                            f"`unified-perception export`")
    try:
        session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        check_session(session, str(model))
    except ContractError as err:
        raise QuantizeError(str(err)) from None
    except Exception as err:  # onnxruntime's own exception types for unreadable files
        raise QuantizeError(f"onnxruntime cannot load '{model}' ({str(err).strip()[:200]}); give "
                            f"an ONNX file exported with `unified-perception export`") from None
    proto = onnx.load(str(model))
    if any(n.op_type == "QuantizeLinear" for n in proto.graph.node):
        raise QuantizeError(f"model '{model}' is already quantized; quantize the float32 export")
    return proto


def _open_bag(bag: Path, topic_map: Path | None) -> InputBag:
    try:
        return InputBag(bag, topic_map)
    except ReplayError as err:
        raise QuantizeError(f"calibration bag: {err}") from None


def quantize_model(model: Path, calibration_bag: Path, out: Path, *, frames: int = 64,
                   topic_map: Path | None = None, target: str = "cpu",
                   weight_bits: int | None = None) -> CalibrationSummary:
    """Write the INT8 QDQ version of ``model`` to ``out``, calibrated on up to ``frames``
    consecutive frames of ``calibration_bag``; ``weight_bits`` (7 or 8; None: the target's
    default) is the weights' range. Raises :class:`QuantizeError` for a model that is
    not a float32 contract model, an unreadable bag, a bag without a camera topic (``topic_map``
    names it) or without a decodable frame, or an ``out`` that exists."""
    if frames < 1:
        raise QuantizeError(f"--frames must be at least 1, got {frames}")
    if target not in TARGETS:
        raise QuantizeError(f"unknown target '{target}': use one of {', '.join(TARGETS)}")
    weight_bits = TARGETS[target].weight_bits if weight_bits is None else weight_bits
    if weight_bits not in WEIGHT_BITS:
        raise QuantizeError(f"--weight-bits must be 7 or 8, got {weight_bits}")
    if out.exists():
        raise QuantizeError(f"output '{out}' already exists: choose another --out or delete it")
    proto = _check_model(model)
    with _open_bag(calibration_bag, topic_map) as bag, \
            tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as tmp:
        source = Path(tmp) / f"float_{model.name}"
        restore_fp32_weights(proto)     # float16-stored weights: quantize the weights themselves
        rewrite_for_speed(proto)    # a model exported before the rewrites existed gets them too
        onnx.save(proto, str(source))
        reader = BagCalibrationReader(source, bag, frames)
        try:
            first = reader.get_next()
        except ReplayError as err:
            raise QuantizeError(f"calibration bag: {err}") from None
        if first is None:
            raise QuantizeError(f"calibration bag {calibration_bag}: none of the frames of "
                                f"'{bag.image_topic}' could be decoded ({reader.undecodable} tried); "
                                f"give a bag whose camera topic holds images the node accepts")
        staged = Path(tmp) / out.name
        try:
            with _quiet_root_logger():     # its advice to pre-process does not apply here
                _quantize_static(source, staged, _Prepend(first, reader), proto, TARGETS[target],
                                 weight_bits)
        except ReplayError as err:
            raise QuantizeError(f"calibration bag: {err}") from None
        correction = estimate_correction(source, staged, reader.sequences)
        summary = CalibrationSummary(str(calibration_bag), bag.image_topic, reader.used,
                                     reader.undecodable, target, correction, weight_bits)
        quantized = onnx.load(str(staged))
        if correction.applied:
            scale_translation_rows(quantized, correction.factor)
        _write_metadata(quantized, proto, summary)
        onnx.save(quantized, str(staged))
        _check_model_runs(staged)
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, out)
    return summary


def _quantize_static(model: Path, out: Path, reader: CalibrationDataReader, proto: onnx.ModelProto,
                     target: Target, weight_bits: int) -> None:
    quantize_static(str(model), str(out), reader, quant_format=QuantFormat.QDQ,
                    op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
                    reduce_range=weight_bits == 7,
                    activation_type=target.activation_type, weight_type=QuantType.QInt8,
                    nodes_to_exclude=kept_float_nodes(proto.graph),
                    calibrate_method=CalibrationMethod.MinMax,
                    extra_options={"ActivationSymmetric": target.activation_symmetric,
                                   "WeightSymmetric": True})


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    """onnxruntime.quantization warns through the root logger; keep its warnings off the console."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class _Prepend(CalibrationDataReader):
    """``reader`` with one already-read sample in front of it."""

    def __init__(self, first: dict[str, np.ndarray], reader: BagCalibrationReader) -> None:
        self._first: dict[str, np.ndarray] | None = first
        self._reader = reader

    def get_next(self) -> dict[str, np.ndarray] | None:
        first, self._first = self._first, None
        return first if first is not None else self._reader.get_next()


def quantization_metadata(summary: CalibrationSummary) -> dict[str, object]:
    """The ``quantization`` metadata value of a model quantized by :func:`quantize_model`."""
    target = TARGETS[summary.target]
    return {"format": "QDQ", "precision": "int8", "target": summary.target, "runs_on": target.runs_on,
            "weights": f"int8 symmetric, per output channel, {summary.weight_bits}-bit range",
            "weight_bits": summary.weight_bits,
            "activations": target.activations, "ops": list(QUANTIZED_OPS),
            "kept_float": [s.strip("/").removeprefix("model/") for s in KEPT_FLOAT_SCOPES],
            "calibration": {"method": "min-max", "bag": Path(summary.bag).name,
                            "image_topic": summary.image_topic, "frames": summary.frames,
                            "state": "the float32 model's state_out of the previous frame"},
            "pose_translation_correction": _correction_metadata(summary.translation),
            "tool": f"onnxruntime.quantization {ort.__version__}"}


def _correction_metadata(correction: TranslationCorrection | None) -> dict[str, object] | None:
    if correction is None:
        return None
    return {"factor": round(correction.factor, 6), "applied": correction.applied,
            "moving_pairs": correction.moving_pairs,
            **({"reason": correction.reason} if correction.reason else {})}


def _write_metadata(quantized: onnx.ModelProto, source: onnx.ModelProto,
                    summary: CalibrationSummary) -> None:
    """The source model's metadata (the contract's) plus ``quantization``."""
    del quantized.metadata_props[:]
    for prop in source.metadata_props:
        if prop.key != MetadataKey.QUANTIZATION.value:
            quantized.metadata_props.add(key=prop.key, value=prop.value)
    quantized.metadata_props.add(key=MetadataKey.QUANTIZATION.value,
                                 value=json.dumps(quantization_metadata(summary)))
    quantized.producer_name, quantized.producer_version = source.producer_name, source.producer_version


def _check_model_runs(path: Path) -> None:
    """The quantized file loads and follows the contract (else it is a bug here, not the user's)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    check_session(session, str(path))


def model_frames(bag: InputBag, size_hw: tuple[int, int]) -> Iterator[np.ndarray | None]:
    """Each camera frame of ``bag`` as the model's ``image`` ``[1, h, w, 3] uint8``, decoded and
    resized as the runtime does; None for a frame the node could not decode."""
    for frame in bag.frames():
        try:
            yield batch_images([decode_any_rgb(frame.image)], size_hw)
        except ImageDecodeError:
            yield None
