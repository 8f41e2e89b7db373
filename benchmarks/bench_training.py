"""Training throughput of the unified student (all tasks, `light` heads, resnet18): samples/s at
96x320 and 192x640, batch 4 per process, in one process and in two under ``torchrun`` (DDP: gloo on
CPU, nccl on CUDA).

Each configuration runs the real trainer (``train.trainer.Trainer``: data loader, window forward,
every loss, AdamW, DDP gradient all-reduce) on synthetic bags rendered once into ``--data``. The
first ``--warmup`` steps are not timed; then ``--steps`` steps are timed from a barrier to a barrier,
data loading included. Throughput = processes x batch x steps / seconds. On CPU the cores are split
between the processes (``OMP_NUM_THREADS``); on CUDA each process needs its own GPU (a configuration
with more processes than GPUs is skipped). Writes JSON + Markdown with the machine description.

    .venv/bin/python benchmarks/bench_training.py [--sizes 96x320 192x640] [--procs 1 2]
        [--batch 4] [--warmup 3] [--steps 20] [--threads N] [--out out/bench_training]

On a machine shared with other jobs, give ``--threads`` so the processes do not oversubscribe the
cores (OpenMP threads that wait for busy cores make a step many times slower).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a script from a checkout

from unified_perception.image_size import parse_size  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TASKS = ["depth", "semantic", "instance", "panoptic", "motion", "scene_flow", "pose", "steering"]
BAG_SEEDS = (1, 2)


def bench_recipe(bags: list[Path], size: tuple[int, int], batch: int, steps: int, workers: int):
    """The student recipe of the benchmark: all tasks, light heads, every loss on from step 0 (the
    motion terms included), no validation, no checkpoints, no logs."""
    from unified_perception.train.recipe import parse_recipe

    return parse_recipe({
        "name": f"bench_{size[0]}x{size[1]}", "seed": 0,
        "model": {"backbone": "resnet18", "preset": "light", "tasks": TASKS,
                  "input_height": size[0], "input_width": size[1]},
        "data": {"datasets": [{"kind": "rosbag", "path": str(b)} for b in bags], "frame_gaps": 2,
                 "workers": workers},
        "optim": {"steps": steps, "batch_size": batch, "warmup_steps": 0},
        "losses": {"motion_start_step": 0, "motion_ramp_steps": 0},
        "log": {"every": 10**9, "images_every": 0, "checkpoint_every": 10**9},
        "validation": {"every": 10**9},
    })


def worker(args: argparse.Namespace) -> None:
    """One rank (run by torchrun or directly): warm up, then time ``args.steps`` steps."""
    import torch

    from unified_perception.train.distributed import barrier, init_distributed, shutdown
    from unified_perception.train.trainer import Trainer

    ctx = init_distributed()
    size = parse_size(args.size)
    bags = [Path(p) for p in args.bags]
    recipe = bench_recipe(bags, size, args.batch, args.warmup + args.steps, args.workers)
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as out:
        trainer = Trainer(recipe, Path(out), progress=False, ctx=ctx)
        stream = trainer.batches()
        for _ in range(args.warmup):
            trainer.train_step(next(stream))
        sync = torch.cuda.synchronize if ctx.device.type == "cuda" else (lambda: None)
        sync()
        barrier(ctx)
        start = time.perf_counter()
        for _ in range(args.steps):
            trainer.train_step(next(stream))
        sync()
        barrier(ctx)
        seconds = time.perf_counter() - start
    if ctx.is_main:
        samples = ctx.world_size * args.batch * args.steps
        Path(args.result).write_text(json.dumps({
            "size": args.size, "processes": ctx.world_size, "batch_per_process": args.batch,
            "steps": args.steps, "seconds": seconds, "samples_per_s": samples / seconds,
            "step_ms": 1000 * seconds / args.steps, "device": str(ctx.device),
            "amp": trainer._amp_dtype() is not None, "threads_per_process": torch.get_num_threads()}))
    shutdown(ctx)


def machine() -> dict:
    """What the numbers were measured on."""
    import torch

    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"cpu": cpu, "cores": os.cpu_count(), "gpus": gpus, "torch": torch.__version__,
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None}


def run_config(size: str, procs: int, bags: list[Path], args: argparse.Namespace,
               gpus: int) -> dict:
    """One configuration in fresh processes (torchrun for two or more)."""
    if gpus and procs > gpus:
        return {"size": size, "processes": procs, "skipped": f"needs {procs} GPUs, {gpus} present"}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO),
                                                                     os.environ.get("PYTHONPATH")])))
    if not gpus:
        env["OMP_NUM_THREADS"] = str(args.threads or max(1, (os.cpu_count() or 1) // procs))
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        worker_args = ["--worker", "--size", size, "--batch", str(args.batch), "--warmup",
                       str(args.warmup), "--steps", str(args.steps), "--workers", str(args.workers),
                       "--result", str(result), "--bags", *map(str, bags)]
        script = str(Path(__file__).resolve())
        command = ([sys.executable, script, *worker_args] if procs == 1 else
                   [str(Path(sys.executable).with_name("torchrun")), "--standalone",
                    "--nproc_per_node", str(procs), script, *worker_args])
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{size} x{procs} failed:\n{done.stderr[-4000:]}")
        return json.loads(result.read_text())


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = ["# Training throughput (unified student: all tasks, light heads, resnet18)", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, GPUs: {', '.join(m['gpus']) or 'none'}; "
             f"torch {m['torch']}, Python {m['python']}; load average at start "
             f"{', '.join(f'{v:.1f}' for v in m['load_average'] or [])}.", "",
             f"Batch {report['batch']} per process, {report['warmup']} warm-up steps, then "
             f"{report['steps']} timed steps (data loading included).", "",
             "| size | processes | device | threads/process | step (ms) | samples/s |",
             "|---|---|---|---|---|---|"]
    for r in report["results"]:
        if "skipped" in r:
            lines.append(f"| {r['size']} | {r['processes']} | skipped: {r['skipped']} | | | |")
        else:
            lines.append(f"| {r['size']} | {r['processes']} | {r['device']}"
                         f"{' (amp)' if r['amp'] else ''} | {r['threads_per_process']} | "
                         f"{r['step_ms']:.0f} | {r['samples_per_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["96x320", "192x640"])
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers per process")
    parser.add_argument("--threads", type=int,
                        help="CPU threads per process (default: the cores split between them)")
    parser.add_argument("--frames", type=int, default=24, help="frames per synthetic bag")
    parser.add_argument("--data", type=Path, default=Path("out/bench_training/bags"))
    parser.add_argument("--out", type=Path, default=Path("out/bench_training"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    parser.add_argument("--bags", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    import torch

    from unified_perception.train.synthetic_bags import render_synthetic_bags

    report = {"machine": machine(), "batch": args.batch, "warmup": args.warmup,
              "steps": args.steps, "results": []}
    gpus = torch.cuda.device_count()
    for size in args.sizes:
        bags = render_synthetic_bags(args.data, BAG_SEEDS, args.frames, parse_size(size))
        for procs in args.procs:
            result = run_config(size, procs, bags, args, gpus)
            report["results"].append(result)
            print(json.dumps(result), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_training.json").write_text(json.dumps(report, indent=2))
    (args.out / "bench_training.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {args.out / 'bench_training.json'} and {args.out / 'bench_training.md'}")


if __name__ == "__main__":
    main()
