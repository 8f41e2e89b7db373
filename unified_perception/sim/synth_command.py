"""`unified-perception synth`: render a synthetic driving sequence with ground truth into a ROS 2 bag."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from unified_perception.image_size import ImageSizeError, parse_size
from unified_perception.sim.bag_writer import BagWriteError, write_bag
from unified_perception.sim.config import CameraConfig, SimConfig, SimConfigError
from unified_perception.sim.world import SyntheticWorld

DEFAULT_START_TIME_S = 1_700_000_000.0
"""stamp of frame 0 (a fixed epoch, so the same seed gives the same bag)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output bag directory (must not exist)")
    parser.add_argument("--frames", type=int, default=100, help="number of frames (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    parser.add_argument("--size", default="192x640", help="image size HxW (default 192x640)")
    parser.add_argument("--fps", type=float, default=10.0, help="frame rate in Hz (default 10)")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap",
                        help="bag storage plugin (default mcap)")
    parser.add_argument("--wheelbase", type=float, default=2.7, help="ego wheelbase in m (default 2.7)")
    parser.add_argument("--start-time", type=float, default=DEFAULT_START_TIME_S,
                        help="stamp of the first frame, s since the epoch")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> SimConfig:
    height, width = parse_size(args.size)
    return replace(SimConfig(), seed=args.seed, frames=args.frames, fps=args.fps,
                   wheelbase_m=args.wheelbase, time_offset_s=args.start_time,
                   camera=replace(CameraConfig(), height=height, width=width)).validate()


def main(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        world = SyntheticWorld(config)   # before the bag exists: a bad world leaves no partial bag
        frames = (world.render(index) for index in range(config.frames))
        summary = write_bag(args.out, frames, storage=args.storage,
                            config_json=config.to_json_dict(), total=config.frames,
                            progress=not args.quiet)
    except (ImageSizeError, SimConfigError, BagWriteError) as err:
        print(f"unified-perception synth: {err}", file=sys.stderr)
        return 2
    print(f"wrote {summary.frames} frames ({config.camera.height}x{config.camera.width}, seed "
          f"{config.seed}) to {summary.path} [{args.storage}] with topics: "
          + ", ".join(sorted(summary.topics)))
    return 0
