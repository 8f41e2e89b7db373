"""Render the synthetic world to bags once, so training reads frames instead of rendering them.

Each (seed, frames, size) has its own bag directory under ``out_dir``; a bag that is already there
is reused as is. The bag writer stages each bag in a hidden folder and renames it when complete, so
an interrupted render never leaves a partial bag that would be mistaken for a finished one (and
two processes rendering the same bag at once keep the first one finished).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

from unified_perception.sim.bag_writer import BagWriteError, write_bag
from unified_perception.sim.config import CameraConfig, SimConfig
from unified_perception.sim.synth_command import DEFAULT_START_TIME_S
from unified_perception.sim.world import SyntheticWorld


def synthetic_bag_name(seed: int, frames: int, size: tuple[int, int]) -> str:
    """Directory name of the bag of one sequence: ``synth_seed<seed>_<frames>f_<H>x<W>``."""
    return f"synth_seed{seed}_{frames}f_{size[0]}x{size[1]}"


def render_synthetic_bags(out_dir: str | Path, seeds: Sequence[int], frames: int,
                          size: tuple[int, int], progress: bool = False) -> list[Path]:
    """Paths of the bags of ``seeds`` (``frames`` frames each, ``size = (H, W)`` px) under
    ``out_dir``, rendering with the simulator only those not there yet (same world and stamps as
    ``unified-perception synth --seed S``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        path = out_dir / synthetic_bag_name(int(seed), frames, size)
        if not path.is_dir():
            config = replace(SimConfig(), seed=int(seed), frames=frames,
                             time_offset_s=DEFAULT_START_TIME_S,
                             camera=replace(CameraConfig(), height=size[0], width=size[1])).validate()
            world = SyntheticWorld(config)
            try:
                write_bag(path, (world.render(i) for i in range(frames)),
                          config_json=config.to_json_dict(), total=frames, progress=progress)
            except BagWriteError:
                if not path.is_dir():         # not merely another process finishing it first
                    raise
        paths.append(path)
    return paths
