"""Rendering speed of the synthetic world (frames/s, ms/frame) and the cost of writing a bag.

Wall time depends on machine load; the CPU column (process time, numpy single-threaded) is steadier.

Run: ``python benchmarks/bench_sim_render.py [--frames 20] [--sizes 192x640 64x128]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from unified_perception.image_size import parse_size
from unified_perception.sim.bag_writer import write_bag
from unified_perception.sim.config import CameraConfig, SimConfig
from unified_perception.sim.world import SyntheticWorld


def bench(height: int, width: int, frames: int, seeds: list[int]
          ) -> tuple[float, float, float, float]:
    """Mean wall ms/frame and CPU ms/frame for rendering, world build ms, bag writing ms/frame."""
    render_s, build_s, cpu_s = 0.0, 0.0, 0.0
    for seed in seeds:
        cfg = SimConfig(seed=seed, frames=frames, camera=CameraConfig(height=height, width=width))
        t0 = time.perf_counter()
        world = SyntheticWorld(cfg)
        t1, c1 = time.perf_counter(), time.process_time()
        rendered = [world.render(k) for k in range(frames)]
        t2, c2 = time.perf_counter(), time.process_time()
        cpu_s += c2 - c1
        build_s += t1 - t0
        render_s += t2 - t1
    with tempfile.TemporaryDirectory() as tmp:
        t3 = time.perf_counter()
        write_bag(Path(tmp) / "bag", iter(rendered), progress=False)
        write_s = time.perf_counter() - t3
    n = frames * len(seeds)
    return 1000 * render_s / n, 1000 * cpu_s / n, 1000 * build_s / len(seeds), 1000 * write_s / frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", nargs="+", default=["192x640", "96x320", "64x128"])
    args = parser.parse_args()
    print(f"{'size':>9} | {'render ms/frame':>15} | {'frames/s':>8} | {'CPU ms/frame':>12} | "
          f"{'world build ms':>14} | {'bag write ms/frame':>18}")
    print("-" * 93)
    for size in args.sizes:
        h, w = parse_size(size)
        ms, cpu_ms, build_ms, write_ms = bench(h, w, args.frames, args.seeds)
        print(f"{size:>9} | {ms:15.1f} | {1000 / ms:8.1f} | {cpu_ms:12.1f} | {build_ms:14.1f} | "
              f"{write_ms:18.1f}")


if __name__ == "__main__":
    main()
