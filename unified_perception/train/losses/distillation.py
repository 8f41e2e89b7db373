"""Distillation from frozen teachers: the student's outputs pulled toward the teacher's.

The paper distils a multi-backbone teacher (dedicated per-task networks) into the unified model but
does not publish which outputs or which losses; the release keeps a flow-distillation weight of 1.
Our choice, one function per output, each 0 when student and teacher agree:

* semantic logits: KL(teacher || student) of the softmax at temperature T, scaled by T^2 so the
  gradient's size does not depend on T (Hinton et al., 2015);
* depth: L1 between the disparities at every scale both predict (or L1 of log depth);
* instance centres: heatmap MSE, and offsets L1 (px) on the pixels the teacher labels as things;
* pose: L1 of the 6-vectors (axis-angle rad, translation m) of every window transform;
* motion probability: the Bernoulli KL divergence toward the teacher's probability (the
  cross-entropy minus the teacher's own entropy: the same gradient, and 0 at agreement);
* scene flow: L1 (m) of the contract's scene flow (independent flow x motion probability).

The teacher's tensors are detached here, so no gradient reaches a teacher even if it ran with
autograd on.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from unified_perception.contract import THING_CLASS_IDS
from unified_perception.train.geometry import matrix_to_pose_vector
from unified_perception.train.losses.reduction import masked_mean
from unified_perception.train.model import UnifiedOutput
from unified_perception.train.window_forward import WindowOutput

DISTILLATION_TERMS: tuple[str, ...] = (
    "distill_semantic", "distill_depth", "distill_center", "distill_offset", "distill_pose",
    "distill_motion", "distill_flow")
"""Names of the distillation terms (keys of :func:`distillation_loss`'s weights and result)."""
_EPS = 1e-6


def semantic_kl(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """``T^2 KL(softmax(teacher/T) || softmax(student/T))`` summed over classes, averaged over pixels.
    Logits ``[B, C, H, W]``."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, log_target=True, reduction="none").sum(dim=1)
    return temperature ** 2 * kl.mean()


def disparity_l1(student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
    """Mean over the scales both have (finest first) of the mean ``|disp_s - disp_t|``."""
    pairs = list(zip(student, teacher))
    return torch.stack([(s - t.detach()).abs().mean() for s, t in pairs]).mean()


def log_depth_l1(student_m: Tensor, teacher_m: Tensor) -> Tensor:
    """Mean ``|log depth_s - log depth_t|`` of depth maps ``[B, 1, H, W]`` (m, positive)."""
    return (student_m.clamp_min(_EPS).log() - teacher_m.detach().clamp_min(_EPS).log()).abs().mean()


def center_heatmap_mse(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean squared difference of the centre heatmaps ``[B, 1, H, W]``."""
    return ((student - teacher.detach()) ** 2).mean()


def teacher_thing_pixels(teacher_logits: Tensor,
                         thing_ids: Sequence[int] = THING_CLASS_IDS) -> Tensor:
    """``[B, 1, H, W] bool``: pixels whose teacher class (argmax of ``[B, C, H, W]``) is a thing."""
    ids = torch.as_tensor(list(thing_ids), device=teacher_logits.device)
    return torch.isin(teacher_logits.detach().argmax(dim=1, keepdim=True), ids)


def center_offset_l1(student: Tensor, teacher: Tensor, things: Tensor) -> Tensor:
    """L1 (px, dy + dx) of the centre offsets ``[B, 2, H, W]`` averaged over ``things`` ``[B, 1, H, W]``."""
    return masked_mean((student - teacher.detach()).abs().sum(dim=1, keepdim=True), things)


def pose_l1(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean L1 of pose 6-vectors ``[..., 6]`` (axis-angle rad, translation m)."""
    return (student - teacher.detach()).abs().mean()


def motion_probability_kl(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean Bernoulli KL(teacher || student) of motion probabilities ``[B, 1, H, W]`` in [0, 1]."""
    teacher = teacher.detach().clamp(_EPS, 1.0 - _EPS)
    cross = F.binary_cross_entropy(student.clamp(_EPS, 1.0 - _EPS), teacher, reduction="none")
    entropy = -(teacher * teacher.log() + (1.0 - teacher) * (1.0 - teacher).log())
    return (cross - entropy).mean()


def flow_l1(student_m: Tensor, teacher_m: Tensor) -> Tensor:
    """Mean L1 (m) of 3D flows ``[B, 3, H, W]``."""
    return (student_m - teacher_m.detach()).abs().mean()


AnyOutput = WindowOutput | UnifiedOutput


def merge_teacher_outputs(outputs: Mapping[str, AnyOutput] | AnyOutput) -> WindowOutput:
    """One :class:`WindowOutput` from a teacher's output, or from the outputs of the members of a
    multi-backbone teacher (each field from the first member that predicts it)."""
    if isinstance(outputs, (WindowOutput, UnifiedOutput)):
        outputs = {"teacher": outputs}
    windows = [o if isinstance(o, WindowOutput) else WindowOutput(o, None, o.latent[:, None])
               for o in outputs.values()]
    if not windows:
        raise ValueError("the teacher produced no outputs")
    first = lambda values: next((v for v in values if v is not None), None)  # noqa: E731
    current = UnifiedOutput(*(first(w.current[i] for w in windows)
                              for i in range(len(UnifiedOutput._fields))))
    return WindowOutput(current, first(w.T_cam_src_cam_cur for w in windows), windows[0].latents)


def distillation_loss(student: AnyOutput, teacher: Mapping[str, AnyOutput] | AnyOutput,
                      weights: Mapping[str, float], temperature: float = 1.0,
                      log_depth: bool = False) -> dict[str, Tensor]:
    """The distillation terms (names in :data:`DISTILLATION_TERMS`) whose weight is non-zero and whose
    output both student and teacher predict -> ``{name: unweighted scalar}``; the caller applies the
    weights (``balancing.py``). ``teacher`` may be a member-name mapping (multi-backbone teacher)."""
    unknown = sorted(set(weights) - set(DISTILLATION_TERMS))
    if unknown:
        raise ValueError(f"unknown distillation term(s) {unknown}; valid: {list(DISTILLATION_TERMS)}")
    s = student if isinstance(student, WindowOutput) else WindowOutput(student, None, student.latent)
    t = merge_teacher_outputs(teacher)
    sc, tc = s.current, t.current
    wanted = {name for name, w in weights.items() if w != 0.0}
    both = lambda a, b: a is not None and b is not None  # noqa: E731
    out: dict[str, Tensor] = {}
    if "distill_semantic" in wanted and both(sc.semantic_logits, tc.semantic_logits):
        out["distill_semantic"] = semantic_kl(sc.semantic_logits, tc.semantic_logits, temperature)
    if "distill_depth" in wanted:
        if log_depth and both(sc.depth_m, tc.depth_m):
            out["distill_depth"] = log_depth_l1(sc.depth_m, tc.depth_m)
        elif not log_depth and both(sc.disparities, tc.disparities):
            out["distill_depth"] = disparity_l1(sc.disparities, tc.disparities)
    if "distill_center" in wanted and both(sc.center_heatmap, tc.center_heatmap):
        out["distill_center"] = center_heatmap_mse(sc.center_heatmap, tc.center_heatmap)
    if "distill_offset" in wanted and both(sc.center_offsets, tc.center_offsets) \
            and tc.semantic_logits is not None:
        out["distill_offset"] = center_offset_l1(sc.center_offsets, tc.center_offsets,
                                                 teacher_thing_pixels(tc.semantic_logits))
    if "distill_pose" in wanted:
        if both(s.T_cam_src_cam_cur, t.T_cam_src_cam_cur):
            to_vectors = lambda T: matrix_to_pose_vector(T.flatten(0, 1))  # noqa: E731
            out["distill_pose"] = pose_l1(to_vectors(s.T_cam_src_cam_cur),
                                          to_vectors(t.T_cam_src_cam_cur))
        elif both(sc.pose_vector, tc.pose_vector):
            out["distill_pose"] = pose_l1(sc.pose_vector, tc.pose_vector)
    if "distill_motion" in wanted and both(sc.motion_prob, tc.motion_prob):
        out["distill_motion"] = motion_probability_kl(sc.motion_prob, tc.motion_prob)
    if "distill_flow" in wanted and both(sc.scene_flow_m, tc.scene_flow_m):
        out["distill_flow"] = flow_l1(sc.scene_flow_m, tc.scene_flow_m)
    return out
