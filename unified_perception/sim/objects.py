"""Object models built from primitives: cars, pedestrians, buildings, trees, poles, signs, lights.

Each object has its own frame (origin on the ground at its centre, x forward, y left, z up) and is a
list of :class:`Part` s placed in that frame. Colours are linear albedo in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from unified_perception.contract import CLASS_ID
from unified_perception.sim.geometry import rot_x, rot_z
from unified_perception.transforms import make_transform
from unified_perception.sim.materials import Material
from unified_perception.sim.primitives import Shape


@dataclass(frozen=True)
class Part:
    """One primitive of an object, placed by ``T_obj_part`` in the object frame."""

    shape: Shape
    half: tuple[float, float, float]
    T_obj_part: np.ndarray
    material: Material
    color: tuple[float, float, float]
    class_id: int
    swing_amp_rad: float = 0.0
    """amplitude of a gait swing about the object's y axis through ``swing_pivot_z_m`` (legs, arms)"""
    swing_pivot_z_m: float = 0.0
    swing_phase_rad: float = 0.0


def _at(x: float, y: float, z: float, R: np.ndarray | None = None) -> np.ndarray:
    return make_transform(np.eye(3) if R is None else R, np.array([x, y, z]))


CAR_COLORS = np.array([
    [0.6, 0.6, 0.62], [0.05, 0.05, 0.06], [0.75, 0.75, 0.75], [0.45, 0.03, 0.03],
    [0.04, 0.10, 0.35], [0.25, 0.27, 0.30], [0.55, 0.45, 0.25], [0.05, 0.25, 0.10],
    [0.80, 0.80, 0.78], [0.70, 0.35, 0.05]])

VEHICLE_SIZES = {  # class: (length, width, body height, cabin height) ranges in m
    "car": ((3.9, 4.9), (1.70, 1.90), (0.75, 0.85), (0.55, 0.70)),
    "truck": ((6.0, 8.0), (2.2, 2.5), (1.6, 2.2), (0.9, 1.2)),
    "bus": ((10.0, 12.0), (2.5, 2.55), (2.4, 2.6), (0.3, 0.4)),
}


def vehicle(rng: np.random.Generator, kind: str = "car") -> list[Part]:
    """A car / truck / bus: a body box, a glazed cabin box and two axles of wheels."""
    (l0, l1), (w0, w1), (h0, h1), (c0, c1) = VEHICLE_SIZES[kind]
    length, width = rng.uniform(l0, l1), rng.uniform(w0, w1)
    body_h, cabin_h = rng.uniform(h0, h1), rng.uniform(c0, c1)
    clearance, wheel_r = (0.30, 0.33) if kind == "car" else (0.45, 0.50)
    color = tuple(np.clip(CAR_COLORS[rng.integers(len(CAR_COLORS))] * rng.uniform(0.85, 1.15), 0, 1))
    cls = CLASS_ID[kind]
    parts = [Part(Shape.BOX, (length / 2, width / 2, body_h / 2), _at(0, 0, clearance + body_h / 2),
                  Material.CAR_PAINT, color, cls)]
    if kind == "car":
        cabin_len = length * rng.uniform(0.45, 0.55)
        parts.append(Part(Shape.BOX, (cabin_len / 2, width / 2 - 0.08, cabin_h / 2),
                          _at(-length * 0.06, 0, clearance + body_h + cabin_h / 2),
                          Material.GLASS, color, cls))
    elif kind == "truck":
        cab_len = 1.8
        parts.append(Part(Shape.BOX, (cab_len / 2, width / 2 - 0.05, cabin_h / 2),
                          _at(length / 2 - cab_len / 2, 0, clearance + body_h + cabin_h / 2),
                          Material.GLASS, color, cls))
    else:  # bus: a long glazed band on top of the body
        parts.append(Part(Shape.BOX, (length / 2 - 0.1, width / 2 - 0.02, 0.5),
                          _at(0, 0, clearance + body_h * 0.55), Material.GLASS, color, cls))
    axle = rot_x(np.pi / 2)
    for x in (length / 2 - 0.8 - wheel_r * 0.5, -length / 2 + 0.8 + wheel_r * 0.5):
        parts.append(Part(Shape.CYLINDER, (wheel_r, wheel_r, width / 2 - 0.02), _at(x, 0, wheel_r, axle),
                          Material.TIRE, (0.03, 0.03, 0.03), cls))
    return parts


def vehicle_length(parts: list[Part]) -> float:
    return 2.0 * parts[0].half[0]


def pedestrian(rng: np.random.Generator, walking: bool) -> list[Part]:
    """Legs, torso, arms and head; legs and arms swing while walking."""
    height = rng.uniform(1.55, 1.9)
    leg = 0.47 * height
    torso = 0.30 * height
    cls = CLASS_ID["person"]
    shirt = tuple(rng.uniform(0.03, 0.7, 3))
    pants = tuple(rng.uniform(0.02, 0.25, 3))
    skin = tuple(np.array([0.55, 0.38, 0.28]) * rng.uniform(0.35, 1.1))
    amp = 0.35 if walking else 0.0
    parts = []
    for side, phase in ((0.09, 0.0), (-0.09, np.pi)):
        parts.append(Part(Shape.BOX, (0.07, 0.07, leg / 2), _at(0, side, leg / 2), Material.CLOTH, pants,
                          cls, amp, leg, phase))
    parts.append(Part(Shape.CYLINDER, (0.17, 0.17, torso / 2), _at(0, 0, leg + torso / 2),
                      Material.CLOTH, shirt, cls))
    arm = 0.36 * height
    for side, phase in ((0.22, np.pi), (-0.22, 0.0)):
        parts.append(Part(Shape.BOX, (0.05, 0.05, arm / 2), _at(0, side, leg + torso - arm / 2),
                          Material.CLOTH, shirt, cls, amp * 0.6, leg + torso, phase))
    head = 0.065 * height
    parts.append(Part(Shape.ELLIPSOID, (head * 1.4, head * 1.3, head * 1.65),
                      _at(0, 0, leg + torso + head * 1.65 + 0.03), Material.SKIN, skin, cls))
    return parts


def building(rng: np.random.Generator, frontage_m: float, depth_m: float) -> list[Part]:
    """A box with a window-grid facade; the object frame's x runs along the street."""
    height = rng.uniform(6.0, 24.0)
    tone = rng.uniform(0.25, 0.75)
    tint = np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.7, 0.95)])
    color = tuple(np.clip(tone * tint, 0, 1))
    return [Part(Shape.BOX, (frontage_m / 2, depth_m / 2, height / 2), _at(0, 0, height / 2),
                 Material.FACADE, color, CLASS_ID["building"])]


def tree(rng: np.random.Generator) -> list[Part]:
    trunk_h = rng.uniform(2.0, 3.5)
    crown = rng.uniform(1.4, 3.0)
    foliage = tuple(np.array([0.10, 0.22, 0.05]) * rng.uniform(0.6, 1.3))
    return [
        Part(Shape.CYLINDER, (0.16, 0.16, trunk_h / 2 + 0.3), _at(0, 0, trunk_h / 2 + 0.3), Material.BARK,
             (0.20, 0.13, 0.08), CLASS_ID["vegetation"]),
        Part(Shape.ELLIPSOID, (crown, crown, crown * rng.uniform(0.9, 1.4)),
             _at(0, 0, trunk_h + crown * 0.9), Material.FOLIAGE, foliage, CLASS_ID["vegetation"]),
    ]


def hedge(rng: np.random.Generator, length_m: float) -> list[Part]:
    h = rng.uniform(0.8, 1.8)
    foliage = tuple(np.array([0.08, 0.2, 0.05]) * rng.uniform(0.7, 1.3))
    return [Part(Shape.BOX, (length_m / 2, rng.uniform(0.4, 0.8), h / 2), _at(0, 0, h / 2),
                 Material.FOLIAGE, foliage, CLASS_ID["vegetation"])]


def wall(rng: np.random.Generator, length_m: float, fence: bool) -> list[Part]:
    if fence:
        h = rng.uniform(1.0, 1.8)
        return [Part(Shape.BOX, (length_m / 2, 0.04, h / 2), _at(0, 0, h / 2), Material.FENCE_WOOD,
                     tuple(np.array([0.35, 0.25, 0.15]) * rng.uniform(0.6, 1.3)), CLASS_ID["fence"])]
    h = rng.uniform(0.6, 2.0)
    return [Part(Shape.BOX, (length_m / 2, 0.15, h / 2), _at(0, 0, h / 2), Material.CONCRETE,
                 tuple([rng.uniform(0.35, 0.6)] * 3), CLASS_ID["wall"])]


def street_pole(rng: np.random.Generator, attachment: str) -> list[Part]:
    """A pole, with a traffic sign or a traffic light facing -x (oncoming traffic), or a bare lamp post."""
    metal = (0.35, 0.36, 0.38)
    pole_h = rng.uniform(3.0, 3.6) if attachment != "lamp" else rng.uniform(6.0, 8.0)
    parts = [Part(Shape.CYLINDER, (0.07, 0.07, pole_h / 2), _at(0, 0, pole_h / 2), Material.METAL, metal,
                  CLASS_ID["pole"])]
    if attachment == "sign":
        color = [(0.6, 0.03, 0.02), (0.02, 0.12, 0.5), (0.7, 0.55, 0.02)][rng.integers(3)]
        size = rng.uniform(0.3, 0.4)
        face = rot_z(np.pi / 2) @ rot_x(np.pi / 2)  # a disc whose axis is the object x axis
        shape = Shape.CYLINDER if rng.random() < 0.5 else Shape.BOX
        half = (size, size, 0.02) if shape == Shape.CYLINDER else (0.02, size, size)
        T = _at(-0.09, 0, pole_h - size, face if shape == Shape.CYLINDER else None)
        parts.append(Part(shape, half, T, Material.SIGN, color, CLASS_ID["traffic sign"]))
    elif attachment == "light":
        parts.append(Part(Shape.BOX, (0.14, 0.17, 0.45), _at(-0.2, 0, pole_h - 0.1),
                          Material.LAMP_HOUSING, (0.05, 0.05, 0.05), CLASS_ID["traffic light"]))
    return parts
