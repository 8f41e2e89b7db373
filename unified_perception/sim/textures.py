"""Procedural textures: hashed value noise, band-limited fractal noise and anti-aliased stripes.

Every texture is a pure function of a surface's own coordinates (and a per-object seed), so it moves
with the surface. ``footprint`` is the size of one pixel on the surface (m): detail finer than it is
faded out instead of aliasing, which keeps frames photometrically consistent under motion.
"""

from __future__ import annotations

import numpy as np


_PRIME_X, _PRIME_Y, _PRIME_Z, _PRIME_SEED = (np.uint32(0x8DA6B343), np.uint32(0xD8163841),
                                             np.uint32(0xCB1AB31F), np.uint32(0x165667B1))


def _hash(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: np.ndarray | int) -> np.ndarray:
    """Integer lattice hash -> uniform float in [0, 1)."""
    return _finish_hash(_term(ix, _PRIME_X) ^ _term(iy, _PRIME_Y) ^ _term(iz, _PRIME_Z)
                        ^ _term(seed, _PRIME_SEED))


def _term(i: np.ndarray | int, prime: np.uint32) -> np.ndarray:
    """One coordinate's hash term ``uint32(i) * prime`` (mod 2**32). The term of ``i + 1`` is
    ``term(i) + prime``, so the corners of a lattice cell share one conversion."""
    return np.asarray(i).astype(np.uint32) * prime


def _finish_hash(h: np.ndarray) -> np.ndarray:
    """Avalanche the xor of the coordinate terms and map it to a float in [0, 1)."""
    h = h ^ (h >> np.uint32(15))
    h *= np.uint32(0x2C1B3C6D)
    h ^= h >> np.uint32(12)
    h *= np.uint32(0x297A2D39)
    h ^= h >> np.uint32(15)
    return h.astype(np.float64) * (1.0 / 4294967296.0)


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def value_noise2(x: np.ndarray, y: np.ndarray, seed: np.ndarray | int = 0) -> np.ndarray:
    """Smooth value noise in [0, 1) on a unit lattice."""
    fx, fy = np.floor(x), np.floor(y)
    ux, uy = _fade(x - fx), _fade(y - fy)
    hs = _term(seed, _PRIME_SEED)                        # z = 0 adds nothing to the hash
    hx0 = _term(fx.astype(np.int64), _PRIME_X)
    hx1 = hx0 + _PRIME_X
    hy = _term(fy.astype(np.int64), _PRIME_Y)
    hy0, hy1 = hy ^ hs, (hy + _PRIME_Y) ^ hs
    n00 = _finish_hash(hx0 ^ hy0)
    n10 = _finish_hash(hx1 ^ hy0)
    n01 = _finish_hash(hx0 ^ hy1)
    n11 = _finish_hash(hx1 ^ hy1)
    return (n00 + ux * (n10 - n00)) + uy * ((n01 + ux * (n11 - n01)) - (n00 + ux * (n10 - n00)))


def value_noise3(p: np.ndarray, seed: np.ndarray | int = 0) -> np.ndarray:
    """Smooth value noise in [0, 1) of ``[M, 3]`` points on a unit lattice."""
    f = np.floor(p)
    i = f.astype(np.int64)
    u = _fade(p - f)
    hs = _term(seed, _PRIME_SEED)
    hx = _term(i[:, 0], _PRIME_X)
    hy = _term(i[:, 1], _PRIME_Y)
    hz = _term(i[:, 2], _PRIME_Z)
    out = np.zeros(len(p))
    for dx in (0, 1):
        wx = u[:, 0] if dx else 1.0 - u[:, 0]
        hxs = (hx + _PRIME_X if dx else hx) ^ hs
        for dy in (0, 1):
            wy = u[:, 1] if dy else 1.0 - u[:, 1]
            hxy = hxs ^ (hy + _PRIME_Y if dy else hy)
            for dz in (0, 1):
                wz = u[:, 2] if dz else 1.0 - u[:, 2]
                out += wx * wy * wz * _finish_hash(hxy ^ (hz + _PRIME_Z if dz else hz))
    return out


def _octave_weight(frequency: float, footprint: np.ndarray) -> np.ndarray:
    """1 while a wavelength spans >= 4 pixels, fading to 0 at 2 pixels."""
    return np.clip(2.0 - 4.0 * frequency * footprint, 0.0, 1.0)


def _live(weight: np.ndarray) -> np.ndarray | None:
    """Indices where an octave's weight is non-zero, or ``None`` when that is (nearly) everywhere
    and evaluating all points is cheaper than gathering."""
    live = np.flatnonzero(weight > 0)
    return None if len(live) > 0.7 * weight.size else live


def _pick(values: np.ndarray | int, live: np.ndarray | None) -> np.ndarray | int:
    return values if live is None or np.ndim(values) == 0 else values[live]


def fbm2(x: np.ndarray, y: np.ndarray, footprint: np.ndarray, base_frequency: float,
         octaves: int, seed: np.ndarray | int = 0) -> np.ndarray:
    """Band-limited 2D fractal noise in about [-0.5, 0.5] (mean 0), points ``[M]``.

    An octave is evaluated only where its weight is non-zero (finer ones only near the camera).
    """
    return _fractal_sum(np.zeros_like(x), footprint, base_frequency, octaves,
                        lambda freq, k, live: value_noise2(
                            _pick(x, live) * freq, _pick(y, live) * freq,
                            _pick(np.asarray(seed) + 101 * k, live)))


def fbm3(p: np.ndarray, footprint: np.ndarray, base_frequency: float, octaves: int,
         seed: np.ndarray | int = 0) -> np.ndarray:
    """Band-limited 3D fractal noise of ``[M, 3]`` points in about [-0.5, 0.5] (sparse like
    :func:`fbm2`)."""
    return _fractal_sum(np.zeros(len(p)), footprint, base_frequency, octaves,
                        lambda freq, k, live: value_noise3(
                            _pick(p, live) * freq, _pick(np.asarray(seed) + 101 * k, live)))


def _fractal_sum(out: np.ndarray, footprint: np.ndarray, base_frequency: float, octaves: int,
                 octave_noise) -> np.ndarray:
    """Add ``octaves`` octaves of ``octave_noise(frequency, k, live) -> noise in [0, 1]`` into
    ``out``, each weighted by how well the pixel footprint resolves it, evaluated only on the
    ``live`` points where that weight is non-zero (``None`` = all)."""
    freq, amp = base_frequency, 0.5
    for k in range(octaves):
        w = np.broadcast_to(_octave_weight(freq, footprint), out.shape)
        if np.any(w > 0):
            live = _live(w)
            noise = octave_noise(freq, k, live)
            if live is None:
                out += amp * w * (noise - 0.5)
            else:
                out[live] += amp * w[live] * (noise - 0.5)
        freq, amp = freq * 2.03, amp * 0.5
    return out


def pulse(x: np.ndarray, half_width: float | np.ndarray, footprint: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] of the band ``|x| <= half_width`` box-filtered over one pixel footprint."""
    fp = np.maximum(footprint, 1e-6)
    lo = np.maximum(x - fp / 2, -half_width)
    hi = np.minimum(x + fp / 2, half_width)
    return np.clip((hi - lo) / fp, 0.0, 1.0)


def periodic_pulse(x: np.ndarray, period: float | np.ndarray, half_width: float | np.ndarray,
                   footprint: np.ndarray) -> np.ndarray:
    """Coverage of bands of ``half_width`` centred at multiples of ``period``; tends to the duty
    cycle where the pattern is finer than a pixel."""
    rel = x - period * np.round(x / period)
    cov = pulse(rel, half_width, footprint)
    duty = 2.0 * half_width / period
    blend = np.clip(footprint / period * 2.0 - 1.0, 0.0, 1.0)
    return cov + blend * (duty - cov)
