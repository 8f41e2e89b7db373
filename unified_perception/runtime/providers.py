"""Choosing ONNX Runtime execution providers from an ordered preference list.

Users name providers by short names (``tensorrt``, ``cuda``, ``cpu``); this module maps them to ONNX
Runtime provider names with their options, keeps those the installed onnxruntime build offers and
says in one sentence which one is active and why. Pure function of its inputs: the list of available
providers is passed in (``onnxruntime.get_available_providers()`` in the engine).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

TENSORRT = "tensorrt"
CUDA = "cuda"
CPU = "cpu"

ORT_NAMES: dict[str, str] = {
    TENSORRT: "TensorrtExecutionProvider",
    CUDA: "CUDAExecutionProvider",
    CPU: "CPUExecutionProvider",
}
SHORT_NAMES: dict[str, str] = {ort: short for short, ort in ORT_NAMES.items()}
DISPLAY_NAMES: dict[str, str] = {TENSORRT: "TensorRT", CUDA: "CUDA", CPU: "CPU"}
GPU_PROVIDERS = frozenset({TENSORRT, CUDA})
PROVIDERS: tuple[str, ...] = tuple(ORT_NAMES)
"""Every provider short name the runtime knows, fastest first: also the default preference."""
DEFAULT_TRT_CACHE_DIR = "~/.cache/unified_perception/trt"
"""Where TensorRT keeps its engine and timing caches unless told otherwise."""


@dataclass(frozen=True)
class ProviderChoice:
    """The providers handed to ``onnxruntime.InferenceSession`` and why the first one was chosen.

    ``providers`` is a list of ``(ort_name, options)`` in preference order; ``active`` is the short
    name of the first one; ``reason`` is one sentence for the log and the diagnostics.
    """

    providers: tuple[tuple[str, dict[str, Any]], ...]
    active: str
    reason: str

    @property
    def ort_names(self) -> list[str]:
        return [name for name, _ in self.providers]

    @property
    def ort_options(self) -> list[dict[str, Any]]:
        return [dict(options) for _, options in self.providers]


def tensorrt_options(fp16: bool, cache_dir: str, device_id: int = 0) -> dict[str, Any]:
    """TensorRT provider options: fp16, a persistent engine cache and timing cache in ``cache_dir``."""
    path = os.path.expanduser(cache_dir)
    return {
        "device_id": device_id,
        "trt_fp16_enable": bool(fp16),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": path,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": path,
    }


def cuda_options(device_id: int = 0) -> dict[str, Any]:
    """CUDA provider options: cuDNN picks each convolution's algorithm by its heuristics instead of
    timing every candidate when the session starts (ONNX Runtime's default, ``EXHAUSTIVE``). On an
    H200 with the resnet18 ``car_lean`` model that took the session's start from 3.4 s to 0.45 s at
    192x640 (2.3 s to 0.53 s at 384x1024) with calls as fast (4.87 vs 4.72 ms at batch 1, 6.99 vs
    7.08 ms at batch 6; docs/deployment.md)."""
    return {"device_id": device_id, "cudnn_conv_algo_search": "HEURISTIC"}


def preference_problem(preference: Sequence[str]) -> str | None:
    """Why ``preference`` is no usable provider list (unknown names, empty), or None.

    Names are compared stripped and in lower case, as :func:`select_providers` reads them.
    """
    names = [str(p).strip().lower() for p in preference]
    unknown = [p for p in names if p not in ORT_NAMES]
    if unknown or not names:
        return (f"names unknown execution provider(s) {unknown or '(empty list)'}: use an ordered "
                f"list of {', '.join(PROVIDERS)} (e.g. [{', '.join(PROVIDERS)}])")
    return None


def _display(names: Sequence[str]) -> str:
    return ", ".join(DISPLAY_NAMES[n] for n in names)


def select_providers(preference: Sequence[str], available: Sequence[str], *, trt_fp16: bool = True,
                     trt_cache_dir: str = DEFAULT_TRT_CACHE_DIR,
                     device_id: int = 0) -> ProviderChoice:
    """Keep the preferred providers that ``available`` (ONNX Runtime names) offers, in order.

    Raises ``ValueError`` for an unknown short name, an empty list, or when none is available.
    """
    if problem := preference_problem(preference):
        raise ValueError(f"the provider list {list(preference)} {problem}")
    names = list(dict.fromkeys(p.strip().lower() for p in preference))
    offered = {SHORT_NAMES[a] for a in available if a in SHORT_NAMES}
    kept = [n for n in names if n in offered]
    if not kept:
        raise ValueError(
            f"none of the requested execution providers ({_display(names)}) is available in this "
            f"onnxruntime build (it offers {', '.join(available) or 'nothing'}); add 'cpu' to the "
            f"provider list or install onnxruntime-gpu")
    options = {
        TENSORRT: tensorrt_options(trt_fp16, trt_cache_dir, device_id),
        CUDA: cuda_options(device_id),
        CPU: {},
    }
    active = kept[0]
    skipped = names[:names.index(active)]
    if skipped:
        reason = (f"{_display(skipped)} not available in this onnxruntime build; "
                  f"using {DISPLAY_NAMES[active]}")
    else:
        reason = f"{DISPLAY_NAMES[active]} is the first preferred provider and is available"
    if active == TENSORRT:
        reason += f" (fp16 {'on' if trt_fp16 else 'off'}, engine cache {options[TENSORRT]['trt_engine_cache_path']})"
    return ProviderChoice(tuple((ORT_NAMES[n], options[n]) for n in kept), active, reason)


def explain_fallback(choice: ProviderChoice, session_providers: Sequence[str],
                     failed: Sequence[tuple[str, str]] = ()) -> tuple[str, str]:
    """The provider a created session actually runs on, and why: ``(short name, reason)``.

    ``failed`` lists ``(short name, error)`` of providers whose session creation raised (the engine
    then retried without them). ONNX Runtime may also fall back silently (e.g. TensorRT libraries
    missing at run time); the session's own provider list is the truth.
    """
    actual = SHORT_NAMES.get(session_providers[0], session_providers[0]) if session_providers else CPU
    shown = DISPLAY_NAMES.get(actual, actual)
    if failed:
        errors = "; ".join(f"{DISPLAY_NAMES.get(n, n)}: {e.strip().splitlines()[0][:160] if e.strip() else '?'}"
                           for n, e in failed)
        return actual, f"{_display([n for n, _ in failed])} failed to initialise ({errors}); using {shown}"
    if actual == choice.active:
        return actual, choice.reason
    return actual, (f"{DISPLAY_NAMES.get(choice.active, choice.active)} failed to initialise "
                    f"(see the onnxruntime messages above); using {shown}")
