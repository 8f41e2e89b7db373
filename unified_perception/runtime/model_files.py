"""Where the package's models (and other shipped files) live and how a ``model_path`` value
becomes a file.

The shipped model (:data:`SHIPPED_MODEL`, trained by the committed synthetic recipe chain) sits in
the repository's ``models/`` and is installed into ``share/unified_perception/models`` (setup.py
``data_files``; colcon puts it under the install prefix, pip under ``sys.prefix``). A
``model_path`` that is a bare file name, such as config/car.yaml's default, is looked up in those
folders when it is not a file in the working directory; any other path is used as given.
:func:`existing_model_file` is the one check that a ``model_path`` names a file: the engine runs
it before loading, so the node, replay and the tools refuse a missing model with the same message.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

PACKAGE = "unified_perception"
SHIPPED_MODEL = "unified_synthetic_resnet18.onnx"
"""File name of the shipped model (its model card: the same name with ``.md``)."""


class ModelLoadError(RuntimeError):
    """The model file is missing or ONNX Runtime cannot load it. The message says what to do."""


def package_folders(kind: str) -> tuple[Path, ...]:
    """The package's ``kind`` folders (``models``, ``config``), in lookup order: the checkout's
    (when running from the sources), the ament share folder's (colcon install), ``sys.prefix``
    share's (pip install)."""
    root = Path(__file__).resolve().parents[2]
    checkout = (root / "package.xml").is_file() and (root / "setup.py").is_file()
    folders = [root / kind] if checkout else []
    try:
        from ament_index_python.packages import get_package_share_directory
        folders.append(Path(get_package_share_directory(PACKAGE)) / kind)
    except Exception:  # no ament index, or the package is not installed with colcon
        pass
    folders.append(Path(sys.prefix) / "share" / PACKAGE / kind)
    unique: list[Path] = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return tuple(unique)


def models_folders() -> tuple[Path, ...]:
    """The package's model folders in lookup order (:func:`package_folders`)."""
    return package_folders("models")


def package_config_file(name: str) -> Path | None:
    """The first of the package's ``config`` folders holding ``name``; None when none does."""
    return next((f / name for f in package_folders("config") if (f / name).is_file()), None)


FASTDDS_PROFILE = "fastdds_large_frames.xml"
"""The package's Fast DDS profile (``config/``): a 32 MiB shared-memory segment. Raw camera frames
above ~0.5 MB need it, and so do the node's outputs: one frame's 13 take about 0.9 MB even at
96x320, more than the default 0.5 MB segment, and reliable outputs (history depth 2) are lost
for subscribers in other processes when it is full."""
FASTDDS_PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"


def fastdds_profile_environment(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``{FASTDDS_DEFAULT_PROFILES_FILE: the package's profile}`` to add to a ROS process's
    environment; empty when ``environ`` already names a profile (the user's wins) or no package
    folder holds it."""
    profile = package_config_file(FASTDDS_PROFILE)
    if environ.get(FASTDDS_PROFILE_VARIABLE) or profile is None:
        return {}
    return {FASTDDS_PROFILE_VARIABLE: str(profile)}


def resolve_model_path(model_path: str, folders: Sequence[Path] | None = None) -> Path:
    """The file ``model_path`` names: ``~`` expanded; a bare file name that is not a file in the
    working directory is looked up in ``folders`` (default :func:`models_folders`; the first
    folder holding it wins). When nothing is found the path is returned as given, for the caller's
    "not found" message."""
    path = Path(os.path.expanduser(model_path))
    if not model_path or path.is_file() or path.name != model_path:
        return path
    for folder in models_folders() if folders is None else folders:
        if (folder / model_path).is_file():
            return folder / model_path
    return path


def shipped_model_path() -> Path | None:
    """The installed or checked-out shipped model, None when no models folder holds it."""
    found = resolve_model_path(SHIPPED_MODEL)
    return found if found.is_file() else None


def where_looked(model_path: str) -> str:
    """For a "not found" message: where a bare file name was looked up ("" for other paths)."""
    if not model_path or Path(model_path).name != model_path:
        return ""
    return (" (a bare file name is looked up in the working directory, then in the package's "
            f"models folders: {', '.join(str(f) for f in models_folders())})")


def missing_model_message(model_path: str) -> str:
    """Why ``model_path`` cannot be loaded because it names no file, and what to do (the node's
    parameter and the commands' ``--model`` take the same value)."""
    return (f"model '{model_path}' is not a file; give an ONNX model exported with "
            f"`unified-perception export` (on the node: the parameter model_path)"
            + where_looked(model_path))


def existing_model_file(model_path: str, folders: Sequence[Path] | None = None) -> Path:
    """The file ``model_path`` names (:func:`resolve_model_path` with ``folders``);
    :class:`ModelLoadError` with :func:`missing_model_message` when it names none."""
    path = resolve_model_path(model_path, folders)
    if not model_path or not path.is_file():
        raise ModelLoadError(missing_model_message(model_path))
    return path
