"""Image sizes on the command lines (synth, export, benchmarks): one parser, one set of messages."""

from __future__ import annotations

import pytest

from unified_perception.image_size import ImageSizeError, parse_size
from unified_perception.train.export_command import size_flag


def test_hxw_is_height_then_width_with_spaces_and_a_capital_x_accepted() -> None:
    assert parse_size("192x640") == (192, 640)
    assert parse_size(" 96 X 320 ") == (96, 320)


@pytest.mark.parametrize("text, message", [
    ("640", "is not HxW: write it like 192x640"),
    ("64by128", "is not HxW"),
    ("-8x16", "is not HxW"),
    ("4x640", "too small: use at least 8x8"),
])
def test_a_bad_size_names_itself_and_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ImageSizeError, match=message):
        parse_size(text)


def test_a_side_that_is_no_multiple_of_the_stride_is_refused() -> None:
    assert parse_size("96x320", multiple_of=32) == (96, 320)
    with pytest.raises(ImageSizeError, match="96x300: both sides must be multiples of 32"):
        parse_size("96x300", multiple_of=32)


def test_export_takes_multiples_of_32_and_ends_with_one_line_naming_the_flag() -> None:
    assert size_flag("64x128") == (64, 128)
    with pytest.raises(SystemExit, match="--size: image size 60x128: both sides must be multiples of 32"):
        size_flag("60x128")
    with pytest.raises(SystemExit, match="--size: image size '64' is not HxW"):
        size_flag("64")
