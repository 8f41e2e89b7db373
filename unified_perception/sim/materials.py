"""Material ids shared by the world layout (which assigns them) and the shader (which draws them)."""

from __future__ import annotations

from enum import IntEnum


class Material(IntEnum):
    FACADE = 0
    CAR_PAINT = 1
    GLASS = 2
    TIRE = 3
    SKIN = 4
    CLOTH = 5
    BARK = 6
    FOLIAGE = 7
    METAL = 8
    SIGN = 9
    LAMP_HOUSING = 10
    CONCRETE = 11
    FENCE_WOOD = 12


GROUND_PRIM = -2
"""primitive index of pixels on the ground plane"""
SKY_PRIM = -1
"""primitive index of pixels that hit nothing"""
