"""The unified multi-task model: one shared encoder run ONCE per frame, every head on top of it,
and the temporal state (the previous frame's features) passed in and out explicitly.

``UnifiedModel.forward(image, state) -> (UnifiedOutput, TemporalState)``. In training mode it
returns what the losses need (multi-scale disparities, logits, raw fields); in eval mode it also
groups the panoptic ids, and blanks the two-frame outputs of rows whose state held no previous
frame (identity ego-motion, zero motion and flow). The same heads on their own backbones make
the dedicated single-task models and the members of the multi-backbone teacher
(:mod:`unified_perception.train.multi_backbone_teacher`); the state is :class:`TemporalState`.

Scene flow (contract ``scene_flow``): the flow instance of the motion decoder predicts an
independent 3D flow ``F`` (m, optical frame of t) for every pixel; the mask instance predicts the
probability ``p`` that the pixel moves on its own. ``scene_flow = F * p``: the displacement of the
pixel's point between t-1 and t caused by its own motion, in camera t (zero for static points).
With depth ``D`` and ``T = T_cam_prev_cam_cur``, the point was at ``T (P - scene_flow)`` in camera
t-1 (``geometry.points_in_previous_camera``); the complete flow used by the photometric loss is
``T (P - scene_flow) - P`` = rigid flow (``geometry.rigid_flow``) minus the rotated scene flow.
The training losses decide the sign convention that ``F`` learns; this is the one they must use.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from unified_perception.contract import (ALL_TASKS, DEFAULT_DEPTH_RANGE_M, DEFAULT_STEERING_WINDOW,
                                         NUM_CLASSES, TWO_FRAME_TASKS, Task)
from unified_perception.train.backbones import Backbone, build_backbone
from unified_perception.train.heads.depth import DepthDecoder
from unified_perception.train.heads.motion import MotionHead
from unified_perception.train.heads.layers import upsample_by
from unified_perception.train.heads.panoptic import PREDICTION_STRIDE, PanopticHead
from unified_perception.train.heads.panoptic_grouping import PanopticGrouping
from unified_perception.train.heads.pose import MultiScalePoseDecoder
from unified_perception.train.heads.steering import AttentionPoolSteering, FrameLatent
from unified_perception.train.normalization import ImageNormalization
from unified_perception.train.temporal_state import TemporalState

SEGMENTATION_TASKS = frozenset({Task.SEMANTIC, Task.INSTANCE, Task.PANOPTIC})


@dataclass(frozen=True)
class HeadOptions:
    """Widths and settings of every head. ``paper`` follows the paper's release; ``light`` is a car
    version: narrower heads that predict depth and motion at stride 4 and upsample inside the graph
    (as Panoptic-DeepLab does for segmentation), one motion decoder for mask and flow, and one
    panoptic decoder for the semantic and instance predictions. ``car`` (the shipped model's) keeps
    the light preset's strides, pose decoder, latent and voting, and the paper's widths where the
    head study measured the light ones losing accuracy: the two panoptic decoders and the two
    motion decoders at the release's widths, a depth decoder of 128 channels, ReLU throughout (the
    depth decoder trains with ReLU from the start: no refit stage). ``car_lean`` (head-study
    variant E) is ``car`` with a 64-channel stride-4 depth level and the motion decoders' wide pairs
    squeezed to 256 channels: 30 % fewer head GFLOPs, the same accuracy in the head study.
    ``latent_columns``: vertical strips of the frame latent's pooling; ``latent_ego_motion``: the
    latent also takes the pose decoder's ego-motion (see ``FrameLatent``); ``steering_kinematic``:
    the steering head adds the bicycle model's angle of that ego-motion (see
    ``AttentionPoolSteering``). ``depth_activation``: ``relu`` where the depth refit stage has
    converted the decoder (``elu`` otherwise, as trained). ``semantic_label_stride`` 2: class ids
    from the logits upsampled to stride 2 only, each spread over 2x2 pixels (0.55 ms of 11 at
    96x320 on 2 CPU cores, for 1.0 % of the mIoU on four held-out drives; off by default).
    ``depth_stride4_width``: channels of the depth decoder's stride-4 level (0: ``depth_width``);
    ``motion_pair_width``: the motion decoders squeeze pair features wider than this to it with a
    1x1 convolution before a level's 3x3 ones (0: never)."""

    depth_width: int = 256
    depth_fine_widths: tuple[int, int] = (64, 32)
    depth_output_stride: int = 1
    depth_activation: str = "elu"
    depth_stride4_width: int = 0
    depth_range_m: tuple[float, float] = DEFAULT_DEPTH_RANGE_M
    semantic_width: int = 256
    instance_width: int = 128
    semantic_skips: tuple[int, int, int] = (128, 64, 32)
    instance_skips: tuple[int, int, int] = (64, 32, 16)
    instance_head_width: int = 32
    panoptic_shared_decoder: bool = False
    center_top_k: int = 64
    center_threshold: float = 0.1
    center_nms_kernel: int = 3
    center_vote_stride: int = 1
    semantic_label_stride: int = 1
    pose_widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    pose_head_width: int = 256
    motion_widths: tuple[int, ...] = (256, 128, 64, 32, 16, 16)
    motion_output_stride: int = 1
    motion_shared: bool = False
    motion_pair_width: int = 0
    latent_dim: int = 256
    latent_columns: int = 4
    latent_ego_motion: bool = False
    steering_window: int = DEFAULT_STEERING_WINDOW
    steering_heads: int = 4
    steering_hidden: int = 128
    steering_kinematic: bool = False


_CAR = HeadOptions(
    depth_width=128, depth_fine_widths=(32, 16), depth_activation="relu",
    pose_widths=(16, 32, 64, 128), pose_head_width=64, center_top_k=32,
    motion_widths=(256, 128, 64, 32, 16, 16), latent_dim=128, steering_hidden=64,
    depth_output_stride=4, motion_output_stride=4, center_vote_stride=4)

PRESETS: dict[str, HeadOptions] = {
    "paper": HeadOptions(),
    "light": HeadOptions(
        depth_width=64, depth_fine_widths=(32, 16), semantic_width=96, instance_width=48,
        semantic_skips=(48, 32, 16), instance_skips=(32, 16, 8), instance_head_width=16,
        center_top_k=32, pose_widths=(16, 32, 64, 128), pose_head_width=64,
        motion_widths=(64, 32, 16, 16, 8, 8), latent_dim=128, steering_hidden=64,
        depth_output_stride=4, motion_output_stride=4, motion_shared=True,
        panoptic_shared_decoder=True, center_vote_stride=4),
    "car": _CAR,
    "car_lean": dataclasses.replace(_CAR, depth_stride4_width=64, motion_pair_width=256),
}


def head_options(preset: str = "paper", **overrides: Any) -> HeadOptions:
    """A preset's :class:`HeadOptions` with ``overrides`` (field names of HeadOptions)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown head preset '{preset}'; choose one of: {', '.join(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(HeadOptions)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown head option(s) {unknown}; valid: {sorted(fields)}")
    return dataclasses.replace(PRESETS[preset], **overrides)


class UnifiedOutput(NamedTuple):
    """Everything the model predicts for frame t. Fields of tasks the model lacks are None."""

    latent: Tensor                                  # [N, D]
    depth_m: Tensor | None = None                   # [N, 1, H, W] m, optical z
    disparities: tuple[Tensor, ...] | None = None   # finest first: H, H/2, H/4, H/8 (train); H (eval)
    semantic_logits: Tensor | None = None           # [N, C, H, W]
    center_heatmap: Tensor | None = None            # [N, 1, H, W]
    center_heatmap_s4: Tensor | None = None         # [N, 1, H/4, W/4] (center extraction input)
    center_offsets: Tensor | None = None            # [N, 2, H, W] (dy, dx) px
    semantic: Tensor | None = None                  # [N, H, W] int32 (eval)
    instances: Tensor | None = None                 # [N, H, W] int32 (eval)
    panoptic: Tensor | None = None                  # [N, H, W] int32 (eval)
    pose_vector: Tensor | None = None               # [N, 6] of T_cam_cur_cam_prev
    T_cam_prev_cam_cur: Tensor | None = None        # [N, 4, 4]
    motion_prob: Tensor | None = None               # [N, 1, H, W]
    independent_flow_m: Tensor | None = None        # [N, 3, H, W] m, before the motion mask
    scene_flow_m: Tensor | None = None              # [N, 3, H, W] m = independent_flow * motion_prob
    steering_rad: Tensor | None = None              # [N, 1] rad, positive left
    pair_valid: Tensor | None = None                # [N] bool


class UnifiedModel(nn.Module):
    """Shared encoder + the heads its tasks need. See the module docstring."""

    def __init__(self, backbone_name: str, backbone: Backbone, input_height: int, input_width: int,
                 tasks: Sequence[Task | str] = ALL_TASKS,
                 options: HeadOptions = HeadOptions()) -> None:
        super().__init__()
        coarsest = max(backbone.strides)
        if input_height % coarsest or input_width % coarsest:
            raise ValueError(f"input size {input_height}x{input_width} must be a multiple of "
                             f"{coarsest} (the encoder's coarsest stride)")
        self.tasks: tuple[Task, ...] = tuple(t for t in ALL_TASKS if t in {Task(x) for x in tasks})
        if not self.tasks:
            raise ValueError("a model needs at least one task")
        self.backbone_name, self.options = backbone_name, options
        self.input_height, self.input_width = input_height, input_width
        ch = tuple(backbone.channels)
        self.normalize = ImageNormalization()
        self.encoder = backbone
        self.latent = FrameLatent(ch, options.latent_dim, options.latent_columns,
                                  options.latent_ego_motion)
        has = set(self.tasks)
        self.depth = (DepthDecoder(ch, options.depth_width, options.depth_fine_widths,
                                   options.depth_range_m, options.depth_output_stride,
                                   options.depth_activation, options.depth_stride4_width)
                      if Task.DEPTH in has else None)
        self.panoptic = (PanopticHead(ch, NUM_CLASSES, options.semantic_width,
                                      options.instance_width, options.semantic_skips,
                                      options.instance_skips, options.instance_head_width,
                                      options.panoptic_shared_decoder)
                         if has & SEGMENTATION_TASKS else None)
        self.grouping = (PanopticGrouping((input_height, input_width),
                                          top_k=options.center_top_k,
                                          threshold=options.center_threshold,
                                          nms_kernel=options.center_nms_kernel,
                                          vote_stride=options.center_vote_stride,
                                          label_stride=options.semantic_label_stride)
                         if self.panoptic is not None else None)
        self.two_frame = bool(has & TWO_FRAME_TASKS)
        self.pose = (MultiScalePoseDecoder(ch, options.pose_widths, options.pose_head_width)
                     if self.two_frame else None)
        self.motion = (MotionHead(ch, Task.SCENE_FLOW in has, options.motion_widths,
                                  options.motion_output_stride, options.motion_shared,
                                  pair_width=options.motion_pair_width)
                       if has & {Task.MOTION, Task.SCENE_FLOW} else None)
        if options.steering_kinematic and not self.two_frame:
            raise ValueError("head option 'steering_kinematic' needs a pose decoder (a two-frame "
                             "task: pose, motion or scene_flow)")
        self.steering = (AttentionPoolSteering(options.latent_dim, options.steering_window,
                                               options.steering_heads, options.steering_hidden,
                                               options.steering_kinematic)
                         if Task.STEERING in has else None)
        for name, module in self.head_modules().items():
            if name != "encoder":
                init_head_weights(module)
        if self.panoptic is not None:
            self.panoptic.init_output_layers()

    @property
    def latent_dim(self) -> int:
        return self.options.latent_dim

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> TemporalState:
        """The all-zero state of ``batch`` rows: no previous frame."""
        h, w = self.input_height, self.input_width
        z = lambda *shape: torch.zeros(batch, *shape, device=device)  # noqa: E731
        state = TemporalState()
        if self.two_frame:
            state.features = tuple(z(c, h // s, w // s)
                                   for c, s in zip(self.encoder.channels, self.encoder.strides))
            state.strides = tuple(self.encoder.strides)
            state.valid = z()
        if self.motion is not None and self.motion.uses_images:
            state.prev_image = z(3, h, w)
        if self.steering is not None:
            state.latent_window = z(self.options.steering_window, self.options.latent_dim)
            state.latent_mask = z(self.options.steering_window)
        return state

    def forward(self, image: Tensor, state: TemporalState | None = None
                ) -> tuple[UnifiedOutput, TemporalState]:
        """``image``: uint8 ``[N, H, W, 3]`` RGB or float ``[N, 3, H, W]`` in [0, 1].

        Returns this frame's outputs and the state to pass with the next frame.
        """
        x = self.normalize(image)
        if state is None:
            state = self.initial_state(x.shape[0], x.device)
        size = (self.input_height, self.input_width)
        feats = self.encoder(x)
        out: dict[str, Any] = {}
        new_state = TemporalState()
        if self.depth is not None:
            depth = self.depth(feats, all_scales=self.training)
            out.update(depth_m=depth.depth_m, disparities=depth.disparities)
        if self.panoptic is not None:
            seg = self.panoptic(feats, size)
            out.update(semantic_logits=seg.semantic_logits, center_heatmap=seg.center_heatmap,
                       center_heatmap_s4=seg.center_heatmap_s4, center_offsets=seg.center_offsets)
            if not self.training:
                offsets = seg.center_offsets if self.grouping.vote_stride == 1 else seg.center_offsets_s4
                logits = (seg.semantic_logits if self.grouping.label_stride == 1 else
                          upsample_by(seg.semantic_logits_s4, PREDICTION_STRIDE // self.grouping.label_stride))
                ids = self.grouping(logits, seg.center_heatmap_s4, offsets)
                out.update(semantic=ids.semantic, instances=ids.instances, panoptic=ids.panoptic)
        if self.two_frame:
            out.update(self._two_frame(state, feats, x))
            new_state.features, new_state.strides = tuple(feats), tuple(self.encoder.strides)
            # Ones of the batch size, from an existing [N] tensor (no Shape op in the export).
            new_state.valid = torch.where(state.valid > 0.5, 1.0, 1.0)
            if self.motion is not None and self.motion.uses_images:
                new_state.prev_image = x
        ego = None       # the latent's (and steering's) ego-motion: zero without a previous frame
        if "pose_vector" in out and (self.latent.ego_motion
                                     or getattr(self.steering, "kinematic", False)):
            ego = out["pose_vector"] * out["pair_valid"].to(out["pose_vector"].dtype)[:, None]
        out["latent"] = self.latent(feats, ego)
        if self.steering is not None:
            window = torch.cat([state.latent_window[:, 1:], out["latent"][:, None]], dim=1)
            # Shift the mask left; the newest slot (a constant position) holds a real frame.
            newest = torch.arange(self.options.steering_window, device=x.device) == \
                self.options.steering_window - 1
            mask = torch.where(newest, 1.0, state.latent_mask.roll(-1, dims=1))
            out["steering_rad"] = self.steering(window, mask, ego)
            new_state.latent_window, new_state.latent_mask = window, mask
        return UnifiedOutput(**out), new_state

    def _two_frame(self, state: TemporalState, feats: list[Tensor], x: Tensor) -> dict[str, Tensor]:
        valid = state.valid > 0.5                                                    # [N] bool
        prev = list(state.features)
        pose = self.pose(prev, feats)
        out: dict[str, Tensor] = {"pair_valid": valid, "pose_vector": pose.pose_vector}
        T = pose.T_cam_prev_cam_cur
        motion_prob = flow = scene_flow = None
        size = (self.input_height, self.input_width)
        if self.motion is not None:
            motion_prob, flow = self.motion(prev, feats, state.prev_image, x, pose.pose_vector, size)
            scene_flow = None if flow is None else flow * motion_prob
        if not self.training:  # blank rows without a previous frame (constants broadcast)
            row = valid[:, None, None, None]
            eye = torch.eye(4, dtype=T.dtype, device=T.device)
            T = torch.where(valid[:, None, None], T, eye)
            motion_prob = None if motion_prob is None else torch.where(row, motion_prob, 0.0)
            scene_flow = None if scene_flow is None else torch.where(row, scene_flow, 0.0)
        out.update(T_cam_prev_cam_cur=T, motion_prob=motion_prob, independent_flow_m=flow,
                   scene_flow_m=scene_flow)
        return out

    def head_modules(self) -> dict[str, nn.Module]:
        """The model's parts by name (for parameter and FLOP accounting)."""
        return {name: m for name, m in self.named_children()
                if m is not None and name != "normalize"}


def init_head_weights(module: nn.Module) -> None:
    """He-normal (fan-in) convolutions and zero biases, so activations keep their scale through
    the heads from the first step (PyTorch's default conv init shrinks them layer by layer)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _seeded(seed: int | None):
    return torch.random.fork_rng(enabled=seed is not None)


def build_unified_model(backbone: str, input_height: int, input_width: int, *,
                        tasks: Iterable[Task | str] = ALL_TASKS, seed: int | None = None,
                        preset: str = "paper", **head_opts: Any) -> UnifiedModel:
    """A randomly initialised model on ``backbone`` serving ``tasks`` at ``input_height x
    input_width`` (multiples of 32). ``seed`` makes the initialisation reproducible without touching
    the global RNG; ``preset`` ('paper' or 'light') and ``head_opts`` (fields of
    :class:`HeadOptions`) set the head widths."""
    options = head_options(preset, **head_opts)
    with _seeded(seed):
        if seed is not None:
            torch.manual_seed(seed)
        model = UnifiedModel(backbone, build_backbone(backbone), input_height, input_width,
                             tuple(tasks), options)
    return model


def build_single_task_model(task: Task | str, backbone: str, input_height: int, input_width: int,
                            *, seed: int | None = None, preset: str = "paper",
                            **head_opts: Any) -> UnifiedModel:
    """A dedicated model for one task: the same head on its own backbone."""
    return build_unified_model(backbone, input_height, input_width, tasks=(Task(task),),
                               seed=seed, preset=preset, **head_opts)
