"""What the unified model carries from frame t-1 to frame t, passed in and out explicitly.

The ONNX export flattens it into the contract's ``state_in_<suffix>`` / ``state_out_<suffix>``
tensors (:meth:`TemporalState.named`) and rebuilds it inside the graph (:meth:`TemporalState.from_named`).
The feature suffixes are ``feat_s<stride>`` for each stride of the encoder that produced them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import Tensor

FEATURE_PREFIX = "feat_s"
_FEATURE_NAME = re.compile(rf"{FEATURE_PREFIX}(\d+)")


@dataclass
class TemporalState:
    """The previous frame as the model needs it. All-zero = no previous frame.

    ``features``: encoder maps of the previous frame ``[N, C_i, H/s_i, W/s_i]`` (two-frame tasks),
    one per entry of ``strides`` (the encoder's strides, e.g. 4, 8, 16, 32); ``prev_image``: the
    normalised image ``[N, 3, H, W]`` (motion decoder); ``latent_window`` ``[N, T, D]`` and
    ``latent_mask`` ``[N, T]`` (1 = real frame; steering); ``valid`` ``[N]`` float32, 1 when
    ``features``/``prev_image`` hold a real previous frame.
    """

    features: tuple[Tensor, ...] | None = None
    strides: tuple[int, ...] = ()
    prev_image: Tensor | None = None
    latent_window: Tensor | None = None
    latent_mask: Tensor | None = None
    valid: Tensor | None = None

    def named(self) -> dict[str, Tensor]:
        """Flat ``{suffix: tensor}`` in a fixed order; the contract names are ``state_in_<suffix>``."""
        out: dict[str, Tensor] = {}
        if self.features is not None:
            if len(self.strides) != len(self.features):
                raise ValueError(f"temporal state has {len(self.features)} feature maps but "
                                 f"strides {list(self.strides)}")
            for stride, f in zip(self.strides, self.features):
                out[f"{FEATURE_PREFIX}{stride}"] = f
        if self.prev_image is not None:
            out["prev_image"] = self.prev_image
        if self.latent_window is not None:
            out["latent_window"] = self.latent_window
            out["latent_mask"] = self.latent_mask  # type: ignore[assignment]
        if self.valid is not None:
            out["valid"] = self.valid
        return out

    @classmethod
    def from_named(cls, named: dict[str, Tensor]) -> "TemporalState":
        """The state of a flat ``{suffix: tensor}`` (the inverse of :meth:`named`)."""
        strides = tuple(sorted(int(m.group(1)) for m in map(_FEATURE_NAME.fullmatch, named) if m))
        features = tuple(named[f"{FEATURE_PREFIX}{s}"] for s in strides) if strides else None
        return cls(features=features, strides=strides, prev_image=named.get("prev_image"),
                   latent_window=named.get("latent_window"), latent_mask=named.get("latent_mask"),
                   valid=named.get("valid"))
