"""Training augmentation of :class:`~unified_perception.train.batch.Batch` rows, consistent over the
window: one random draw per sample, applied to all its frames and to its ground truth.

* Colour jitter (monodepth2: brightness, contrast, saturation 0.8..1.2, hue +-0.1, with probability
  0.5, the four in random order) on ``network_images`` only; the losses keep the original colours.
* Horizontal flip: every frame and per-pixel map is mirrored (column ``u -> W - 1 - u``), which is
  the camera seen through the reflection ``S = diag(-1, 1, 1)`` of its x axis. So the principal
  point moves to ``W - 1 - cx`` (``K' = A K S`` with ``A`` the pixel mirror), relative poses are
  conjugated ``T' = S T S``, scene flow and centre offsets change the sign of their x component and
  steering changes sign (a left turn becomes a right turn).
* Principal-point shift: every frame and map moves by the same whole number of pixels and ``cx, cy``
  with it, so the camera rays, depths and poses stay exact. Uncovered borders repeat the edge pixels
  in the images and hold no ground truth. This is the geometric content of the issue's "lateral
  translation / yaw": a true lateral translation needs new views with parallax and disocclusions
  (not possible from one image without rendering), and a small yaw looks to the network like this
  shift of the vanishing point. For that reason a horizontally shifted sample drops its steering
  label (the right steering for a yawed car is not known without a controller model). Off by
  default (``shift_probability = 0``).

Random numbers come from a ``torch.Generator`` passed in, so a seeded generator gives the same
augmentation every run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from unified_perception.contract import IGNORE_ID
from unified_perception.data.sample import PANOPTIC_IGNORE
from unified_perception.train.batch import Batch
from unified_perception.train.collate import concat_batches
from unified_perception.train.panoptic_targets import panoptic_targets


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation probabilities and ranges (monodepth2's colour jitter by default).

    ``brightness``/``contrast``/``saturation``: factors drawn in ``[1 - v, 1 + v]``; ``hue``: shift
    in ``[-v, v]`` turns of the colour wheel; ``max_shift_fraction``: largest principal-point shift
    as a fraction of the image height / width.
    """

    flip_probability: float = 0.5
    jitter_probability: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.1
    shift_probability: float = 0.0
    max_shift_fraction: float = 0.05

    def __post_init__(self) -> None:
        for name in ("flip_probability", "jitter_probability", "shift_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"augmentation {name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"augmentation {name} must be in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"augmentation hue must be in [0, 0.5], got {self.hue}")
        if not 0.0 <= self.max_shift_fraction < 0.5:
            raise ValueError(f"augmentation max_shift_fraction must be in [0, 0.5), got "
                             f"{self.max_shift_fraction}")


# -- colour ------------------------------------------------------------------------------------

def _grey(images: Tensor) -> Tensor:
    """ITU-R 601 luma of ``[..., 3, H, W]`` RGB, ``[..., 1, H, W]``."""
    r, g, b = images.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _shift_hue(images: Tensor, shift: float) -> Tensor:
    """Rotate the hue of ``[..., 3, H, W]`` RGB in [0, 1] by ``shift`` turns (through HSV)."""
    value, _ = images.max(dim=-3)
    minimum, _ = images.min(dim=-3)
    chroma = value - minimum
    r, g, b = images.unbind(-3)
    safe = torch.where(chroma > 0, chroma, torch.ones_like(chroma))
    hue = torch.where(value == r, ((g - b) / safe) % 6.0,
                      torch.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    hue = torch.where(chroma > 0, hue, torch.zeros_like(hue)) / 6.0
    hue = (hue + shift) % 1.0
    # HSV -> RGB: channel n is V - C * clamp(min(k, 4 - k), 0, 1) with k = (n + 6 H) mod 6.
    n = torch.tensor([5.0, 3.0, 1.0], dtype=images.dtype, device=images.device)
    k = (n.view(3, 1, 1) + 6.0 * hue.unsqueeze(-3)) % 6.0
    return value.unsqueeze(-3) - chroma.unsqueeze(-3) * torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)


def color_jitter(images: Tensor, config: AugmentConfig, generator: torch.Generator) -> Tensor:
    """The same random brightness / contrast / saturation / hue change of every frame of a window
    ``[T, 3, H, W]`` in [0, 1] (contrast blends each frame with its own mean grey, as torchvision)."""
    uniform = lambda v: float(1.0 + (2.0 * torch.rand((), generator=generator) - 1.0) * v)  # noqa: E731
    factors = {"brightness": uniform(config.brightness), "contrast": uniform(config.contrast),
               "saturation": uniform(config.saturation),
               "hue": float((2.0 * torch.rand((), generator=generator) - 1.0) * config.hue)}
    out = images
    for index in torch.randperm(4, generator=generator).tolist():
        if index == 0:
            out = out * factors["brightness"]
        elif index == 1:
            mean = _grey(out).mean(dim=(-3, -2, -1), keepdim=True)
            out = mean + factors["contrast"] * (out - mean)
        elif index == 2:
            grey = _grey(out)
            out = grey + factors["saturation"] * (out - grey)
        elif factors["hue"] != 0.0:
            out = _shift_hue(out, factors["hue"])
        out = out.clamp(0.0, 1.0)
    return out


# -- geometry ----------------------------------------------------------------------------------

X_MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))
"""``S``: the camera x axis mirrored (``[4, 4]``); a relative pose seen in a left-right mirror is
``S T S``."""


def flip_horizontal(batch: Batch) -> Batch:
    """Every row of ``batch`` mirrored left-right (see the module docstring). Flipping twice gives
    back the original batch."""
    width = batch.size[1]
    mirror_px = torch.tensor([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    S3 = X_MIRROR[:3, :3]
    K = mirror_px @ batch.K @ S3
    S = X_MIRROR.to(batch.T_cam_src_cam_cur.dtype)
    sign_x = torch.tensor([-1.0, 1.0, 1.0]).view(1, 3, 1, 1)
    sign_dx = torch.tensor([1.0, -1.0]).view(1, 2, 1, 1)
    flip = lambda t: t.flip(-1)                                            # noqa: E731
    return dataclasses.replace(
        batch, images=flip(batch.images), network_images=flip(batch.network_images),
        K=K, inv_K=torch.linalg.inv(K), depth_m=flip(batch.depth_m), semantic=flip(batch.semantic),
        panoptic=flip(batch.panoptic), center_heatmap=flip(batch.center_heatmap),
        center_offsets=flip(batch.center_offsets) * sign_dx, thing_mask=flip(batch.thing_mask),
        motion_mask=flip(batch.motion_mask), scene_flow=flip(batch.scene_flow) * sign_x,
        T_cam_src_cam_cur=S @ batch.T_cam_src_cam_cur @ S, steering_rad=-batch.steering_rad)


def _shifted(t: Tensor, dy: int, dx: int, fill: float | None) -> Tensor:
    """``t [..., H, W]`` moved by ``(dy, dx)`` px; uncovered pixels repeat the edge (``fill`` None)
    or hold ``fill``."""
    height, width = t.shape[-2:]
    rows = torch.arange(height) - dy
    cols = torch.arange(width) - dx
    out = t.index_select(-2, rows.clamp(0, height - 1)).index_select(-1, cols.clamp(0, width - 1))
    if fill is not None:
        outside = ((rows < 0) | (rows >= height))[:, None] | ((cols < 0) | (cols >= width))[None, :]
        out = out.masked_fill(outside, fill)
    return out


def shift_principal_point(batch: Batch, dy: int, dx: int) -> Batch:
    """Every frame and map of ``batch`` moved by ``(dy, dx)`` px with ``cx += dx, cy += dy``.

    Images repeat their edge pixels into the uncovered border; ground truth there is "no value".
    Instance targets are recomputed from the moved panoptic map (rows with instances). A
    horizontal shift drops the steering label (see the module docstring).
    """
    if dy == 0 and dx == 0:
        return batch
    K = batch.K.clone()
    K[:, 0, 2] += dx
    K[:, 1, 2] += dy
    panoptic = _shifted(batch.panoptic, dy, dx, PANOPTIC_IGNORE)
    heatmap, offsets, things = [], [], []
    for row in range(batch.batch_size):
        targets = panoptic_targets(panoptic[row].numpy())
        heatmap.append(torch.from_numpy(targets.heatmap)[None])
        offsets.append(torch.from_numpy(targets.offsets))
        things.append(torch.from_numpy(targets.thing_mask).float()[None])
    keep = batch.has_instances.view(-1, 1, 1, 1)
    return dataclasses.replace(
        batch, images=_shifted(batch.images, dy, dx, None),
        network_images=_shifted(batch.network_images, dy, dx, None), K=K, inv_K=torch.linalg.inv(K),
        depth_m=_shifted(batch.depth_m, dy, dx, 0.0),
        semantic=_shifted(batch.semantic, dy, dx, IGNORE_ID), panoptic=panoptic,
        center_heatmap=torch.stack(heatmap) * keep, center_offsets=torch.stack(offsets) * keep,
        thing_mask=torch.stack(things) * keep, motion_mask=_shifted(batch.motion_mask, dy, dx, 0.0),
        scene_flow=_shifted(batch.scene_flow, dy, dx, 0.0),
        has_steering=batch.has_steering & (dx == 0))


# -- per sample --------------------------------------------------------------------------------

def augment_row(row: Batch, config: AugmentConfig, generator: torch.Generator) -> Batch:
    """One random augmentation of a batch of one row (all frames of its window alike)."""
    draw = lambda: float(torch.rand((), generator=generator))             # noqa: E731
    if draw() < config.shift_probability:
        height, width = row.size
        max_dy = int(config.max_shift_fraction * height)
        max_dx = int(config.max_shift_fraction * width)
        dy = int(torch.randint(-max_dy, max_dy + 1, (), generator=generator))
        dx = int(torch.randint(-max_dx, max_dx + 1, (), generator=generator))
        row = shift_principal_point(row, dy, dx)
    if draw() < config.flip_probability:
        row = flip_horizontal(row)
    if draw() < config.jitter_probability:
        row = dataclasses.replace(row, network_images=color_jitter(row.images[0], config, generator)[None])
    return row


def augment_batch(batch: Batch, config: AugmentConfig, generator: torch.Generator) -> Batch:
    """Each row of ``batch`` augmented with its own random draw."""
    rows = [augment_row(_row(batch, i), config, generator) for i in range(batch.batch_size)]
    return concat_batches(rows)


def _row(batch: Batch, index: int) -> Batch:
    """Row ``index`` of ``batch`` as a batch of one."""
    if batch.batch_size == 1:
        return batch
    fields = {}
    for field in dataclasses.fields(Batch):
        value = getattr(batch, field.name)
        if isinstance(value, Tensor):
            value = value[index:index + 1]
        elif field.name == "sources":
            value = value[index:index + 1]
        fields[field.name] = value
    return Batch(**fields)
