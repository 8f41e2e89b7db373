"""Image previews for TensorBoard: what the model sees and predicts on a validation frame pair."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from unified_perception.contract import CLASSES
from unified_perception.data.sample import Sample
from unified_perception.runtime.colorize import colorize_depth, colorize_semantic, overlay_motion
from unified_perception.train.model import UnifiedModel
from unified_perception.train.validation import model_predictions

PREVIEW_DEPTH_RANGE_M = (1.0, 80.0)


def preview_images(model: UnifiedModel, frames: Sequence[Sample],
                   device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """``{tag: [H, W, 3] uint8}`` for the LAST of ``frames`` (run in order, so two frames give the
    pair's motion): camera, depth, semantic and motion where the model predicts them, each stacked
    over its ground truth where the sample has it."""
    pred = model_predictions(model, frames, device)[-1]
    sample = frames[-1]
    colors = [c.color_rgb for c in CLASSES]
    out = {"camera": sample.image}
    if pred.maps.depth is not None:
        views = [colorize_depth(pred.maps.depth, *PREVIEW_DEPTH_RANGE_M)]
        if sample.depth_m is not None:
            views.append(colorize_depth(np.where(sample.depth_m > 0, sample.depth_m, np.nan),
                                        *PREVIEW_DEPTH_RANGE_M))
        out["depth"] = np.concatenate(views, axis=0)
    if pred.maps.semantic is not None:
        views = [colorize_semantic(pred.maps.semantic, colors)]
        if sample.semantic is not None:
            views.append(colorize_semantic(sample.semantic, colors))
        out["semantic"] = np.concatenate(views, axis=0)
    if pred.maps.motion_mask is not None and pred.pair_valid:
        views = [overlay_motion(sample.image, pred.maps.motion_mask.astype(np.float32))]
        if sample.motion_mask is not None:
            views.append(overlay_motion(sample.image, sample.motion_mask.astype(np.float32)))
        out["motion"] = np.concatenate(views, axis=0)
    return out
