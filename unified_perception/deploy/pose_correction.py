"""Post-quantization correction of the pose decoder's translation scale (:func:`estimate_correction`,
applied with :func:`scale_translation_rows`).

The pose decoder stays float in an INT8 model, but the features it reads carry the encoder's
quantization error, and that error changes the length of the predicted frame-to-frame translation
a little and consistently: on the shipped model's calibration frames 0.6 % shorter with full-range
weights and 0.9 % longer with the 7-bit default (factor x0.9909; on 36 held-out drives the
corrected INT8 path is then 0.09 % shorter than float32's). Odometry integrates every frame's
translation, so the scale error shows in RPE and ATE (scaling the INT8 path by 0.995 raised the
shipped model's ATE by 1.1 %, by 0.99 by 2.5 %; docs/deployment.md). The
correction is a bias correction at the output, in the manner of post-training quantization's
bias correction: run the float and the INT8 model on the calibration frames (each carrying its own
temporal state, as the runtime does), take the ratio of their summed translation lengths, and scale
the translation rows (3..5) of the pose head's last convolution in the INT8 file by it. The head is
linear from that convolution to the 6-number pose vector (spatial mean, constant scale), so every
reader of the pose vector inside the graph (the ego-motion output, the motion decoder's rigid flow,
the frame latent, the kinematic steering term) sees the corrected translation; rotation is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from unified_perception.contract import EGO_MOTION, IMAGE, PAIR_VALID
from unified_perception.deploy.graph_rewrites import drop_unused_initializers
from unified_perception.runtime.engine import check_session
from unified_perception.runtime.state import state_specs

POSE_HEAD_SCOPE = "/model/pose/head/"
TRANSLATION_ROWS = slice(3, 6)
"""Output channels of the pose head's last convolution that hold the translation (the vector is
``[axis-angle, translation]``, see ``train/heads/pose.py``)."""
MIN_MOVING_PAIRS = 8
"""Calibration frame pairs with motion needed before a correction is estimated."""
MIN_TRANSLATION_M = 1e-3
"""A pair counts as moving when the float model's translation is at least this long (m)."""
MAX_CORRECTION = 0.05
"""Corrections further than this from 1 are not applied (they would mean a broken calibration,
not quantization noise)."""


@dataclass(frozen=True)
class TranslationCorrection:
    """The factor for the INT8 model's translation and what it was estimated from."""

    factor: float               # float / INT8 summed translation length over the moving pairs
    moving_pairs: int
    applied: bool               # whether the factor is to be (and, by quantize, is) applied
    reason: str = ""            # why it is not applied ("" when it is)


def translations_m(model: str | Path, sequences: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Length (m) of the frame-to-frame translation the model predicts for every valid pair of
    ``sequences`` (each a run of consecutive ``[1, h, w, 3] uint8`` images; the temporal state
    restarts at every sequence). Empty when the model has no ego-motion output."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    _, inputs, outputs = check_session(session, str(model))
    names = {o.name for o in outputs}
    if EGO_MOTION.name not in names or PAIR_VALID.name not in names:
        return np.zeros(0)
    specs = state_specs(inputs)
    wanted = [EGO_MOTION.name, PAIR_VALID.name, *(s.out_name for s in specs)]
    lengths = []
    for images in sequences:
        state = {s.in_name: s.zeros(1) for s in specs}
        for image in images:
            ego, valid, *new_state = session.run(wanted, {IMAGE.name: image, **state})
            state = {s.in_name: value for s, value in zip(specs, new_state)}
            if bool(np.asarray(valid).reshape(-1)[0]):
                lengths.append(float(np.linalg.norm(ego[0, :3, 3])))
    return np.asarray(lengths)


def pose_head_output_conv(graph: onnx.GraphProto) -> onnx.NodeProto | None:
    """The last Conv of the pose head's name scope (the one writing the 6-number vector)."""
    convs = [n for n in graph.node if n.op_type == "Conv"
             and any(POSE_HEAD_SCOPE in name for name in (n.name, *n.output))]
    return convs[-1] if convs else None


def scale_translation_rows(proto: onnx.ModelProto, factor: float) -> str:
    """Multiply the translation rows of the pose head's last convolution (weights and bias) by
    ``factor``, in place, under new initializer names (the originals may be shared). Returns the
    convolution's name. Raises ValueError when there is no such float convolution."""
    conv = pose_head_output_conv(proto.graph)
    if conv is None:
        raise ValueError("the model has no pose head convolution to correct")
    initializers = {i.name: i for i in proto.graph.initializer}
    if len(conv.input) < 2 or conv.input[1] not in initializers:
        raise ValueError(f"the pose head convolution '{conv.name}' has no float weight initializer")
    for slot in (1, 2):
        if slot == 2 and (len(conv.input) < 3 or not conv.input[2]):
            continue            # no bias (an exporter may drop a zero one)
        if conv.input[slot] not in initializers:
            raise ValueError(f"the pose head convolution '{conv.name}' has no float initializer at "
                             f"input {slot}")
        values = numpy_helper.to_array(initializers[conv.input[slot]]).copy()
        if values.shape[0] != 6 or values.dtype != np.float32:
            raise ValueError(f"the pose head convolution '{conv.name}' does not write 6 float32 "
                             f"channels (input {slot}: {values.dtype} {list(values.shape)})")
        values[TRANSLATION_ROWS] *= np.float32(factor)
        name = f"{conv.input[slot]}_translation_corrected"
        proto.graph.initializer.append(numpy_helper.from_array(values, name))
        conv.input[slot] = name
    drop_unused_initializers(proto.graph)
    return conv.name


def estimate_correction(float_model: Path, int8_model: Path,
                        sequences: Sequence[Sequence[np.ndarray]]) -> TranslationCorrection:
    """The INT8 model's translation scale against the float model's on ``sequences``; ``applied``
    when there is enough motion and the factor is plausible. Writes nothing: the caller applies it
    with :func:`scale_translation_rows`."""
    reference = translations_m(float_model, sequences)
    if reference.size == 0:
        return TranslationCorrection(1.0, 0, False, "the model predicts no ego-motion")
    quantized = translations_m(int8_model, sequences)
    moving = reference >= MIN_TRANSLATION_M
    if int(moving.sum()) < MIN_MOVING_PAIRS or quantized[moving].sum() <= 0.0:
        return TranslationCorrection(1.0, int(moving.sum()), False,
                                     f"fewer than {MIN_MOVING_PAIRS} calibration frame pairs with motion")
    factor = float(reference[moving].sum() / quantized[moving].sum())
    if abs(factor - 1.0) > MAX_CORRECTION:
        return TranslationCorrection(factor, int(moving.sum()), False,
                                     f"factor {factor:.3f} is further than {MAX_CORRECTION:.0%} from 1")
    return TranslationCorrection(factor, int(moving.sum()), True)
