"""Every loss of a training step, named and weighted: what the trainer calls.

``compute_losses(batch, output, weights, step, teacher)`` computes each term whose weight is
non-zero (after the motion ramp) and whose prediction the model makes, weights it and returns the
total with every term (:class:`LossTerms`). ``build_balancer`` gives the recipe's balancer, which
the trainer applies to that result (uncertainty weighting re-weights the task terms).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor

from unified_perception.contract import DEFAULT_DEPTH_RANGE_M, NUM_CLASSES
from unified_perception.train.batch import Batch
from unified_perception.train.losses.balancing import (UNCERTAINTY_TASKS, FixedWeights,
                                                       UncertaintyWeighting)
from unified_perception.train.losses.distillation import (DISTILLATION_TERMS, AnyOutput,
                                                          distillation_loss, merge_teacher_outputs)
from unified_perception.train.losses.motion import (complete_flow, complete_flow_smoothness,
                                                    flow_consistency_loss, mask_smoothness_loss,
                                                    motion_ramp, motion_sparsity_loss, static_pixels)
from unified_perception.train.losses.loss_terms import LossTerms
from unified_perception.train.losses.photometric import PhotometricTerms, photometric_loss
from unified_perception.train.losses.smoothness import multi_scale_disparity_smoothness
from unified_perception.train.losses.supervised import (
    SILOG_VARIANCE_FOCUS, TOP_K_FRACTION, center_heatmap_loss, center_offset_loss, depth_log_l1,
    depth_silog, motion_mask_bce, moving_flow_epe, relative_pose_loss, scene_flow_epe,
    semantic_cross_entropy)
from unified_perception.train.window_forward import WindowOutput

MOTION_TERMS: tuple[str, ...] = ("flow_smoothness", "flow_consistency", "motion_sparsity",
                                 "mask_smoothness")
"""The terms that ramp in with :func:`motion.motion_ramp` once the motion phase starts."""
DEPTH_LOSSES = ("silog", "log_l1")


@dataclass(frozen=True)
class LossWeights:
    """The weight of every loss term and the few settings of the terms (a recipe's ``losses``).

    Self-supervised weights, the 4 scales, the auto-mask and the ramp are the paper's release values
    (``clip(3 * (step - 8000) / 8000)`` from the motion phase at 8k steps). Supervised defaults:
    semantic 1 with the top 20 % hardest pixels, centre heatmap 200 and offsets 0.01
    (Panoptic-DeepLab); depth SILog with lambda 0.85 (Eigen et al., 2014) at weight 1; pose
    translation 1 per m and rotation 10 per rad (our choice: 0.1 rad counts as much as 1 m, the
    size of a frame's rotation and translation at driving speed); scene flow EPE 1, the independent
    flow's EPE over the moving pixels 1 and motion mask BCE 1 (our choice). Distillation (paper
    silent except flow 1.0): 1 per term at temperature 1, except centre 200 and offsets 0.01 as
    their supervised counterparts.
    ``semantic_class_balance`` > 0 weights the semantic cross-entropy per class by the training
    data's pixel frequencies to that negative power (the trainer counts them at the start and fills
    ``semantic_class_weights``; a recipe may also give the 19 weights itself).
    ``pose_rotation_emphasis`` > 0 weighs each frame pair's rotation error by its ground-truth
    turn (:func:`~unified_perception.train.losses.supervised.relative_pose_loss`); 0 = plain mean.
    """

    photometric: float = 1.0
    disparity_smoothness: float = 1e-3
    flow_smoothness: float = 1e-3
    flow_consistency: float = 5.0
    motion_sparsity: float = 0.04
    mask_smoothness: float = 0.1
    semantic: float = 1.0
    center_heatmap: float = 200.0
    center_offset: float = 0.01
    depth: float = 1.0
    pose_translation: float = 1.0
    pose_rotation: float = 10.0
    scene_flow: float = 1.0
    moving_flow: float = 1.0
    motion_mask: float = 1.0
    distill_semantic: float = 1.0
    distill_depth: float = 1.0
    distill_center: float = 200.0
    distill_offset: float = 0.01
    distill_pose: float = 1.0
    distill_motion: float = 1.0
    distill_flow: float = 1.0
    scales: int = 4
    automask: bool = True
    motion_start_step: int = 8000
    motion_ramp_steps: int = 8000
    semantic_top_k: float | None = TOP_K_FRACTION
    semantic_class_balance: float = 0.0
    semantic_class_weights: tuple[float, ...] | None = None
    depth_loss: str = "silog"
    silog_variance_focus: float = SILOG_VARIANCE_FOCUS
    distill_temperature: float = 1.0
    distill_log_depth: bool = False
    pose_rotation_emphasis: float = 0.0

    def __post_init__(self) -> None:
        negative = [n for n in self.term_names() if getattr(self, n) < 0]
        if negative:
            raise ValueError(f"loss weights must be >= 0: {negative}")
        if not 1 <= self.scales <= 4:
            raise ValueError(f"losses.scales must be 1..4 (disparity scales), got {self.scales}")
        if self.depth_loss not in DEPTH_LOSSES:
            raise ValueError(f"losses.depth_loss must be one of {DEPTH_LOSSES}, got "
                             f"'{self.depth_loss}'")
        if self.semantic_class_balance < 0:
            raise ValueError(f"losses.semantic_class_balance must be >= 0, got "
                             f"{self.semantic_class_balance}")
        if self.semantic_class_weights is not None and len(self.semantic_class_weights) != NUM_CLASSES:
            raise ValueError(f"losses.semantic_class_weights needs {NUM_CLASSES} weights (one per "
                             f"class), got {len(self.semantic_class_weights)}")
        if self.pose_rotation_emphasis < 0:
            raise ValueError(f"losses.pose_rotation_emphasis must be >= 0, got "
                             f"{self.pose_rotation_emphasis}")
        if self.distill_temperature <= 0:
            raise ValueError(f"losses.distill_temperature must be > 0, got {self.distill_temperature}")

    @staticmethod
    def term_names() -> tuple[str, ...]:
        """Names of the weighted terms (the float fields before ``scales``)."""
        names = [f.name for f in dataclasses.fields(LossWeights)]
        return tuple(names[:names.index("scales")])

    def at_step(self, step: int) -> dict[str, float]:
        """``{term: weight}`` at training ``step``: the motion terms scaled by the ramp."""
        ramp = motion_ramp(step, self.motion_start_step, self.motion_ramp_steps)
        return {n: getattr(self, n) * (ramp if n in MOTION_TERMS else 1.0) for n in self.term_names()}


def compute_losses(batch: Batch, output: WindowOutput, weights: LossWeights, step: int,
                   teacher: Mapping[str, AnyOutput] | AnyOutput | None = None,
                   depth_range_m: tuple[float, float] = DEFAULT_DEPTH_RANGE_M) -> LossTerms:
    """The step's losses (see the module docstring). ``teacher``: frozen teacher outputs for
    distillation (a member mapping for the multi-backbone teacher); ``depth_range_m``: the depth
    head's range.

    The losses run in float32 with autocast off (under mixed precision the outputs are cast up):
    pixel coordinates and SSIM's small constants need the precision.

    Before the motion phase (``step < weights.motion_start_step``) the photometric loss warps with
    the rigid flow only; from then on the previous frame uses the complete flow.
    """
    w = weights.at_step(step)
    use_flow = motion_ramp(step, weights.motion_start_step, weights.motion_ramp_steps) > 0
    with torch.autocast(batch.images.device.type, enabled=False):
        output = _in_float32(output)
        raw, photo = _self_supervised(batch, output, weights, w, use_flow, depth_range_m)
        raw.update(_supervised(batch, output, weights, w))
        if teacher is not None:
            raw.update(distillation_loss(output, _in_float32(merge_teacher_outputs(teacher)),
                                         {n: w[n] for n in DISTILLATION_TERMS},
                                         weights.distill_temperature, weights.distill_log_depth))
        total, weighted = FixedWeights(w)(raw)
    return LossTerms(total, weighted, {k: v.detach() for k, v in raw.items()},
                     None if photo is None else photo.automask)


def build_balancer(kind: str, weights: LossWeights) -> FixedWeights | UncertaintyWeighting:
    """The balancer a recipe names, applied by the trainer to :func:`compute_losses`' result:
    ``fixed`` adds the (already weighted) terms up; ``uncertainty`` learns a log-variance for each
    task term of :data:`balancing.UNCERTAINTY_TASKS` that ``weights`` enables."""
    if kind == "fixed":
        return FixedWeights({name: 1.0 for name in weights.term_names()})
    if kind == "uncertainty":
        return UncertaintyWeighting([n for n in UNCERTAINTY_TASKS if getattr(weights, n) > 0])
    raise ValueError(f"unknown balancing '{kind}'; choose 'fixed' or 'uncertainty'")


def _in_float32(output: WindowOutput) -> WindowOutput:
    """``output`` with every floating-point tensor in float32 (the same tensors where they are)."""
    def cast(value):
        if isinstance(value, tuple):
            return tuple(cast(v) for v in value)
        return value.float() if isinstance(value, Tensor) and value.is_floating_point() else value
    current = output.current._make(cast(v) for v in output.current)
    return WindowOutput(current, cast(output.T_cam_src_cam_cur), cast(output.latents))


def _self_supervised(batch: Batch, output: WindowOutput, weights: LossWeights, w: dict[str, float],
                     use_flow: bool, depth_range_m: tuple[float, float]
                     ) -> tuple[dict[str, Tensor], PhotometricTerms | None]:
    cur, image = output.current, batch.images[:, batch.center]
    has_flow = use_flow and cur.scene_flow_m is not None
    out: dict[str, Tensor] = {}
    photo = None
    needs_static = w["motion_sparsity"] > 0 and has_flow
    if (w["photometric"] > 0 or needs_static) and cur.disparities is not None \
            and output.T_cam_src_cam_cur is not None:
        scales = weights.scales if w["photometric"] > 0 else 1
        photo = photometric_loss(batch, output, scales, weights.automask, use_flow, depth_range_m)
        if w["photometric"] > 0:
            out["photometric"] = photo.loss
    if w["disparity_smoothness"] > 0 and cur.disparities is not None:
        out["disparity_smoothness"] = multi_scale_disparity_smoothness(cur.disparities, image,
                                                                       weights.scales)
    if w["flow_smoothness"] > 0 and has_flow and cur.depth_m is not None:
        flow = complete_flow(cur.depth_m, cur.scene_flow_m, cur.T_cam_prev_cam_cur, batch.inv_K)
        out["flow_smoothness"] = complete_flow_smoothness(flow, image)
    if w["flow_consistency"] > 0 and has_flow and cur.disparities is not None:
        out["flow_consistency"] = flow_consistency_loss(cur.independent_flow_m, cur.motion_prob,
                                                        cur.disparities[0])
    if needs_static and photo is not None and photo.rigid_error is not None:
        static = static_pixels(photo.rigid_error, photo.complete_error)
        out["motion_sparsity"] = motion_sparsity_loss(cur.motion_prob, static)
    if w["mask_smoothness"] > 0 and cur.motion_prob is not None:
        out["mask_smoothness"] = mask_smoothness_loss(cur.motion_prob, image)
    return out, photo


def _supervised(batch: Batch, output: WindowOutput, weights: LossWeights,
                w: dict[str, float]) -> dict[str, Tensor]:
    cur = output.current
    out: dict[str, Tensor] = {}
    if w["semantic"] > 0 and cur.semantic_logits is not None:
        class_weights = (None if weights.semantic_class_weights is None else
                         cur.semantic_logits.new_tensor(weights.semantic_class_weights))
        out["semantic"] = semantic_cross_entropy(cur.semantic_logits, batch.semantic,
                                                 batch.has_semantic, weights.semantic_top_k,
                                                 class_weights)
    if w["center_heatmap"] > 0 and cur.center_heatmap is not None:
        out["center_heatmap"] = center_heatmap_loss(cur.center_heatmap, batch.center_heatmap,
                                                    batch.has_instances)
    if w["center_offset"] > 0 and cur.center_offsets is not None:
        out["center_offset"] = center_offset_loss(cur.center_offsets, batch.center_offsets,
                                                  batch.thing_mask, batch.has_instances)
    if w["depth"] > 0 and cur.depth_m is not None:
        out["depth"] = (depth_silog(cur.depth_m, batch.depth_m, batch.has_depth,
                                    weights.silog_variance_focus)
                        if weights.depth_loss == "silog"
                        else depth_log_l1(cur.depth_m, batch.depth_m, batch.has_depth))
    if (w["pose_translation"] > 0 or w["pose_rotation"] > 0) and output.T_cam_src_cam_cur is not None:
        pose = relative_pose_loss(output.T_cam_src_cam_cur, batch.T_cam_src_cam_cur, batch.has_pose,
                                  batch.source_indices(), weights.pose_rotation_emphasis)
        out.update({name: value for name, value in (("pose_translation", pose.translation_m),
                                                    ("pose_rotation", pose.rotation_rad))
                    if w[name] > 0})
    if w["scene_flow"] > 0 and cur.scene_flow_m is not None:
        out["scene_flow"] = scene_flow_epe(cur.scene_flow_m, batch.scene_flow, batch.has_scene_flow,
                                           batch.frame_gap)
    if w["moving_flow"] > 0 and cur.independent_flow_m is not None:
        out["moving_flow"] = moving_flow_epe(cur.independent_flow_m, batch.scene_flow,
                                             batch.motion_mask, batch.has_scene_flow & batch.has_motion,
                                             batch.frame_gap)
    if w["motion_mask"] > 0 and cur.motion_prob is not None:
        out["motion_mask"] = motion_mask_bce(cur.motion_prob, batch.motion_mask, batch.has_motion)
    return out
