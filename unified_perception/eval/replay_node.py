"""The perception node as a child process for live replay, on its own ROS domain over loopback.

The node runs as the car runs it (``unified-perception node``, the same code as ``perception_node``)
with the replay's params file, the model, one camera named after the bag's camera topic and
``use_sim_time`` (the player publishes ``/clock``). Its log goes to a file whose tail is shown when
something goes wrong.

Fast DDS gets the package's shared-memory profile (``runtime.model_files.FASTDDS_PROFILE``,
unless the user set ``FASTDDS_DEFAULT_PROFILES_FILE``): with the default segment the recorder lost
some of the node's outputs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from unified_perception.runtime.model_files import FASTDDS_PROFILE_VARIABLE, fastdds_profile_environment

DISCOVERY_RANGE = "LOCALHOST"


@contextmanager
def ros_environment(domain_id: int) -> Iterator[dict[str, str]]:
    """Loopback discovery on ``domain_id`` and the shared-memory profile (where the user set
    none) for this process (restored afterwards); yields the environment for child processes."""
    keys = ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID", FASTDDS_PROFILE_VARIABLE)
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = DISCOVERY_RANGE
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    os.environ.update(fastdds_profile_environment())
    try:
        yield {**os.environ, "PYTHONUNBUFFERED": "1"}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class NodeProcess:
    """``unified-perception node`` with the replay's parameters; stop it with :meth:`stop`."""

    def __init__(self, model: Path, params_file: Path, camera: str, compressed: bool,
                 env: dict[str, str], camera_mount: tuple[Sequence[float], Sequence[float]] | None = None
                 ) -> None:
        """``camera_mount``: ``(camera_to_base_xyz, camera_to_base_rpy)`` over the params file's."""
        self._log = tempfile.NamedTemporaryFile(prefix="replay_node_", suffix=".log", delete=False)
        self.log_path = Path(self._log.name)
        command = [sys.executable, "-m", "unified_perception.cli", "node", "--ros-args",
                   "--params-file", str(params_file),
                   "-p", f"model_path:={Path(model).resolve()}",
                   "-p", f"cameras:=['{camera}']",
                   "-p", f"transport:={'compressed' if compressed else 'raw'}",
                   "-p", "use_sim_time:=true"]
        if camera_mount is not None:
            for name, values in zip(("camera_to_base_xyz", "camera_to_base_rpy"), camera_mount):
                command += ["-p", f"{name}:=[{', '.join(f'{float(v):.12f}' for v in values)}]"]
        self._process = subprocess.Popen(command, env=env, stdout=self._log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def alive(self) -> bool:
        return self._process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        """The last ``lines`` lines the node printed."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return "\n".join(text[-lines:]) or "(no output)"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ctrl-C (a clean lifecycle shutdown), then terminate / kill if it does not exit."""
        if self.alive():
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.terminate()
                try:
                    self._process.wait(5.0)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
        self._log.close()

    def remove_log(self) -> None:
        self.log_path.unlink(missing_ok=True)
