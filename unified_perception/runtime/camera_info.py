"""A camera's ``sensor_msgs/CameraInfo`` in, the outputs' intrinsics and CameraInfo fields out.

Works on any message with the CameraInfo fields (``height``, ``width``, ``distortion_model``,
``d``, ``k``): rclpy messages on the node, rosbags messages in offline replay, so both derive the
outputs' intrinsics and ``depth/camera_info`` the same way. K is ``[3, 3]`` in pixels.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from unified_perception.contract import ModelMetadata
from unified_perception.runtime.preprocess import (
    intrinsics_from_normalized, intrinsics_problem, scale_intrinsics)

UNDISTORTED = ("plumb_bob", (0.0,) * 5)
"""Distortion model and coefficients of an image taken as undistorted."""


def _calibration_hw(info: Any, image_hw: tuple[int, int]) -> tuple[int, int]:
    """The size ``info`` was calibrated at: its own, else (0 x 0 in the message) the image's."""
    return (int(info.height), int(info.width)) if info.height and info.width else image_hw


def _K(info: Any) -> np.ndarray:
    return np.asarray(info.k, dtype=np.float64).reshape(3, 3)


def camera_info_problem(info: Any | None, image_hw: tuple[int, int]) -> str:
    """Why ``info`` cannot give the intrinsics of an image of ``image_hw`` ("" when it can or when
    there is none: a missing or all-zero K means uncalibrated, not broken)."""
    if info is None or not np.any(np.asarray(info.k)):
        return ""
    return intrinsics_problem(_K(info), _calibration_hw(info, image_hw), image_hw)


def output_intrinsics(info: Any | None, image_hw: tuple[int, int], model_hw: tuple[int, int],
                      metadata: ModelMetadata) -> np.ndarray:
    """``[3, 3]`` K (px) at the model output size ``model_hw``.

    From the camera's CameraInfo (at its own calibration size, else the image size ``image_hw``);
    without one, or with one that :func:`camera_info_problem` refuses, the model's training
    intrinsics.
    """
    return _intrinsics_and_problem(info, image_hw, model_hw, metadata)[0]


def _intrinsics_and_problem(info: Any | None, image_hw: tuple[int, int], model_hw: tuple[int, int],
                            metadata: ModelMetadata) -> tuple[np.ndarray, str]:
    """:func:`output_intrinsics` and :func:`camera_info_problem`, the check run once."""
    problem = camera_info_problem(info, image_hw)
    if info is not None and np.any(np.asarray(info.k)) and not problem:
        return scale_intrinsics(_K(info), _calibration_hw(info, image_hw), model_hw), problem
    return intrinsics_from_normalized(metadata.intrinsics_normalized, model_hw), problem


class CameraIntrinsics:
    """:func:`output_intrinsics` and :func:`camera_info_problem` of one camera, worked out again
    only when its CameraInfo's K or calibration size or the image size change (the node asks
    every frame; the checks cost about 0.2 ms of numpy each time).

    ``model_hw``: the model's output size; ``metadata``: its training intrinsics (the fallback).
    """

    def __init__(self, model_hw: tuple[int, int], metadata: ModelMetadata) -> None:
        self._model_hw = tuple(model_hw)
        self._metadata = metadata
        self._key: tuple | None = None
        self._K = np.eye(3)
        self._problem = ""

    def get(self, info: Any | None, image_hw: tuple[int, int]) -> tuple[np.ndarray, str]:
        """``(K [3, 3] at the output size, read-only; why info was refused or "")``."""
        key = (None if info is None else
               (np.asarray(info.k, dtype=np.float64).tobytes(), int(info.height), int(info.width)),
               tuple(image_hw))
        if key != self._key:
            K, self._problem = _intrinsics_and_problem(info, image_hw, self._model_hw, self._metadata)
            K.flags.writeable = False
            self._K, self._key = K, key
        return self._K, self._problem


class CameraInfoFields(NamedTuple):
    """The array and string fields of an output ``CameraInfo`` (float64 arrays)."""

    distortion_model: str
    d: np.ndarray       # [n] distortion coefficients
    k: np.ndarray       # [9] K row-major
    r: np.ndarray       # [9] identity: outputs are not rectified
    p: np.ndarray       # [12] P = [K | 0] row-major


def camera_info_fields(K: np.ndarray, source: Any | None = None) -> CameraInfoFields:
    """Fields of the CameraInfo of an output with intrinsics ``K`` ``[3, 3]`` (px).

    The outputs are the input image resized, so they keep its lens distortion: ``source`` (the
    input's CameraInfo) gives the distortion model and coefficients, which live in normalised
    image coordinates and so hold at any size. Without one (or without a distortion model in it)
    the image is taken as undistorted (:data:`UNDISTORTED`).
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    model, d = ((source.distortion_model, source.d)
                if source is not None and source.distortion_model else UNDISTORTED)
    return CameraInfoFields(str(model), np.asarray(d, dtype=np.float64).reshape(-1),
                            K.reshape(-1), np.eye(3).reshape(-1), P.reshape(-1))
