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

``vote_stride`` 4 (the car's choice) votes once per stride-4 cell, from the cell's centre with the
head's stride-4 offsets, instead of once per pixel with the upsampled offsets: the distance table
``[N, K, cells]`` is 16x smaller (it was the grouping's largest cost). Every pixel whose own
semantic class is a thing joins the centre its cell voted for, so instance masks keep the
full-resolution semantic outline, and their borders with each other fall on the 4-pixel grid. The
majority class of an instance is counted over its cells (the semantic class at each cell's
pixel (2, 2)).

For a static, TensorRT-friendly export the input size is fixed at construction: pixel and cell
coordinates, slot and class ids are precomputed buffers (no Range, no floor division), and the id
arithmetic runs in int32 (only ArgMax/ArgMin/TopK, whose ONNX outputs are int64, are cast once).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unified_perception.contract import NUM_CLASSES, PANOPTIC_LABEL_DIVISOR, THING_CLASS_IDS

_FAR = 1e8


class PanopticResult(NamedTuple):
    semantic: Tensor        # [N, H, W] int32 class ids
    instances: Tensor       # [N, H, W] int32, 0 = none, 1..K
    panoptic: Tensor        # [N, H, W] int32, class * 1000 + instance


class PanopticGrouping(nn.Module):
    """Semantic logits, stride-4 center heatmap and offsets -> semantic, instance and panoptic ids,
    for inputs of ``image_size`` (H, W) px, multiples of ``center_stride``."""

    def __init__(self, image_size: tuple[int, int], num_classes: int = NUM_CLASSES,
                 thing_class_ids: tuple[int, ...] = THING_CLASS_IDS, top_k: int = 64,
                 threshold: float = 0.1, nms_kernel: int = 3, center_stride: int = 4,
                 vote_stride: int = 1, label_stride: int = 1) -> None:
        super().__init__()
        if vote_stride not in (1, center_stride):
            raise ValueError(f"vote stride must be 1 or the center stride {center_stride}, "
                             f"got {vote_stride}")
        if label_stride not in (1, 2):
            raise ValueError(f"semantic label stride must be 1 or 2, got {label_stride}")
        self.vote_stride, self.label_stride = vote_stride, label_stride
        height, width = image_size
        if height % center_stride or width % center_stride:
            raise ValueError(f"grouping input size {height}x{width} must be a multiple of the "
                             f"center stride {center_stride}")
        self.height, self.width = height, width
        self.top_k, self.threshold = top_k, threshold
        self.nms_kernel, self.center_stride = nms_kernel, center_stride
        self.num_classes = num_classes
        cells_y, cells_x = height // center_stride, width // center_stride
        self.k = min(top_k, cells_y * cells_x)
        """Center slots actually used: ``top_k``, or every stride-4 cell when there are fewer."""
        is_thing = torch.zeros(num_classes)
        is_thing[list(thing_class_ids)] = 1.0
        things = sorted(set(thing_class_ids))
        self.first_thing = (things[0] if things and things == list(range(things[0], num_classes))
                            else None)
        """The first thing class where the thing classes are the last ones (None otherwise)."""
        self._buffer("is_thing", is_thing)                                        # [C] 0/1
        self._buffer("is_thing_bool", is_thing > 0.5)                             # [C] bool
        cy, cx = torch.meshgrid(torch.arange(cells_y), torch.arange(cells_x), indexing="ij")
        cell_yx = torch.stack([cy.reshape(-1), cx.reshape(-1)], dim=1).to(torch.float32)
        self._buffer("cell_yx", cell_yx * center_stride + (0.5 * center_stride - 0.5))  # [h*w, 2] px
        self._buffer("pixel_y", torch.arange(height, dtype=torch.float32).reshape(1, height, 1))
        self._buffer("pixel_x", torch.arange(width, dtype=torch.float32).reshape(1, 1, width))
        self._buffer("slots", torch.arange(self.k + 1, dtype=torch.int32))       # [K+1]
        self._buffer("classes", torch.arange(num_classes, dtype=torch.int32))    # [C]

    def _buffer(self, name: str, value: Tensor) -> None:
        self.register_buffer(name, value, persistent=False)

    def is_thing_pixel(self, semantic: Tensor) -> Tensor:
        """Class ids (int32, any shape) -> whether each is a thing class (bool). Where the thing
        ids are the last classes (Cityscapes: 11..18 of 0..18) one comparison, else a lookup."""
        if self.first_thing is not None:    # in float: an int comparison exported with an int64 cast
            return semantic.to(torch.float32) > self.first_thing - 0.5
        return self.is_thing_bool[semantic]

    def semantic_labels(self, semantic_logits: Tensor) -> Tensor:
        """Logits ``[N, C, H/s, W/s]`` at the label stride ``s`` -> class ids ``[N, H, W]`` int32:
        the argmax, spread over s x s pixels (nearest upsampling by the constant factor)."""
        labels = semantic_logits.argmax(dim=1)
        if self.label_stride == 1:
            return labels.to(torch.int32)
        spread = F.interpolate(labels[:, None].to(semantic_logits.dtype),
                               scale_factor=float(self.label_stride), mode="nearest")
        return spread[:, 0].to(torch.int32)

    def centers(self, heatmap_s4: Tensor) -> tuple[Tensor, Tensor]:
        """``[N, 1, H/4, W/4]`` -> center (y, x) in input pixels ``[N, K, 2]`` and validity ``[N, K]``.
        Center ``i`` sits at the centre of stride-4 cell ``i`` (row-major), ``4 * cell + 1.5``."""
        pooled = F.max_pool2d(heatmap_s4, self.nms_kernel, stride=1, padding=self.nms_kernel // 2)
        peaks = torch.where(heatmap_s4 == pooled, heatmap_s4, -_FAR)
        scores, index = torch.topk(peaks.flatten(1), self.k, dim=1)                # [N, K]
        return self.cell_yx[index.to(torch.int32)], scores > self.threshold

    def center_distances(self, heatmap_s4: Tensor, offsets: Tensor) -> Tensor:
        """Squared distance (px^2) of each pixel's vote to each center, ``[N, K, H*W]``; invalid
        centers are far away (1e8). ``offsets`` ``[N, 2, H, W]`` (dy, dx) px."""
        hw = self.height * self.width
        vote_y = (self.pixel_y + offsets[:, 0]).reshape(-1, 1, hw)
        vote_x = (self.pixel_x + offsets[:, 1]).reshape(-1, 1, hw)
        return self._vote_distances(heatmap_s4, vote_y, vote_x)

    def _vote_distances(self, heatmap_s4: Tensor, vote_y: Tensor, vote_x: Tensor) -> Tensor:
        """Squared distance (px^2) of votes at (``vote_y``, ``vote_x``) ``[N, 1, M]`` px to each
        center, ``[N, K, M]``; invalid centers are far away (1e8)."""
        centers, valid = self.centers(heatmap_s4)                                 # [N, K, 2], [N, K]
        dist = (vote_y - centers[:, :, 0:1]) ** 2 + (vote_x - centers[:, :, 1:2]) ** 2  # [N, K, M]
        return torch.where(valid[:, :, None], dist, _FAR)

    def forward(self, semantic_logits: Tensor, heatmap_s4: Tensor, offsets: Tensor) -> PanopticResult:
        """``[N, C, H, W]`` logits (``[N, C, H/2, W/2]`` with ``label_stride`` 2), ``[N, 1, H/4,
        W/4]`` heatmap and offsets (dy, dx in input px) ``[N, 2, H, W]``, or ``[N, 2, H/4, W/4]``
        with ``vote_stride`` 4."""
        if self.vote_stride > 1:
            return self._group_cells(semantic_logits, heatmap_s4, offsets)
        h, w = self.height, self.width
        dtype = semantic_logits.dtype
        semantic = self.semantic_labels(semantic_logits).reshape(-1, h * w)      # [N, HW]
        dist = self.center_distances(heatmap_s4, offsets)                         # [N, K, HW]
        nearest = dist.argmin(dim=1).to(torch.int32)                               # [N, HW]
        cls_onehot = (semantic[:, :, None] == self.classes).to(dtype)              # [N, HW, C]
        thing = (cls_onehot @ self.is_thing) > 0.5                                 # [N, HW]
        any_center = dist.amin(dim=1) < _FAR              # [N, HW]; = (dist < _FAR).any(dim=1)
        assigned = thing & any_center                                              # [N, HW] bool
        instances = torch.where(assigned, nearest + 1, 0)                          # [N, HW] int32
        # Majority thing class per instance: counts[n, k, c] = #pixels of instance k with class c.
        inst_onehot = (instances[:, :, None] == self.slots).to(dtype)              # [N, HW, K+1]
        counts = inst_onehot.transpose(1, 2) @ (cls_onehot * self.is_thing)        # [N, K+1, C]
        inst_class = counts.argmax(dim=2).to(dtype)                                # [N, K+1]
        # Each pixel's instance class: its one-hot row picks one entry (exact in float).
        pixel_class = (inst_onehot @ inst_class[:, :, None]).reshape(-1, h * w).to(torch.int32)
        cls = torch.where(assigned, pixel_class, semantic)          # assigned <=> instances > 0
        panoptic = cls * PANOPTIC_LABEL_DIVISOR + instances
        return PanopticResult(semantic.reshape(-1, h, w), instances.reshape(-1, h, w),
                              panoptic.reshape(-1, h, w))

    def _group_cells(self, semantic_logits: Tensor, heatmap_s4: Tensor, offsets_s4: Tensor
                     ) -> PanopticResult:
        """``vote_stride`` 4: one vote per stride-4 cell (see the module docstring)."""
        h, w, s = self.height, self.width, self.vote_stride
        hc, wc = h // s, w // s
        dtype = semantic_logits.dtype
        semantic = self.semantic_labels(semantic_logits)                           # [N, H, W]
        cell_class = semantic[:, s // 2::s, s // 2::s].reshape(-1, hc * wc)        # [N, hw]
        votes = self.cell_yx.T + offsets_s4.reshape(-1, 2, hc * wc)                # [N, 2, hw] px
        dist = self._vote_distances(heatmap_s4, votes[:, 0:1], votes[:, 1:2])      # [N, K, hw]
        any_center = dist.amin(dim=1) < _FAR                                       # [N, hw]
        vote = torch.where(any_center, dist.argmin(dim=1).to(torch.int32) + 1, 0)  # [N, hw] 0..K
        # Majority thing class of each instance over its thing cells.
        vote_onehot = (vote[:, :, None] == self.slots).to(dtype)                   # [N, hw, K+1]
        cls_onehot = (cell_class[:, :, None] == self.classes).to(dtype) * self.is_thing
        counts = vote_onehot.transpose(1, 2) @ cls_onehot                          # [N, K+1, C]
        inst_class = counts.argmax(dim=2).to(dtype)                                # [N, K+1]
        inst_known = (counts.amax(dim=2) > 0).to(dtype)                            # [N, K+1]
        # Per cell: its vote, and the class of that instance where it voted for one that has a
        # class (-1 otherwise); then every pixel takes its cell's values (nearest upsampling by a
        # constant factor, exact).
        vote_f = vote.to(dtype)
        cell_inst_class = torch.where((vote_f > 0.5) & ((vote_onehot @ inst_known[:, :, None])[..., 0] > 0.5),
                                      (vote_onehot @ inst_class[:, :, None])[..., 0], -1.0)
        per_cell = torch.stack([vote_f, cell_inst_class], dim=1)
        per_pixel = F.interpolate(per_cell.reshape(-1, 2, hc, wc), scale_factor=float(s),
                                  mode="nearest").reshape(-1, 2, h * w)
        has_class = per_pixel[:, 1] > -0.5                 # compared in float: no int64 cast
        pixel_vote, pixel_class = per_pixel[:, 0].to(torch.int32), per_pixel[:, 1].to(torch.int32)
        semantic = semantic.reshape(-1, h * w)
        thing = self.is_thing_pixel(semantic)                                      # [N, HW]
        instances = torch.where(thing, pixel_vote, 0)
        cls = torch.where(thing & has_class, pixel_class, semantic)
        panoptic = cls * PANOPTIC_LABEL_DIVISOR + instances
        return PanopticResult(semantic.reshape(-1, h, w), instances.reshape(-1, h, w),
                              panoptic.reshape(-1, h, w))
