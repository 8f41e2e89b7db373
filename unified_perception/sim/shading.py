"""Lighting, materials and the sky: radiance per pixel -> an 8-bit RGB image.

Lambertian surfaces lit by a sun (a direction in the world frame) and a sky ambient term, mild
distance haze, a per-sequence exposure and a gamma curve. Nothing depends on the viewing direction
on surfaces, so a surface point keeps its colour between frames (brightness constancy) up to haze.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unified_perception.sim import textures as tx
from unified_perception.sim.layout import CrossSection
from unified_perception.sim.materials import Material


@dataclass(frozen=True)
class Lighting:
    """Per-sequence illumination and colour grading (linear RGB)."""

    sun_dir_world: np.ndarray   # [3] unit vector towards the sun
    sun_rgb: np.ndarray         # [3]
    ambient_rgb: np.ndarray     # [3]
    zenith_rgb: np.ndarray      # [3]
    horizon_rgb: np.ndarray     # [3]
    haze_distance_m: float
    exposure: float
    asphalt_albedo: float
    cloudiness: float


def random_lighting(rng: np.random.Generator) -> Lighting:
    elevation = rng.uniform(np.radians(12), np.radians(65))
    azimuth = rng.uniform(-np.pi, np.pi)
    sun = np.array([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth),
                    np.sin(elevation)])
    warmth = rng.uniform(0.0, 1.0) * (1.0 - elevation / np.radians(65))
    overcast = rng.uniform(0.0, 1.0)
    sun_strength = rng.uniform(1.6, 2.6) * (1.0 - 0.6 * overcast)
    return Lighting(
        sun_dir_world=sun,
        sun_rgb=sun_strength * np.array([1.0, 0.93 - 0.12 * warmth, 0.82 - 0.25 * warmth]),
        ambient_rgb=rng.uniform(0.45, 0.7) * np.array([0.75, 0.85, 1.0]) * (1.0 + 0.5 * overcast),
        zenith_rgb=np.array([0.12, 0.28, 0.65]) * (1 - overcast) + overcast * np.array([0.5, 0.52, 0.55]),
        horizon_rgb=np.array([0.62, 0.72, 0.85]) * (1 - 0.3 * overcast) + 0.3 * overcast * 0.7,
        haze_distance_m=rng.uniform(350.0, 1200.0),
        exposure=rng.uniform(0.75, 1.25),
        asphalt_albedo=rng.uniform(0.09, 0.2),
        cloudiness=overcast,
    )


# ---------------------------------------------------------------------------------------------
# Ground


def ground_albedo(s: np.ndarray, d: np.ndarray, xy: np.ndarray, fp: np.ndarray, cross: CrossSection,
                  lighting: Lighting) -> np.ndarray:
    """``[M, 3]`` albedo of ground points at road coordinates ``(s, d)`` / world ``xy`` ``[M, 2]``."""
    a = np.abs(d)
    x, y = xy[:, 0], xy[:, 1]
    out = np.empty((len(s), 3))

    road = a < cross.curb_m
    if road.any():
        rs, ra, rfp = s[road], a[road], fp[road]
        grain = tx.fbm2(x[road], y[road], rfp, 0.08, 7, seed=11)
        base = lighting.asphalt_albedo * (1.0 + 0.9 * grain)
        w, n = cross.lane_width_m, cross.lanes_per_direction
        paint = tx.pulse(ra - 0.14, 0.06, rfp)                       # double centre line
        for k in range(1, n):
            dash = tx.periodic_pulse(rs - 1.5, 9.0, 1.5, rfp)
            paint = np.maximum(paint, tx.pulse(ra - k * w, 0.07, rfp) * dash)
        paint = np.maximum(paint, tx.pulse(ra - (n * w - 0.2), 0.08, rfp))   # edge line
        paint *= 0.8 + 0.2 * (tx.fbm2(x[road], y[road], rfp, 1.5, 3, seed=5) + 0.5)
        albedo = base + paint * (0.65 - base)
        out[road] = albedo[:, None] * np.array([1.0, 1.0, 1.02])

    walk = (~road) & (a < cross.sidewalk_outer_m)
    if walk.any():
        ws, wa, wfp = s[walk], a[walk] - cross.curb_m, fp[walk]
        tile = 0.6
        tint = tx._hash(np.floor(ws / tile).astype(np.int64), np.floor(wa / tile).astype(np.int64),
                        np.sign(d[walk]).astype(np.int64), 3)
        grout = np.maximum(tx.periodic_pulse(ws, tile, 0.02, wfp), tx.periodic_pulse(wa, tile, 0.02, wfp))
        curb = tx.pulse(wa - 0.12, 0.12, wfp)
        tone = 0.36 + 0.08 * tint + 0.15 * tx.fbm2(x[walk], y[walk], wfp, 0.3, 6, seed=21)
        tone = tone * (1.0 - 0.45 * grout)
        tone = tone + curb * (0.5 - tone)
        out[walk] = tone[:, None] * np.array([1.0, 0.97, 0.93])

    grass = ~(road | walk)
    if grass.any():
        gx, gy, gfp = x[grass], y[grass], fp[grass]
        n1 = tx.fbm2(gx, gy, gfp, 0.05, 8, seed=31)
        dirt = np.clip(tx.fbm2(gx, gy, gfp, 0.03, 3, seed=41) * 3.0 + 0.2, 0.0, 1.0)
        green = np.array([0.12, 0.20, 0.05]) * (1.0 + 1.2 * n1)[:, None]
        soil = np.array([0.22, 0.17, 0.11]) * (1.0 + 0.8 * n1)[:, None]
        out[grass] = green + dirt[:, None] * (soil - green)
    return out


# ---------------------------------------------------------------------------------------------
# Objects


def object_albedo(material: np.ndarray, color: np.ndarray, p: np.ndarray, n: np.ndarray,
                  half: np.ndarray, seed: np.ndarray, fp: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Albedo ``[M, 3]`` and emitted radiance ``[M, 3]`` of object points.

    ``p``, ``n``: hit point and normal in each primitive's own frame ``[M, 3]``; ``half`` the
    primitive's half extents ``[M, 3]``; ``seed`` ``[M]`` its texture seed; ``fp`` ``[M]`` m/pixel.
    """
    if len(material) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    order = np.argsort(material, kind="stable")           # one gather, a slice per material
    mat_sorted = material[order]
    starts = np.flatnonzero(np.r_[True, mat_sorted[1:] != mat_sorted[:-1]])
    ends = np.r_[starts[1:], len(order)]
    ps, ns, hs, ss, fs, cs = (np.take(a, order, axis=0) for a in (p, n, half, seed, fp, color))
    albedo_sorted, emit_sorted = np.empty_like(cs), np.empty_like(cs)
    for a, b in zip(starts, ends):
        albedo_sorted[a:b], emit_sorted[a:b] = _MATERIALS[Material(int(mat_sorted[a]))](
            ps[a:b], ns[a:b], hs[a:b], ss[a:b], fs[a:b], cs[a:b])
    back = np.empty_like(order)
    back[order] = np.arange(len(order))      # undo the sort with a gather: np.take beats a scatter
    return np.take(albedo_sorted, back, axis=0), np.take(emit_sorted, back, axis=0)


def _noise_scale(p, fp, seed, freq, octaves, strength):
    return 1.0 + strength * tx.fbm3(p, fp, freq, octaves, seed)


def _facade(p, n, h, seed, fp, c):
    roof = n[:, 2] > 0.5
    u = np.where(np.abs(n[:, 0]) > 0.5, p[:, 1], p[:, 0]) + (seed % 97) * 0.37
    v = p[:, 2] + h[:, 2]                                    # height above the ground
    bay = 2.2 + (seed % 5) * 0.35
    storey = 3.0 + (seed % 3) * 0.2
    win = (tx.periodic_pulse(u, bay, 0.32 * bay, fp)
           * tx.periodic_pulse(v - storey * 0.55, storey, 0.27 * storey, fp)
           * np.clip((v - storey * 0.6) / 0.3, 0, 1) * np.clip((h[:, 2] * 2 - v - 0.5) / 0.3, 0, 1))
    cell = tx._hash(np.floor(u / bay).astype(np.int64), np.floor(v / storey).astype(np.int64), seed, 9)
    glass = np.array([0.05, 0.07, 0.09]) * (0.6 + 0.8 * cell)[:, None]
    wall = c * _noise_scale(p, fp, seed, 0.7, 6, 0.35)[:, None]
    out = wall + win[:, None] * (glass - wall)
    out[roof] = (c[roof] * 0.5 + 0.08) * _noise_scale(p[roof], fp[roof], seed[roof], 0.5, 4, 0.3)[:, None]
    return out, np.zeros_like(out)


def _car_paint(p, n, h, seed, fp, c):
    z = p[:, 2] + h[:, 2]
    bumper = np.clip((0.18 - z) / 0.05, 0, 1)
    lights = (np.abs(n[:, 0]) > 0.5) & (np.abs(np.abs(p[:, 1]) - h[:, 1] * 0.72) < h[:, 1] * 0.16) \
        & (np.abs(z - h[:, 2] * 1.45) < h[:, 2] * 0.18)
    out = c * _noise_scale(p, fp, seed, 3.0, 3, 0.08)[:, None]
    out = out + bumper[:, None] * (0.04 - out)
    lamp = np.where(n[:, 0] > 0, 0.8, 0.0)[:, None] * np.array([1.0, 1.0, 0.95]) \
        + np.where(n[:, 0] < 0, 1.0, 0.0)[:, None] * np.array([0.6, 0.03, 0.02])
    out[lights] = lamp[lights]
    return out, np.zeros_like(out)


def _glass(p, n, h, seed, fp, c):
    top = n[:, 2] > 0.5
    pillar = np.maximum(tx.pulse(p[:, 0] - h[:, 0] * 0.95, h[:, 0] * 0.08, fp),
                        tx.pulse(p[:, 0] + h[:, 0] * 0.95, h[:, 0] * 0.08, fp))
    pillar = np.where(np.abs(n[:, 1]) > 0.5, np.maximum(pillar, tx.pulse(p[:, 0], 0.05, fp)), pillar)
    pane = np.array([0.03, 0.04, 0.05]) * _noise_scale(p, fp, seed, 1.0, 3, 0.4)[:, None]
    out = pane + pillar[:, None] * (c - pane)
    out[top] = c[top]
    return out, np.zeros_like(out)


def _tire(p, n, h, seed, fp, c):
    r = np.hypot(p[:, 0], p[:, 1]) / h[:, 0]
    hub = (np.abs(n[:, 2]) > 0.5) * tx.pulse(r, 0.55, fp / h[:, 0])
    out = c + hub[:, None] * (np.array([0.35, 0.35, 0.36]) - c)
    return out, np.zeros_like(out)


def _plain(freq, octaves, strength):
    def shade(p, n, h, seed, fp, c):
        return c * _noise_scale(p, fp, seed, freq, octaves, strength)[:, None], np.zeros_like(c)
    return shade


def _bark(p, n, h, seed, fp, c):
    q = p * np.array([4.0, 4.0, 0.5])
    return c * _noise_scale(q, fp * 4.0, seed, 2.0, 3, 0.7)[:, None], np.zeros_like(c)


def _foliage(p, n, h, seed, fp, c):
    clumps = tx.fbm3(p, fp, 1.6, 6, seed)
    return c * np.clip(1.0 + 2.0 * clumps, 0.2, 2.5)[:, None], np.zeros_like(c)


def _sign(p, n, h, seed, fp, c):
    thin = np.argmin(h, axis=1)
    face = np.abs(np.take_along_axis(n, thin[:, None], 1)[:, 0]) > 0.5
    size = np.sort(h, axis=1)[:, 2]
    # radial distance in the face plane (works for the disc and the square plate)
    in_plane = p.copy()
    in_plane[np.arange(len(p)), thin] = 0.0
    r = np.max(np.abs(in_plane), axis=1) / size
    border = np.clip((r - 0.78) / 0.05, 0, 1)
    out = c + border[:, None] * (np.array([0.8, 0.8, 0.8]) - c)
    out[~face] = 0.3
    return out, np.zeros_like(out)


def _lamp_housing(p, n, h, seed, fp, c):
    front = n[:, 0] < -0.5
    lit = seed % 3
    out = c.copy()
    emit = np.zeros_like(c)
    lamp_colors = np.array([[1.0, 0.05, 0.02], [1.0, 0.6, 0.0], [0.1, 1.0, 0.3]])
    for k, zc in enumerate((0.28, 0.0, -0.28)):
        cov = tx.pulse(np.hypot(p[:, 1], p[:, 2] - zc * h[:, 2] / 0.45), 0.1, fp) * front
        on = (lit == k)
        emit += (cov * on)[:, None] * lamp_colors[k] * 1.5
        out += (cov * ~on)[:, None] * (0.12 - out)
    return out, emit


def _fence(p, n, h, seed, fp, c):
    slat = tx.periodic_pulse(p[:, 0], 0.16, 0.06, fp)
    wood = c * _noise_scale(p * np.array([1, 1, 0.2]), fp, seed, 3.0, 3, 0.3)[:, None]
    return wood * (0.45 + 0.55 * slat)[:, None], np.zeros_like(c)


_MATERIALS = {
    Material.FACADE: _facade,
    Material.CAR_PAINT: _car_paint,
    Material.GLASS: _glass,
    Material.TIRE: _tire,
    Material.SKIN: _plain(6.0, 2, 0.1),
    Material.CLOTH: _plain(5.0, 3, 0.3),
    Material.BARK: _bark,
    Material.FOLIAGE: _foliage,
    Material.METAL: _plain(2.0, 2, 0.1),
    Material.SIGN: _sign,
    Material.LAMP_HOUSING: _lamp_housing,
    Material.CONCRETE: _plain(1.5, 5, 0.3),
    Material.FENCE_WOOD: _fence,
}


# ---------------------------------------------------------------------------------------------
# Light, sky and the camera response


def irradiance(normal_world: np.ndarray, lighting: Lighting, sun_visible: np.ndarray | None = None
               ) -> np.ndarray:
    """``[M, 3]`` light reaching surfaces with world normals ``[M, 3]``; ``sun_visible`` ``[M]``
    (0..1) scales the direct sunlight (cast shadows), all 1 when omitted."""
    sun = np.clip(normal_world @ lighting.sun_dir_world, 0.0, None)
    if sun_visible is not None:
        sun = sun * sun_visible
    sky = 0.55 + 0.45 * normal_world[:, 2]
    return sky[:, None] * lighting.ambient_rgb + sun[:, None] * lighting.sun_rgb


def sky_radiance(dirs_world: np.ndarray, fx: float, lighting: Lighting) -> np.ndarray:
    """``[M, 3]`` radiance of the sky along world directions ``[M, 3]`` (any length)."""
    d = dirs_world / np.linalg.norm(dirs_world, axis=1, keepdims=True)
    elevation = np.clip(d[:, 2], 0.0, 1.0)
    mix = elevation ** 0.6
    out = lighting.horizon_rgb * (1 - mix)[:, None] + lighting.zenith_rgb * mix[:, None]
    glow = np.clip(d @ lighting.sun_dir_world, 0.0, 1.0)
    out = out + (0.25 * glow ** 8 + 2.0 * glow ** 400)[:, None] * lighting.sun_rgb
    # clouds on a plane 1 km up, a function of direction only (at infinity)
    h = np.maximum(d[:, 2], 0.03)
    cx, cy = d[:, 0] / h * 1000.0, d[:, 1] / h * 1000.0
    fp = 1000.0 / (h * h * fx)
    cloud = np.clip(tx.fbm2(cx, cy, fp, 1 / 900.0, 5, seed=77) * 2.5 + lighting.cloudiness - 0.35, 0, 1)
    cloud *= np.clip(d[:, 2] * 8.0, 0, 1)
    white = np.array([0.9, 0.9, 0.92]) * (0.7 + 0.3 * lighting.sun_rgb.mean() / 2.6)
    return out + cloud[:, None] * (white - out)


def apply_haze(radiance: np.ndarray, distance_m: np.ndarray, lighting: Lighting) -> np.ndarray:
    keep = np.exp(-distance_m / lighting.haze_distance_m)[:, None]
    return radiance * keep + lighting.horizon_rgb * (1.0 - keep)


def to_srgb8(radiance: np.ndarray, exposure: float) -> np.ndarray:
    """Linear radiance ``[..., 3]`` -> ``uint8`` with exposure, a soft shoulder and gamma 1/2.2."""
    x = radiance * exposure
    x = x / (1.0 + 0.15 * x)                      # gentle highlight roll-off
    return (np.clip(x, 0.0, 1.0) ** (1 / 2.2) * 255.0 + 0.5).astype(np.uint8)
