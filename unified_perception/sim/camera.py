"""The pinhole camera: intrinsics at a resolution, ray directions and projection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unified_perception.sim.config import CameraConfig


@dataclass(frozen=True)
class PinholeCamera:
    """An undistorted pinhole camera of ``height`` x ``width`` pixels with intrinsics ``K``."""

    height: int
    width: int
    K: np.ndarray
    """``[3, 3] float64`` pixel intrinsics (pixel centres at integer coordinates)"""

    @classmethod
    def from_config(cls, cfg: CameraConfig) -> "PinholeCamera":
        K = np.array([[cfg.fx_norm * cfg.width, 0.0, cfg.cx_norm * cfg.width - 0.5],
                      [0.0, cfg.fy_norm * cfg.height, cfg.cy_norm * cfg.height - 0.5],
                      [0.0, 0.0, 1.0]])
        return cls(cfg.height, cfg.width, K)

    def pixel_rays(self) -> np.ndarray:
        """``[H, W, 3] float64`` ray directions in the optical frame with z = 1.

        A point at ray parameter ``t`` along such a ray has optical depth ``t``.
        """
        u = np.arange(self.width, dtype=np.float64)
        v = np.arange(self.height, dtype=np.float64)
        uu, vv = np.meshgrid(u, v)
        K = self.K
        x = (uu - K[0, 2]) / K[0, 0]
        y = (vv - K[1, 2]) / K[1, 1]
        return np.stack([x, y, np.ones_like(x)], axis=-1)

    def project(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project ``[..., 3]`` optical-frame points; returns pixel ``[..., 2]`` (u, v) and depth ``[...]``."""
        z = points_cam[..., 2]
        safe = np.where(np.abs(z) < 1e-9, 1e-9, z)
        u = self.K[0, 0] * points_cam[..., 0] / safe + self.K[0, 2]
        v = self.K[1, 1] * points_cam[..., 1] / safe + self.K[1, 2]
        return np.stack([u, v], axis=-1), z
