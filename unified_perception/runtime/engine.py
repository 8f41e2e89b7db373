"""The inference engine: one ONNX Runtime session, N cameras per call, temporal state per camera.

``InferenceEngine(EngineConfig(model_path=...))`` loads the model, checks it against the contract
(``contract.check_model_io``), picks the execution provider from an ordered preference list, warms
up, and then turns camera frames into :class:`FrameResult`\\ s. Each camera owns one batch row of the
model's temporal state: the ``state_out_*`` of its frame t is its ``state_in_*`` at t+1, restarted
from zeros on its first frame, after :meth:`InferenceEngine.reset`, when time goes backwards or
when the gap to its previous frame exceeds ``max_gap_s``, and after a frame whose outputs were not
finite (NaN / Inf: the state it wrote is not trusted either). With a GPU provider the state stays on the
device between calls (I/O binding, :mod:`runtime.device_state`).

No torch, no rclpy: this is what runs on the car.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnxruntime as ort

from unified_perception import contract
from unified_perception.contract import ContractError, ModelMetadata, TensorInfo
from unified_perception.runtime.device_state import DeviceStates
from unified_perception.runtime.int8_saturation import saturation_warning
from unified_perception.runtime.model_files import ModelLoadError, existing_model_file
from unified_perception.runtime.preprocess import batch_images, check_rgb
from unified_perception.runtime.providers import (
    CPU, DEFAULT_TRT_CACHE_DIR, DISPLAY_NAMES, GPU_PROVIDERS, PROVIDERS, SHORT_NAMES, TENSORRT,
    ProviderChoice, explain_fallback, select_providers)
from unified_perception.runtime.state import HostStates, StateSpec, reset_reason, state_specs
from unified_perception.runtime.stats import BatchStats

__all__ = ["CameraFrame", "ContractError", "EngineConfig", "FrameResult", "InferenceEngine",
           "ModelLoadError"]

_LOG = logging.getLogger("unified_perception.runtime")


@dataclass(frozen=True)
class EngineConfig:
    """How to run a model. Times in seconds."""

    model_path: str                 # a bare file name is looked up in the package's models folders
    providers: tuple[str, ...] = PROVIDERS     # ordered preference
    trt_fp16: bool = True
    trt_cache_dir: str = DEFAULT_TRT_CACHE_DIR     # persistent engine + timing cache
    max_gap_s: float = 0.5          # per-camera state reset when the gap to the previous frame exceeds this
    warmup_runs: int = 2
    intra_op_threads: int = 0       # 0 = onnxruntime default
    intra_op_spinning: bool = False  # CPU threads spin-wait between operators within a call (dedicated cores)
    device_id: int = 0              # GPU index for the CUDA / TensorRT providers
    state_on_device: bool | None = None  # None: on the device exactly when a GPU provider is active
    warmup_batch: int = 1           # cameras per warm-up call: TensorRT builds (and caches) an engine per batch size


@dataclass(frozen=True)
class CameraFrame:
    """One camera image to run. ``stamp_s``: the image's header stamp in seconds."""

    camera: str
    image_rgb: np.ndarray           # [H, W, 3] uint8 RGB, any size (resized to the model size)
    stamp_s: float


@dataclass
class FrameResult:
    """The model's outputs for one camera frame, everything at the model's input size ``(h, w)``.

    Two-frame outputs (``motion_prob``, ``scene_flow_m``, ``T_cam_prev_cam_cur``) are None unless
    ``pair_valid``. Outputs of tasks the model does not serve are None.
    """

    camera: str
    stamp_s: float
    depth_m: np.ndarray | None              # [h, w] float32, metres along optical z
    semantic: np.ndarray | None             # [h, w] uint8 class ids
    instances: np.ndarray | None            # [h, w] int32, 0 = none
    panoptic: np.ndarray | None             # [h, w] int32, class * 1000 + instance
    motion_prob: np.ndarray | None          # [h, w] float32   (None when not pair_valid)
    scene_flow_m: np.ndarray | None         # [h, w, 3] float32 optical frame of t (None when not pair_valid)
    T_cam_prev_cam_cur: np.ndarray | None   # [4, 4] float64 (None when not pair_valid)
    steering_rad: float | None              # positive = left
    latent: np.ndarray                      # [D] float32
    pair_valid: bool
    dt_s: float | None                      # seconds since this camera's previous frame, None after a reset
    reset_reason: str = ""                  # why this camera's state restarted here ("" = it did not)
    non_finite: tuple[str, ...] = ()        # outputs holding NaN / Inf: publish nothing of this frame

    @property
    def finite(self) -> bool:
        """False when any output of this frame holds NaN or Inf (a broken model or input)."""
        return not self.non_finite


def check_session(session: ort.InferenceSession, model: str
                  ) -> tuple[ModelMetadata, list[TensorInfo], list[TensorInfo]]:
    """Check a loaded model against the contract: its metadata, inputs and outputs as declared.

    Raises :class:`ContractError` naming every problem.
    """
    inputs = [TensorInfo(a.name, a.type, tuple(a.shape)) for a in session.get_inputs()]
    outputs = [TensorInfo(a.name, a.type, tuple(a.shape)) for a in session.get_outputs()]
    meta = contract.check_model_io(inputs, outputs, session.get_modelmeta().custom_metadata_map,
                                   model=model)
    return meta, inputs, outputs


class InferenceEngine:
    """Runs a contract model on batches of camera frames. Thread-safe (one call at a time).

    Attributes: ``metadata`` (:class:`ModelMetadata`), ``active_provider`` (``tensorrt``, ``cuda``
    or ``cpu``), ``provider_reason`` (one sentence), ``input_size`` (``(h, w)`` pixels),
    ``batches`` (:class:`BatchStats`: frames per :meth:`infer` call, warm-up excluded).
    """

    def __init__(self, config: EngineConfig, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        self._log = log or _LOG.info
        self._lock = threading.Lock()
        if not math.isfinite(config.max_gap_s) or config.max_gap_s <= 0:
            raise ValueError(f"max_gap_s must be a positive number of seconds, got {config.max_gap_s}")
        self.model_path = existing_model_file(config.model_path)
        choice = select_providers(config.providers, ort.get_available_providers(),
                                  trt_fp16=config.trt_fp16, trt_cache_dir=config.trt_cache_dir,
                                  device_id=config.device_id)
        self._session, failed = _create_session(self.model_path, choice, config.intra_op_threads,
                                                config.intra_op_spinning)
        self.active_provider, self.provider_reason = explain_fallback(
            choice, self._session.get_providers(), failed)
        self.metadata: ModelMetadata
        self.metadata, inputs, _ = check_session(self._session, str(self.model_path))
        self.input_size: tuple[int, int] = (self.metadata.input_height, self.metadata.input_width)
        self.state_specs: tuple[StateSpec, ...] = state_specs(inputs)
        self.output_names: tuple[str, ...] = self.metadata.expected_outputs
        self._host = HostStates(self.state_specs)
        on_device = (config.state_on_device if config.state_on_device is not None
                     else self.active_provider in GPU_PROVIDERS)
        self._device = (DeviceStates(self.state_specs,
                                     "cuda" if self.active_provider in GPU_PROVIDERS else "cpu",
                                     config.device_id)
                        if on_device and self.state_specs else None)
        self._last_stamp: dict[str, float] = {}
        self._reset_requested: dict[str, str] = {}     # camera -> why its next frame starts afresh
        self.batches = BatchStats()
        self._log(f"unified_perception: running {self.model_path.name} on "
                  f"{DISPLAY_NAMES.get(self.active_provider, self.active_provider)}: "
                  f"{self.provider_reason}")
        if self.active_provider == CPU and (warning := saturation_warning(self.metadata.quantization)):
            self._log(f"unified_perception: warning: {warning}")
        self._warm_up(config.warmup_runs, config.warmup_batch)

    # ------------------------------------------------------------------------------------------

    def infer(self, frames: Sequence[CameraFrame]) -> list[FrameResult]:
        """Run N cameras' frames in ONE batched session call; results in the order of ``frames``.

        Raises ``ValueError`` for a malformed frame (not ``[H, W, 3] uint8``, stamp not finite,
        the same camera twice in one call).
        """
        if not frames:
            return []
        cameras = [f.camera for f in frames]
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"each camera may appear once per call, got {cameras}")
        for f in frames:
            check_rgb(f.image_rgb, f"camera '{f.camera}' image")
            if not math.isfinite(f.stamp_s):
                raise ValueError(f"camera '{f.camera}' frame has a non-finite stamp {f.stamp_s}")
        image = batch_images([f.image_rgb for f in frames], self.input_size)
        with self._lock:
            session = self._require_session()
            previous = [self._last_stamp.get(c) for c in cameras]
            reasons = [self._reset_requested.get(f.camera)
                       or reset_reason(p, f.stamp_s, self.config.max_gap_s)
                       for p, f in zip(previous, frames)]
            fresh = [bool(r) for r in reasons]
            if self._device is not None:
                outputs = self._device.run(session, image, cameras, fresh, self._host, self.output_names)
            else:
                outputs = self._run_host(session, image, cameras, fresh)
            bad = non_finite_outputs(outputs, len(frames))
            for f, names in zip(frames, bad):
                self._reset_requested.pop(f.camera, None)
                if names:   # the state this frame wrote is as broken as its outputs
                    self._reset_requested[f.camera] = (
                        f"the previous frame's outputs were not finite ({', '.join(names)})")
                self._last_stamp[f.camera] = f.stamp_s
            self.batches.record(len(frames))
        return [self._result(i, f, outputs, None if fresh[i] else f.stamp_s - previous[i], reasons[i],
                             bad[i])
                for i, f in enumerate(frames)]

    def reset(self, camera: str | None = None) -> None:
        """Forget the temporal state of ``camera`` (or of every camera): its next frame starts afresh."""
        with self._lock:
            if self._device is not None:
                self._device.download(self._host)
            self._host.drop(camera)
            if camera is None:
                self._reset_requested.update(dict.fromkeys(self._last_stamp, "reset requested"))
                self._last_stamp.clear()
            elif self._last_stamp.pop(camera, None) is not None:
                self._reset_requested[camera] = "reset requested"

    def close(self) -> None:
        """Release the session (and its GPU memory). The engine cannot run afterwards."""
        with self._lock:
            self._session = None
            self._device = None
            self._host.drop()
            self._last_stamp.clear()

    # ------------------------------------------------------------------------------------------

    def _require_session(self) -> ort.InferenceSession:
        if self._session is None:
            raise RuntimeError("the inference engine is closed; create a new InferenceEngine")
        return self._session

    def _run_host(self, session: ort.InferenceSession, image: np.ndarray, cameras: Sequence[str],
                  fresh: Sequence[bool]) -> dict[str, np.ndarray]:
        feeds = {contract.IMAGE.name: image, **self._host.gather(cameras, fresh)}
        names = [*self.output_names, *(s.out_name for s in self.state_specs)]
        values = session.run(names, feeds)
        n = len(self.output_names)
        self._host.scatter(cameras, {s.in_name: v for s, v in zip(self.state_specs, values[n:])})
        return dict(zip(self.output_names, values[:n]))

    def _warm_up(self, runs: int, batch: int) -> None:
        """Run ``runs`` throw-away calls of ``batch`` frames (builds TensorRT engines, allocates arenas)."""
        session = self._require_session()
        h, w = self.input_size
        n = max(1, int(batch))
        feeds = {contract.IMAGE.name: np.zeros((n, h, w, 3), np.uint8),
                 **{s.in_name: s.zeros(n) for s in self.state_specs}}
        for _ in range(max(0, runs)):
            session.run(list(self.output_names), feeds)

    def _result(self, i: int, frame: CameraFrame, out: dict[str, np.ndarray], dt_s: float | None,
                reason: str, non_finite: tuple[str, ...]) -> FrameResult:
        pair_valid = dt_s is not None and "pair_valid" in out and bool(out["pair_valid"][i])

        def row(name: str, two_frame: bool = False) -> np.ndarray | None:
            if name not in out or (two_frame and not pair_valid):
                return None
            return out[name][i]

        depth, motion = row("depth"), row("motion_prob", True)
        flow, pose, steering = row("scene_flow", True), row("ego_motion", True), row("steering")
        return FrameResult(
            camera=frame.camera,
            stamp_s=frame.stamp_s,
            depth_m=None if depth is None else depth[0],
            semantic=row("semantic"),
            instances=row("instances"),
            panoptic=row("panoptic"),
            motion_prob=None if motion is None else motion[0],
            scene_flow_m=None if flow is None else np.ascontiguousarray(np.moveaxis(flow, 0, -1)),
            T_cam_prev_cam_cur=None if pose is None else pose.astype(np.float64),
            steering_rad=None if steering is None else float(steering[0]),
            latent=out["latent"][i],
            pair_valid=pair_valid,
            dt_s=dt_s,
            reset_reason=reason,
            non_finite=non_finite,
        )


def non_finite_outputs(outputs: dict[str, np.ndarray], n: int) -> list[tuple[str, ...]]:
    """Per batch row, the names of the floating-point outputs holding NaN or Inf (``n`` rows)."""
    bad: list[list[str]] = [[] for _ in range(n)]
    for name, value in outputs.items():
        if not np.issubdtype(value.dtype, np.floating):
            continue
        rows = ~np.isfinite(value.reshape(n, -1)).all(axis=1)
        for i in np.flatnonzero(rows):
            bad[i].append(name)
    return [tuple(names) for names in bad]


DISABLED_OPTIMIZERS = ("QDQPropagationTransformer",)
"""ONNX Runtime graph optimizers turned off for every model (a float model has nothing they act on).
QDQ propagation moves a QuantizeLinear up across data-movement operators; in an INT8 model it moves
the one after the float encoder stem (``deploy.quantize.ENCODER_STEM_SCOPES``) above the max-pool,
which then runs as a uint8 max-pool in the planar layout: 1.15 ms of a 10 ms INT8 pass at 96x320,
against 0.05 ms in float, blocked."""


def _create_session(path: Path, choice: ProviderChoice, intra_op_threads: int, spinning: bool = False
                    ) -> tuple[ort.InferenceSession, list[tuple[str, str]]]:
    """A session on the first provider of ``choice`` that initialises; returns it and the
    ``(provider, error)`` of those that failed. Raises :class:`ModelLoadError` when none does.
    ``spinning``: whether idle CPU threads spin-wait for the next operator during a call (off:
    they sleep between operators and leave the cores to the node's other threads and processes,
    which was faster on a shared CPU). They stop spinning when the call returns either way
    (``session.force_spinning_stop``): spinning between calls, ONNX Runtime's default, kept 0.9
    of a core busy at 20 Hz for no speed-up over spinning within calls only (0.37 at 96x320)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads > 0:
        options.intra_op_num_threads = int(intra_op_threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    if choice.active == TENSORRT:
        cache = choice.providers[0][1]["trt_engine_cache_path"]
        try:
            os.makedirs(cache, exist_ok=True)
        except OSError as err:
            raise ModelLoadError(f"cannot create the TensorRT engine cache directory '{cache}' "
                                 f"({err.strerror}); set 'trt_cache_dir' to a writable directory") from None
    failed: list[tuple[str, str]] = []
    for first in range(len(choice.providers)):
        try:
            session = ort.InferenceSession(str(path), sess_options=options,
                                           providers=choice.ort_names[first:],
                                           provider_options=choice.ort_options[first:],
                                           disabled_optimizers=list(DISABLED_OPTIMIZERS))
            return session, failed
        except Exception as err:  # onnxruntime raises its own pybind exception types
            failed.append((SHORT_NAMES[choice.ort_names[first]], f"{type(err).__name__}: {err}"))
    raise ModelLoadError(
        f"onnxruntime cannot load '{path}' ({failed[-1][1].strip()[:300]}); is it an ONNX model "
        f"exported with `unified-perception export`? Re-export it")
