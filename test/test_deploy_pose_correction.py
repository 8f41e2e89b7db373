"""The INT8 pose translation correction: estimated against the float model, written into the pose
head's last convolution, rotation untouched; too little motion or an implausible factor is not
applied."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from replay_helpers import SIZE, synth
from unified_perception.deploy.pose_correction import (MIN_MOVING_PAIRS, estimate_correction,
                                                       pose_head_output_conv, scale_translation_rows,
                                                       translations_m)
from unified_perception.deploy.quantize import model_frames
from unified_perception.eval.replay_input import InputBag
from unified_perception.runtime.engine import check_session
from unified_perception.runtime.state import state_specs


@pytest.fixture(scope="module")
def sequences(tmp_path_factory: pytest.TempPathFactory) -> list[list[np.ndarray]]:
    """Two runs of consecutive frames of a synthetic drive (the state restarts between them)."""
    bag = synth(tmp_path_factory.mktemp("pose_correction") / "drive", "--frames", "12")
    with InputBag(bag) as frames:
        images = [image for image in model_frames(frames, SIZE) if image is not None]
    return [images[:6], images[6:]]


def _scaled_copy(model: Path, factor: float, out: Path) -> Path:
    proto = onnx.load(str(model))
    scale_translation_rows(proto, factor)
    onnx.save(proto, str(out))
    return out


def _ego_motions(model: Path, images: list[np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    specs = state_specs(check_session(session, str(model))[1])
    state = {s.in_name: s.zeros(1) for s in specs}
    motions = []
    for image in images:
        ego, *new_state = session.run(["ego_motion", *(s.out_name for s in specs)], {"image": image, **state})
        state = {s.in_name: v for s, v in zip(specs, new_state)}
        motions.append(ego[0])
    return np.stack(motions[1:])          # the first frame has no pair


def test_scaling_the_translation_rows_scales_the_ego_motion_translation_and_keeps_its_rotation(
        tiny_model_path: Path, sequences: list[list[np.ndarray]], tmp_path: Path) -> None:
    scaled = _scaled_copy(tiny_model_path, 1.03, tmp_path / "scaled.onnx")
    before, after = _ego_motions(tiny_model_path, sequences[0]), _ego_motions(scaled, sequences[0])
    np.testing.assert_allclose(after[:, :3, :3], before[:, :3, :3], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(after[:, :3, 3], axis=1),
                               1.03 * np.linalg.norm(before[:, :3, 3], axis=1), rtol=1e-4)
    proto = onnx.load(str(scaled))
    conv = pose_head_output_conv(proto.graph)
    assert conv is not None and conv.input[1].endswith("_translation_corrected")
    assert not [i.name for i in proto.graph.initializer if i.name == "model.pose.head.6.weight"], \
        "the replaced weights are dropped"


def test_a_shrunk_translation_is_estimated_and_corrected_back_to_the_float_model(
        tiny_model_path: Path, sequences: list[list[np.ndarray]], tmp_path: Path) -> None:
    reference = translations_m(tiny_model_path, sequences)
    assert reference.size == sum(len(s) - 1 for s in sequences) >= MIN_MOVING_PAIRS
    shrunk = _scaled_copy(tiny_model_path, 0.98, tmp_path / "shrunk.onnx")
    correction = estimate_correction(tiny_model_path, shrunk, sequences)
    assert correction.applied, correction
    assert correction.factor == pytest.approx(1 / 0.98, rel=1e-4)
    corrected = _scaled_copy(shrunk, correction.factor, tmp_path / "corrected.onnx")
    np.testing.assert_allclose(translations_m(corrected, sequences), reference, rtol=1e-4, atol=1e-7)


def test_too_little_motion_or_an_implausible_factor_is_not_applied_and_nothing_is_written(
        tiny_model_path: Path, sequences: list[list[np.ndarray]], tmp_path: Path) -> None:
    copy = tmp_path / "copy.onnx"
    shutil.copy(tiny_model_path, copy)
    few = estimate_correction(tiny_model_path, copy, [sequences[0][:3]])
    assert not few.applied and "fewer than" in few.reason
    far = _scaled_copy(tiny_model_path, 0.8, tmp_path / "far.onnx")
    bytes_before = far.read_bytes()
    implausible = estimate_correction(tiny_model_path, far, sequences)
    assert not implausible.applied and implausible.factor == pytest.approx(1.25, rel=1e-3)
    assert far.read_bytes() == bytes_before
