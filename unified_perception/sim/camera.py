"""The pinhole camera: intrinsics at a resolution, ray directions and projection."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unified_perception.runtime.preprocess import intrinsics_from_normalized
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
        K = intrinsics_from_normalized((cfg.fx_norm, cfg.fy_norm, cfg.cx_norm, cfg.cy_norm),
                                       (cfg.height, cfg.width))
        return cls(cfg.height, cfg.width, K)

    def normalised_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """``x [W]`` and ``y [H]`` float64: optical-frame ray slopes of the pixel columns and rows.

        The ray of pixel ``(v, u)`` is ``(x[u], y[v], 1)``.
        """
        K = self.K
        x = (np.arange(self.width, dtype=np.float64) - K[0, 2]) / K[0, 0]
        y = (np.arange(self.height, dtype=np.float64) - K[1, 2]) / K[1, 1]
        return x, y

    def pixel_rays(self) -> np.ndarray:
        """``[H, W, 3] float64`` ray directions in the optical frame with z = 1.

        A point at ray parameter ``t`` along such a ray has optical depth ``t``.
        """
        return self.rotated_rays(np.eye(3))

    def rotated_rays(self, R: np.ndarray) -> np.ndarray:
        """``[H, W, 3] float64``: the pixel rays ``(x, y, 1)`` turned by ``R [3, 3]`` (e.g. into the
        world frame with ``R_world_cam``); the same values as :func:`grid_ray_components`."""
        x, y = self.normalised_coords()
        return np.stack(grid_ray_components(R, x, y), axis=-1)

    def bounding_rects(self, points_cam: np.ndarray, near_m: float = 0.05,
                       valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel rectangles covering the projections of point sets ``[P, K, 3]`` (optical frame);
        ``valid`` ``[P, K] bool`` leaves points out (a set with none is not visible).

        Returns rectangles ``[P, 4] int64`` (y0, y1, x0, x1; half-open, clipped to the image, with a
        pixel of margin), the nearest depth ``[P]`` (m, >= 0) and a visible flag ``[P]``. A set with a
        point closer than ``near_m`` projects unboundedly and gets the whole image. Every point in a
        set's convex hull lands inside its rectangle.
        """
        z = points_cam[..., 2]
        if valid is None:
            valid = np.ones(z.shape, dtype=bool)
        z_min, z_max = np.where(valid, z, np.inf).min(axis=1), np.where(valid, z, -np.inf).max(axis=1)
        uv, _ = self.project(points_cam)
        in_front = ((z > near_m) & valid)[..., None]
        lo = np.clip(np.where(in_front, uv, np.inf).min(axis=1), -1e6, 1e6)     # [P, 2]
        hi = np.clip(np.where(in_front, uv, -np.inf).max(axis=1), -1e6, 1e6)
        x0, y0 = np.floor(lo[:, 0]) - 1, np.floor(lo[:, 1]) - 1
        x1, y1 = np.ceil(hi[:, 0]) + 2, np.ceil(hi[:, 1]) + 2
        straddles = z_min <= near_m  # a point behind the camera: the projection is unbounded
        x0 = np.where(straddles, 0, x0)
        y0 = np.where(straddles, 0, y0)
        x1 = np.where(straddles, self.width, x1)
        y1 = np.where(straddles, self.height, y1)
        rects = np.stack([np.clip(y0, 0, self.height), np.clip(y1, 0, self.height),
                          np.clip(x0, 0, self.width), np.clip(x1, 0, self.width)], axis=1)
        rects = rects.astype(np.int64)
        visible = (z_max > near_m) & (rects[:, 1] > rects[:, 0]) & (rects[:, 3] > rects[:, 2])
        return rects, np.maximum(z_min, 0.0), visible

    def project(self, points_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project ``[..., 3]`` optical-frame points; returns pixel ``[..., 2]`` (u, v) and depth ``[...]``."""
        z = points_cam[..., 2]
        safe = np.where(np.abs(z) < 1e-9, 1e-9, z)
        u = self.K[0, 0] * points_cam[..., 0] / safe + self.K[0, 2]
        v = self.K[1, 1] * points_cam[..., 1] / safe + self.K[1, 2]
        return np.stack([u, v], axis=-1), z


def grid_ray_components(R: np.ndarray, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Components ``[3]`` of ``R @ (x, y, 1)`` over a pixel grid, each ``[len(y), len(x)]``.

    ``x``: column slopes ``[w]``, ``y``: row slopes ``[h]`` (a crop of
    :meth:`PinholeCamera.normalised_coords`). Pixel rays are separable, so this costs two
    multiply-adds per value instead of a ``[h*w, 3] @ [3, 3]`` product. :func:`pixel_ray_components`
    gives bitwise the same values for scattered pixels.
    """
    return [(R[j, 1] * y[:, None] + R[j, 2]) + R[j, 0] * x[None, :] for j in range(3)]


def pixel_ray_components(R: np.ndarray, x: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
    """Components ``[3]`` of ``R[n] @ (x[n], y[n], 1)`` for scattered pixels, each ``[N]``.

    ``R``: ``[N, 3, 3]`` (one rotation per pixel) or ``[3, 3]``; ``x``, ``y``: ``[N]`` slopes.
    """
    R = np.asarray(R)
    return [(R[..., j, 1] * y + R[..., j, 2]) + R[..., j, 0] * x for j in range(3)]
