"""Where the unified model's time goes: per-head ONNX Runtime profile, and the session settings sweep.

For each size (default 96x320 and 192x640) a random resnet18 all-task model with the shipped ``car``
heads is exported (or ``--model`` is taken at its own size) and run on the CPU provider with ONNX
Runtime's profiler (``SessionOptions.enable_profiling``). Every kernel of the optimised graph is
mapped to the part of the model whose name scope produced it (``/model/<part>/...`` in the exported
graph; nodes the optimiser created or renamed inherit the scope of the tensors they write or read),
and the parts are grouped into heads: encoder (normalisation + backbone), depth, panoptic (heads +
grouping), pose, motion (mask + flow decoders), steering (frame latent + attention pool), other (the
top-level blanking of rows without a previous frame). With the GFLOPs the export measured per part
(model metadata) this gives each head's GFLOP/s.

Then the ONNX Runtime settings that leave the graph's maths alone are timed side by side, in
interleaved rounds (the machine may be shared): graph optimisation level, intra-/inter-op threads,
sequential vs parallel execution, memory pattern, denormals as zero, spinning.

Writes ``--out``/profile_heads.json and profile_heads.md.

    .venv/bin/python benchmarks/bench_profile_heads.py [--sizes 96x320 192x640] [--quick]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import onnx
import onnxruntime as ort

import bench_models
from bench_models import REPO, export_bench_model, machine, machine_line, zero_feeds
from unified_perception.image_size import parse_size
from unified_perception.runtime.engine import DISABLED_OPTIMIZERS

HEAD_OF_PART: dict[str, str] = {
    "normalize": "encoder", "encoder": "encoder", "depth": "depth", "panoptic": "panoptic",
    "grouping": "panoptic", "pose": "pose", "motion": "motion",
    "latent": "steering", "steering": "steering",
}
HEADS = ("encoder", "depth", "panoptic", "pose", "motion", "steering", "other")
SCOPE_PREFIX = "/model/"


def _part_of(name: str) -> str | None:
    """``/model/<part>/...`` -> ``<part>``; None for any other name."""
    if not name.startswith(SCOPE_PREFIX):
        return None
    rest = name[len(SCOPE_PREFIX):]
    return rest.split("/", 1)[0] if "/" in rest else None


def node_heads(graph: onnx.GraphProto) -> dict[str, str]:
    """Node name -> head (:data:`HEADS`) for every node of ``graph``.

    A node's scope is that of its own name, else that of the first scoped tensor it writes, else
    of the first it reads; tensors without a scope take that of the node that writes them, so the
    scope flows through renamed and inserted (layout reorder, fused) nodes.
    """
    tensor_part: dict[str, str] = {}
    heads: dict[str, str] = {}
    for node in graph.node:        # topologically sorted: producers come first
        part = _part_of(node.name)
        for names in (node.output, node.input):
            if part is None:
                part = next((p for n in names if (p := _part_of(n) or tensor_part.get(n))), None)
        for out in node.output:
            tensor_part.setdefault(out, part or "")
        heads[node.name] = HEAD_OF_PART.get(part or "", "other")
    return heads


def head_gflops(metadata: dict[str, str]) -> dict[str, float]:
    """GFLOPs per head of one frame from the model's ``head_gflops`` metadata (parts summed)."""
    per_part = json.loads(metadata.get("head_gflops", "{}"))
    out: dict[str, float] = defaultdict(float)
    for part, value in per_part.items():
        if part != "total":
            out[HEAD_OF_PART.get(part, "other")] += float(value)
    return dict(out)


@dataclass(frozen=True)
class SessionSetting:
    """ONNX Runtime session settings that do not change the graph's maths."""

    name: str
    level: str = "all"                       # basic | extended | all
    intra_op_threads: int = 0                # 0 = onnxruntime default (one per physical core)
    inter_op_threads: int = 0
    parallel: bool = False                   # ORT_PARALLEL execution mode
    mem_pattern: bool = True
    config: tuple[tuple[str, str], ...] = ()   # session config entries

    def options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.graph_optimization_level = {
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[self.level]
        if self.intra_op_threads:
            options.intra_op_num_threads = self.intra_op_threads
        if self.inter_op_threads:
            options.inter_op_num_threads = self.inter_op_threads
        options.execution_mode = (ort.ExecutionMode.ORT_PARALLEL if self.parallel
                                  else ort.ExecutionMode.ORT_SEQUENTIAL)
        options.enable_mem_pattern = self.mem_pattern
        for key, value in self.config:
            options.add_session_config_entry(key, value)
        return options


SPINNING_STOPS = ("session.force_spinning_stop", "1")
NO_SPINNING = (("session.intra_op.allow_spinning", "0"), SPINNING_STOPS)
ENGINE_DEFAULT = SessionSetting("engine default (all, intra auto, no spinning)", config=NO_SPINNING)
"""What runtime/engine.py sets by default (``intra_op_spinning`` false)."""
ENGINE_SPINNING = SessionSetting("engine with intra_op_spinning (spinning within a call)",
                                 config=(("session.intra_op.allow_spinning", "1"), SPINNING_STOPS))
"""What runtime/engine.py sets with ``intra_op_spinning`` true."""


def sweep_settings(cores: int) -> list[SessionSetting]:
    """The settings compared; the first is the engine's default (runtime/engine.py: spinning off,
    parameter ``intra_op_spinning``), the others change one thing from ONNX Runtime's defaults."""
    return [
        ENGINE_DEFAULT,
        ENGINE_SPINNING,
        SessionSetting("spinning on, also between calls (ONNX Runtime's default)"),
        SessionSetting("optimisation basic", level="basic"),
        SessionSetting("optimisation extended (no NCHWc layout)", level="extended"),
        SessionSetting("intra-op 1 thread", intra_op_threads=1),
        SessionSetting(f"intra-op {cores} threads", intra_op_threads=cores),
        SessionSetting(f"parallel, inter-op {cores}, intra-op 1", intra_op_threads=1,
                       inter_op_threads=cores, parallel=True),
        SessionSetting("memory pattern off", mem_pattern=False),
        SessionSetting("denormals as zero", config=(("session.set_denormal_as_zero", "1"),)),
        SessionSetting("intra-op 1 thread, no spinning", intra_op_threads=1, config=NO_SPINNING),
    ]


@dataclass
class HeadProfile:
    """Per-head kernel time of one size (ms per frame, mean over the profiled runs)."""

    size: str
    runs: int
    wall_ms: float
    kernel_ms: dict[str, float]
    gflops: dict[str, float]
    kernels: dict[str, int] = field(default_factory=dict)
    top_nodes: list[tuple[str, str, float]] = field(default_factory=list)   # (node, op, ms)


def profile_heads(model: Path, runs: int, workdir: Path, setting: SessionSetting | None = None
                  ) -> HeadProfile:
    """Profile batch-1 calls of ``model``: two warm-up calls, then ``runs`` calls whose kernel
    times are averaged per node and summed per head."""
    options = (setting or ENGINE_DEFAULT).options()
    options.enable_profiling = True
    options.profile_file_prefix = str(workdir / f"profile_{model.stem}")
    optimised = workdir / f"optimised_{model.stem}.onnx"
    options.optimized_model_filepath = str(optimised)
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=list(DISABLED_OPTIMIZERS))
    feeds = zero_feeds(session)
    for _ in range(2):
        session.run(None, feeds)
    start = time.perf_counter()
    for _ in range(runs):
        session.run(None, feeds)
    wall_ms = (time.perf_counter() - start) / runs * 1e3
    events = json.loads(Path(session.end_profiling()).read_text())
    heads = node_heads(onnx.load(str(optimised), load_external_data=False).graph)
    durations: dict[str, list[float]] = defaultdict(list)     # node -> ms per call, in order
    ops: dict[str, str] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            name = event["name"][: -len("_kernel_time")]
            durations[name].append(event["dur"] / 1e3)
            ops[name] = event["args"].get("op_name", "")
    per_node = {name: float(np.mean(ms[-runs:])) for name, ms in durations.items()}  # warm-ups dropped
    kernel_ms: dict[str, float] = defaultdict(float)
    count: dict[str, int] = defaultdict(int)
    for name, ms in per_node.items():
        head = heads.get(name, "other")
        kernel_ms[head] += ms
        count[head] += 1
    top = sorted(per_node.items(), key=lambda kv: -kv[1])[:12]
    size = "x".join(str(d) for d in session.get_inputs()[0].shape[1:3])
    return HeadProfile(size, runs, round(wall_ms, 2), {h: round(kernel_ms.get(h, 0.0), 2) for h in HEADS},
                       head_gflops(session.get_modelmeta().custom_metadata_map),
                       {h: count.get(h, 0) for h in HEADS},
                       [(n, ops[n], round(ms, 2)) for n, ms in top])


@dataclass
class SettingTime:
    name: str
    ms_p50: float
    ms_min: float
    relative_to_default: float = 1.0


def time_settings(model: Path, settings: Iterable[SessionSetting], rounds: int, calls: int
                  ) -> list[SettingTime]:
    """Median and minimum ms per batch-1 call of each setting, in interleaved rounds (each round
    times ``calls`` calls of every setting in turn, so load changes hit all of them alike)."""
    settings = list(settings)
    sessions = [ort.InferenceSession(str(model), s.options(), providers=["CPUExecutionProvider"],
                                     disabled_optimizers=list(DISABLED_OPTIMIZERS))
                for s in settings]
    feeds = zero_feeds(sessions[0])
    for session in sessions:
        session.run(None, feeds)
    samples: dict[str, list[float]] = defaultdict(list)
    for _ in range(rounds):
        for setting, session in zip(settings, sessions):
            for _ in range(calls):
                start = time.perf_counter()
                session.run(None, feeds)
                samples[setting.name].append((time.perf_counter() - start) * 1e3)
    times = [SettingTime(s.name, round(float(np.median(samples[s.name])), 2),
                         round(float(np.min(samples[s.name])), 2)) for s in settings]
    for t in times:
        t.relative_to_default = round(t.ms_p50 / times[0].ms_p50, 3)
    return times


def markdown(report: dict[str, Any]) -> str:
    heads = report.get("preset", "car")     # reports written before the preset was recorded: car
    lines = [f"# Per-head profile of the resnet18 unified model with the `{heads}` heads "
             "(ONNX Runtime, CPU)", "",
             f"Machine: {machine_line(report['machine'])}.", "",
             f"Command: `{report['command']}`", ""]
    for entry in report["sizes"]:
        prof = entry["profile"]
        total = sum(prof["kernel_ms"].values())
        lines += [f"## {prof['size']}: {prof['wall_ms']:.1f} ms per frame (wall), "
                  f"{total:.1f} ms in kernels", "",
                  "| head | kernel ms | share | GFLOPs | GFLOP/s | kernels |", "|---|---:|---:|---:|---:|---:|"]
        for head in HEADS:
            ms, gf = prof["kernel_ms"][head], prof["gflops"].get(head, 0.0)
            rate = f"{gf / ms * 1e3:.0f}" if ms > 0 and gf > 0 else "-"
            lines.append(f"| {head} | {ms:.2f} | {ms / total:.0%} | {gf:.3f} | {rate} | "
                         f"{prof['kernels'][head]} |")
        lines += ["", "Slowest kernels: " + "; ".join(f"`{n}` ({op}) {ms:.2f} ms"
                                                     for n, op, ms in prof["top_nodes"][:6]), "",
                  "| session setting | ms p50 | ms min | vs default |", "|---|---:|---:|---:|"]
        lines += [f"| {s['name']} | {s['ms_p50']:.1f} | {s['ms_min']:.1f} | {s['relative_to_default']:.2f} |"
                  for s in entry["settings"]]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["96x320", "192x640"])
    parser.add_argument("--model", type=Path, help="profile this exported model instead (its own size)")
    parser.add_argument("--runs", type=int, default=10, help="profiled calls per size")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the settings sweep")
    parser.add_argument("--calls", type=int, default=4, help="calls per setting per round")
    parser.add_argument("--quick", action="store_true", help="3 runs, 2 rounds of 2 calls")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.rounds, args.calls = 3, 2, 2
    cores = len(__import__("os").sched_getaffinity(0))
    report: dict[str, Any] = {"machine": machine(), "command": "python benchmarks/bench_profile_heads.py "
                              + ("--quick" if args.quick else ""), "sizes": [],
                              "preset": "given model" if args.model else bench_models.PRESET}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = [args.model] if args.model else [
            export_bench_model(*parse_size(s), work) for s in args.sizes]
        for model in models:
            prof = profile_heads(model, args.runs, work)
            print(f"{prof.size}: {prof.kernel_ms}", flush=True)
            settings = time_settings(model, sweep_settings(cores), args.rounds, args.calls)
            for s in settings:
                print(f"  {s.name}: {s.ms_p50} ms ({s.relative_to_default})", flush=True)
            report["sizes"].append({"profile": asdict(prof), "settings": [asdict(s) for s in settings]})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "profile_heads.json").write_text(json.dumps(report, indent=2))
    (args.out / "profile_heads.md").write_text(markdown(report))
    print(f"wrote {args.out / 'profile_heads.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
