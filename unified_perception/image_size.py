"""Image sizes written ``HxW`` (height x width in pixels), as every command line takes them.

Standard library only, so the synthetic world, training, the runtime tools and the benchmarks all
read a ``--size`` the same way.
"""

from __future__ import annotations

import re

_HXW = re.compile(r"\s*(\d+)\s*[xX]\s*(\d+)\s*")


class ImageSizeError(ValueError):
    """A size is not ``HxW`` or breaks the caller's constraint. The message says what to write."""


def parse_size(text: str, multiple_of: int = 1, min_side: int = 8) -> tuple[int, int]:
    """``"192x640"`` -> ``(192, 640)``: ``(height, width)`` in pixels.

    Each side must be at least ``min_side`` and a multiple of ``multiple_of`` (a network whose
    coarsest stride is 32 takes multiples of 32). Raises :class:`ImageSizeError` otherwise.
    """
    match = _HXW.fullmatch(text)
    if not match:
        raise ImageSizeError(f"image size '{text}' is not HxW: write it like 192x640 "
                             f"(height x width)")
    height, width = int(match.group(1)), int(match.group(2))
    if height < min_side or width < min_side:
        raise ImageSizeError(f"image size {height}x{width} is too small: use at least "
                             f"{min_side}x{min_side}")
    if height % multiple_of or width % multiple_of:
        raise ImageSizeError(f"image size {height}x{width}: both sides must be multiples of "
                             f"{multiple_of}")
    return height, width
