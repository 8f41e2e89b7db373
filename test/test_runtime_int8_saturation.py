"""INT8 files with full-range weights are flagged on x86 CPUs without VNNI, where ONNX Runtime's
u8s8 kernels add pairs of products in int16 and can saturate; nowhere else."""

from __future__ import annotations

from pathlib import Path

from unified_perception.runtime.int8_saturation import cpu_flags, saturation_warning, x86_without_vnni

AVX2 = frozenset({"fpu", "sse2", "avx2", "fma"})
VNNI = AVX2 | {"avx512f", "avx512_vnni"}
INT8_W8 = {"precision": "int8", "target": "cpu", "weight_bits": 8}


def test_cpu_flags_are_read_from_the_first_processor(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 fma\n\n"
                       "processor\t: 1\nflags\t\t: fpu avx2 fma avx_vnni\n")
    assert cpu_flags(cpuinfo) == frozenset({"fpu", "avx2", "fma"})
    assert cpu_flags(tmp_path / "missing") is None


def test_only_x86_without_any_vnni_flag_counts() -> None:
    assert x86_without_vnni("x86_64", AVX2)
    assert not x86_without_vnni("x86_64", VNNI)
    assert not x86_without_vnni("x86_64", AVX2 | {"avx_vnni"})
    assert not x86_without_vnni("aarch64", AVX2)


def test_full_range_int8_weights_warn_on_avx2_only() -> None:
    warning = saturation_warning(INT8_W8, "x86_64", AVX2)
    assert warning and "--weight-bits 7" in warning
    assert saturation_warning(INT8_W8, "x86_64", VNNI) is None
    assert saturation_warning({**INT8_W8, "weight_bits": 7}, "x86_64", AVX2) is None
    assert saturation_warning({}, "x86_64", AVX2) is None                       # float model
    legacy = {"precision": "int8", "target": "cpu"}                             # before weight_bits
    assert saturation_warning(legacy, "x86_64", AVX2) is not None
