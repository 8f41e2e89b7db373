"""Create a ROS 2 bag the way ``ros2 bag record -o NAME`` lays it out, all or nothing.

``NAME/metadata.yaml`` + ``NAME/NAME_0.mcap`` (or ``NAME_0.db3``). The bag is written into a hidden
temporary sibling folder and renamed to ``NAME`` only when writing finished, so a run that fails or
is interrupted leaves nothing that looks like a complete bag.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer

STORAGE = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}


class BagOutputError(RuntimeError):
    """The output bag cannot be created (it exists, no folder, unknown storage). Says what to do."""


def qos(durability: QosDurability = QosDurability.VOLATILE, depth: int = 10) -> Qos:
    """A reliable keep-last QoS profile to record as a connection's offered QoS."""
    zero = QosTime(sec=0, nsec=0)
    return Qos(QosHistory.KEEP_LAST, depth, QosReliability.RELIABLE, durability, zero, zero,
               QosLiveliness.SYSTEM_DEFAULT, zero, False)


def check_output(path: str | Path, storage: str = "mcap") -> Path:
    """``path`` as a Path if a bag can be created there; :class:`BagOutputError` says why not."""
    path = Path(path)
    if path.exists():
        raise BagOutputError(f"output bag '{path}' already exists: choose another --out or delete it")
    if storage not in STORAGE:
        raise BagOutputError(f"unknown bag storage '{storage}': use one of {', '.join(STORAGE)}")
    if not path.parent.is_dir():
        raise BagOutputError(f"the folder of the output bag '{path.parent}' does not exist: create it")
    return path


@contextmanager
def bag_writer(path: str | Path, storage: str = "mcap") -> Iterator[Writer]:
    """An open rosbags ``Writer`` (format version 9) that becomes the bag folder ``path`` on success.

    The files are named after the folder: ``path/<name>_0.<mcap|db3>``. On an exception the
    partial bag is deleted and the exception propagates.
    """
    path = check_output(path, storage)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    inner = staging / f"{path.name}_0"      # rosbags names the storage file after its folder
    try:
        with Writer(inner, version=9, storage_plugin=STORAGE[storage]) as writer:
            yield writer
        if path.exists():
            raise BagOutputError(f"output bag '{path}' appeared while writing; the new bag is "
                                 f"discarded: choose another --out")
        inner.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
