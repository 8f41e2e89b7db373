"""Panoptic grouping as tensor operations that export to ONNX (MaxPool, TopK, ArgMin, MatMul).

Panoptic-DeepLab's post-processing with a fixed budget so the graph has static shapes:

1. Centers: non-maximum suppression of the stride-4 heatmap by a 3x3 max-pool (about 12 input
   pixels), keep peaks above ``threshold``, then the ``top_k`` strongest (fixed K; weaker slots are
   marked invalid). Centers sit at the stride-4 cell centres (``4 i + 1.5`` in input pixels).
2. Each "thing" pixel (semantic class with instances) votes for ``pixel + offset`` and joins the
   nearest valid center; instance id = center rank + 1 (1..K). Stuff pixels, and thing pixels when
   no center is valid, get 0.
3. Each instance takes the majority thing class of its pixels; panoptic = class * 1000 + instance
   for instance pixels, semantic class * 1000 elsewhere (Cityscapes convention).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unified_perception.contract import NUM_CLASSES, PANOPTIC_LABEL_DIVISOR, THING_CLASS_IDS

_FAR = 1e8


class PanopticResult(NamedTuple):
    semantic: Tensor        # [N, H, W] int64 class ids
    instances: Tensor       # [N, H, W] int64, 0 = none, 1..K
    panoptic: Tensor        # [N, H, W] int64, class * 1000 + instance


class PanopticGrouping(nn.Module):
    """Semantic logits, stride-4 center heatmap and offsets -> semantic, instance and panoptic ids."""

    def __init__(self, num_classes: int = NUM_CLASSES,
                 thing_class_ids: tuple[int, ...] = THING_CLASS_IDS, top_k: int = 64,
                 threshold: float = 0.1, nms_kernel: int = 3, center_stride: int = 4) -> None:
        super().__init__()
        self.top_k, self.threshold = top_k, threshold
        self.nms_kernel, self.center_stride = nms_kernel, center_stride
        is_thing = torch.zeros(num_classes)
        is_thing[list(thing_class_ids)] = 1.0
        self.register_buffer("is_thing", is_thing, persistent=False)
        self.num_classes = num_classes

    def centers(self, heatmap_s4: Tensor) -> tuple[Tensor, Tensor]:
        """``[N, 1, h, w]`` -> center (y, x) in input pixels ``[N, K, 2]`` and validity ``[N, K]``."""
        pooled = F.max_pool2d(heatmap_s4, self.nms_kernel, stride=1, padding=self.nms_kernel // 2)
        peaks = torch.where(heatmap_s4 == pooled, heatmap_s4, torch.full_like(heatmap_s4, -_FAR))
        w = heatmap_s4.shape[3]
        k = min(self.top_k, heatmap_s4.shape[2] * w)
        scores, index = torch.topk(peaks.flatten(1), k, dim=1)
        ys = torch.div(index, w, rounding_mode="floor").to(heatmap_s4.dtype)
        xs = (index - torch.div(index, w, rounding_mode="floor") * w).to(heatmap_s4.dtype)
        offset = 0.5 * self.center_stride - 0.5
        yx = torch.stack([ys, xs], dim=2) * self.center_stride + offset
        return yx, scores > self.threshold

    def center_distances(self, heatmap_s4: Tensor, offsets: Tensor) -> Tensor:
        """Squared distance (px^2) of each pixel's vote to each center, ``[N, K, H*W]``; invalid
        centers are far away (1e8)."""
        n, _, h, w = offsets.shape
        centers, valid = self.centers(heatmap_s4)                                 # [N, K, 2], [N, K]
        ys = torch.arange(h, dtype=offsets.dtype, device=offsets.device).reshape(1, h, 1)
        xs = torch.arange(w, dtype=offsets.dtype, device=offsets.device).reshape(1, 1, w)
        vote_y = (ys + offsets[:, 0]).reshape(n, 1, h * w)
        vote_x = (xs + offsets[:, 1]).reshape(n, 1, h * w)
        dist = (vote_y - centers[:, :, 0:1]) ** 2 + (vote_x - centers[:, :, 1:2]) ** 2  # [N, K, HW]
        return torch.where(valid[:, :, None], dist, torch.full_like(dist, _FAR))

    def forward(self, semantic_logits: Tensor, heatmap_s4: Tensor, offsets: Tensor) -> PanopticResult:
        """``[N, C, H, W]`` logits, ``[N, 1, H/4, W/4]`` heatmap, ``[N, 2, H, W]`` offsets (px)."""
        n, _, h, w = semantic_logits.shape
        semantic = semantic_logits.argmax(dim=1)                                  # [N, H, W]
        dist = self.center_distances(heatmap_s4, offsets)                         # [N, K, HW]
        nearest = dist.argmin(dim=1)                                                # [N, HW]
        thing = self.is_thing[semantic].reshape(n, h * w) > 0.5
        any_center = (dist < _FAR).any(dim=1)                                      # [N, HW]
        instances = torch.where(thing & any_center, nearest + 1, torch.zeros_like(nearest))
        # Majority thing class per instance: counts[n, k, c] = #pixels of instance k with class c.
        k = dist.shape[1]
        slots = torch.arange(k + 1, device=instances.device)
        classes = torch.arange(self.num_classes, device=instances.device)
        inst_onehot = (instances[:, :, None] == slots).to(semantic_logits.dtype)    # [N, HW, K+1]
        cls_onehot = (semantic.reshape(n, h * w, 1) == classes).to(semantic_logits.dtype)
        counts = inst_onehot.transpose(1, 2) @ (cls_onehot * self.is_thing)         # [N, K+1, C]
        inst_class = counts.argmax(dim=2)                                           # [N, K+1]
        pixel_class = torch.gather(inst_class, 1, instances)                        # [N, HW]
        sem_flat = semantic.reshape(n, h * w)
        cls = torch.where(instances > 0, pixel_class, sem_flat)
        panoptic = cls * PANOPTIC_LABEL_DIVISOR + instances
        return PanopticResult(semantic, instances.reshape(n, h, w), panoptic.reshape(n, h, w))
