"""The montage: per frame, camera | depth | semantic | instances | motion | scene flow | steering,
predictions on the top row and ground truth below, as an animated GIF plus one still PNG.

Colours come from :mod:`unified_perception.runtime.colorize` (class colours of the contract, turbo
inverse depth, hashed instance colours, magenta motion tint); scene flow is coloured by direction in
the camera's x-z plane (hue) and magnitude (brightness); steering is a needle, straight up = 0 and
full deflection = :data:`STEERING_GAUGE_RAD`. Missing outputs are grey panels marked "n/a".
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from unified_perception.contract import CLASSES
from unified_perception.eval.bag_frames import FrameMaps, MatchedFrame
from unified_perception.runtime.colorize import (
    colorize_depth, colorize_instances, colorize_semantic, overlay_motion, semantic_palette)

COLUMNS = ("camera", "depth", "semantic", "instances", "motion", "scene flow", "steering")
STEERING_GAUGE_RAD = math.radians(30.0)
"""Steering angle drawn at full (90 degree) needle deflection."""
FLOW_FULL_M = 0.5
"""Scene flow magnitude (m per frame) drawn at full brightness."""
DEPTH_NEAR_M = 3.0
"""Nearest depth of the colour scale (m); the far end is the evaluation's depth cap."""
GREY = 64

_PALETTE = semantic_palette([c.color_rgb for c in CLASSES])


def colorize_flow(flow_m: np.ndarray, full_m: float = FLOW_FULL_M) -> np.ndarray:
    """``[H, W, 3] float32`` scene flow (m, optical frame) -> ``[H, W, 3] uint8`` RGB: hue = direction
    of (x, z) (right / forward), brightness = ``min(|flow| / full_m, 1)``, black where not finite."""
    flow = np.nan_to_num(np.asarray(flow_m, dtype=np.float32))
    hue = (np.arctan2(flow[..., 2], flow[..., 0]) % (2 * np.pi)) * (180.0 / (2 * np.pi))
    value = np.clip(np.linalg.norm(flow, axis=-1) / full_m, 0.0, 1.0) * 255.0
    hsv = np.stack([hue, np.full(hue.shape, 255.0, np.float32), value], axis=-1).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def steering_gauge(size_hw: tuple[int, int], angle_rad: float | None, color: tuple[int, int, int]
                   ) -> np.ndarray:
    """A ``[h, w, 3] uint8`` dial: a needle at ``angle_rad`` (positive left), the value in degrees."""
    h, w = size_hw
    panel = np.full((h, w, 3), 24, np.uint8)
    if angle_rad is None or not math.isfinite(angle_rad):
        return _label(panel, "n/a", (w // 3, h // 2))
    centre = (w // 2, int(h * 0.85))
    radius = int(min(w / 2, h * 0.75) * 0.9)
    cv2.ellipse(panel, centre, (radius, radius), 0, 180, 360, (90, 90, 90), 1, cv2.LINE_AA)
    deflection = float(np.clip(angle_rad / STEERING_GAUGE_RAD, -1.0, 1.0)) * (math.pi / 2)
    tip = (int(centre[0] - radius * math.sin(deflection)), int(centre[1] - radius * math.cos(deflection)))
    cv2.line(panel, centre, tip, color, 2, cv2.LINE_AA)
    return _label(panel, f"{math.degrees(angle_rad):+.2f} deg", (4, h - 4))


def _label(panel: np.ndarray, text: str, origin: tuple[int, int]) -> np.ndarray:
    scale = max(panel.shape[0] / 240.0, 0.3)
    cv2.putText(panel, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 2, cv2.LINE_AA)
    cv2.putText(panel, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return panel


def _blank(size_hw: tuple[int, int]) -> np.ndarray:
    panel = np.full((*size_hw, 3), GREY, np.uint8)
    return _label(panel, "n/a", (size_hw[1] // 3, size_hw[0] // 2))


def _row(maps: FrameMaps, camera: np.ndarray | None, steering_rad: float | None,
         size_hw: tuple[int, int], depth_max_m: float, needle: tuple[int, int, int]) -> list[np.ndarray]:
    """The panels of one row at the frame's size ``(H, W)``."""
    base = camera if camera is not None and camera.shape[:2] == size_hw else np.full((*size_hw, 3), GREY, np.uint8)
    panels = [camera.copy() if camera is not None else _blank(size_hw),
              colorize_depth(maps.depth, DEPTH_NEAR_M, depth_max_m) if maps.depth is not None else None,
              colorize_semantic(maps.semantic, _PALETTE) if maps.semantic is not None else None,
              colorize_instances(maps.instances) if maps.instances is not None else None,
              overlay_motion(base, maps.motion_mask.astype(np.float32))
              if maps.motion_mask is not None else None,
              colorize_flow(maps.scene_flow) if maps.scene_flow is not None else None,
              steering_gauge(size_hw, steering_rad, needle)]
    return [_blank(size_hw) if p is None else p for p in panels]


def compose(frame: MatchedFrame, steering_pred_rad: float | None, steering_gt_rad: float | None,
            depth_max_m: float, title: str, panel_width: int | None = None) -> np.ndarray:
    """One montage image ``[h, w, 3] uint8``: prediction row over ground-truth row, columns
    :data:`COLUMNS`, each panel ``panel_width`` wide (default: the frame's width), a title bar."""
    size = _size_of(frame)
    top = _row(frame.pred, frame.camera_rgb, steering_pred_rad, size, depth_max_m, (255, 255, 255))
    bottom = _row(frame.gt, frame.camera_rgb, steering_gt_rad, size, depth_max_m, (80, 255, 80))
    for name, panel in zip(COLUMNS, top):
        _label(panel, name, (3, max(12, int(size[0] / 10))))
    _label(top[0], "prediction", (3, size[0] - 4))
    _label(bottom[0], "ground truth", (3, size[0] - 4))
    grid = np.concatenate([np.concatenate(top, axis=1), np.concatenate(bottom, axis=1)], axis=0)
    if panel_width is not None and panel_width < size[1]:
        scale = panel_width / size[1]
        grid = cv2.resize(grid, (round(grid.shape[1] * scale), round(grid.shape[0] * scale)),
                          interpolation=cv2.INTER_AREA)
    font = max(grid.shape[0] / 2 / 240.0, 0.4)
    bar = np.zeros((int(round(45 * font)), grid.shape[1], 3), np.uint8)
    cv2.putText(bar, title, (4, int(round(32 * font))), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255),
                max(int(font), 1), cv2.LINE_AA)
    return np.concatenate([bar, grid], axis=0)


def _size_of(frame: MatchedFrame) -> tuple[int, int]:
    for maps in (frame.gt, frame.pred):
        for value in (maps.depth, maps.semantic, maps.instances, maps.panoptic, maps.motion_mask,
                      maps.scene_flow):
            if value is not None:
                return value.shape[:2]
    return frame.camera_rgb.shape[:2] if frame.camera_rgb is not None else (64, 128)


class MontageWriter:
    """Collects montage frames (palette images, ~1 byte per pixel) and writes the GIF at the end.

    Args:
        gif_path, still_path: output files.
        frame_count: frames that will be offered to :meth:`add`.
        max_frames: at most this many go into the GIF (evenly spread) to bound memory and size.
        panel_width: GIF panel width (px); the still PNG keeps the frames' own size.
    """

    def __init__(self, gif_path: Path, still_path: Path, frame_count: int, max_frames: int = 300,
                 panel_width: int = 256) -> None:
        self.gif_path, self.still_path = gif_path, still_path
        keep = np.unique(np.linspace(0, frame_count - 1, min(frame_count, max_frames)).round().astype(int))
        self._keep = set(keep.tolist())
        self._still_index = frame_count // 2
        self.panel_width = panel_width
        self._images: list[Image.Image] = []
        self._stamps_s: list[float] = []
        self._offered = 0

    def add(self, frame: MatchedFrame, steering_pred_rad: float | None, steering_gt_rad: float | None,
            depth_max_m: float, title: str) -> None:
        """Offer the next matched frame (call once per frame, in order); only the frames the GIF
        keeps and the still are drawn."""
        index, self._offered = self._offered, self._offered + 1
        if index == self._still_index:
            still = compose(frame, steering_pred_rad, steering_gt_rad, depth_max_m, title)
            Image.fromarray(still).save(self.still_path)
        if index in self._keep:
            image = compose(frame, steering_pred_rad, steering_gt_rad, depth_max_m, title, self.panel_width)
            self._images.append(Image.fromarray(image).quantize(256, method=Image.Quantize.FASTOCTREE))
            self._stamps_s.append(frame.stamp_ns * 1e-9)

    def close(self) -> int:
        """Write the GIF (one frame per kept frame, timed like the bag); returns its frame count."""
        if not self._images:
            return 0
        step_s = float(np.median(np.diff(self._stamps_s))) if len(self._stamps_s) > 1 else 0.1
        duration_ms = int(min(max(step_s * 1000.0, 20.0), 2000.0))
        first, *rest = self._images
        first.save(self.gif_path, save_all=True, append_images=rest, duration=duration_ms, loop=0,
                   disposal=1, optimize=False)
        return len(self._images)
