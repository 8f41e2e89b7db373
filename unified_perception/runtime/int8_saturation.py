"""Whether an INT8 model's integer products can saturate on this CPU (x86 without VNNI).

ONNX Runtime's uint8 x int8 kernels on x86 CPUs without VNNI (AVX2, AVX-512 before Cascade Lake)
multiply with ``VPMADDUBSW``: two uint8 x int8 products are added into an int16, which saturates
when both weights are near the ends of the full 8-bit range. CPUs with VNNI (``avx512_vnni``,
``avx_vnni``, ``amx_int8``) accumulate into int32, and ARM CPUs use other instructions, so neither
saturates. Files quantized with 7-bit weights (``quantize --weight-bits 7``, the ``cpu`` target's
default) cannot saturate anywhere (``deploy.quantize``).
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any, Mapping

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
"""``/proc/cpuinfo`` flags of CPUs whose int8 dot products accumulate in int32."""
X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686"})
LEGACY_WEIGHT_BITS = 8
"""The weights' range of files quantized before the metadata named ``weight_bits``."""


def weight_bits(quantization: Mapping[str, Any]) -> int:
    """Bits of the int8 weights' range of a quantized model (its ``quantization`` metadata)."""
    return int(quantization.get("weight_bits", LEGACY_WEIGHT_BITS))


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The first processor's feature flags from ``cpuinfo`` (Linux); None where it cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return None


def x86_without_vnni(machine: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """True on an x86 CPU whose flags are known and name no VNNI instruction set."""
    machine = (machine or platform.machine()).lower()
    if machine not in X86_MACHINES:
        return False
    flags = cpu_flags() if flags is None else flags
    return flags is not None and not (flags & VNNI_FLAGS)


def saturation_warning(quantization: Mapping[str, Any], machine: str | None = None,
                       flags: frozenset[str] | None = None) -> str | None:
    """One sentence for the log when a quantized model (its ``quantization`` metadata) has
    full-range 8-bit weights and runs on an x86 CPU without VNNI; None when it cannot saturate.
    Files quantized before the metadata named ``weight_bits`` had full-range weights."""
    if not quantization or quantization.get("precision") != "int8":
        return None
    if weight_bits(quantization) < 8 or not x86_without_vnni(machine, flags):
        return None
    return ("this INT8 model has full-range 8-bit weights and this x86 CPU has no VNNI: its "
            "uint8 x int8 products can saturate in int16 and degrade the outputs (the shipped "
            "model's motion IoU fell 19 % on an AVX2 CPU); quantize it again with "
            "`unified-perception quantize ... --weight-bits 7` (the cpu target's default)")
