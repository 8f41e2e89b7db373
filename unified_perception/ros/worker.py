"""The inference thread: takes the newest frame of every camera and hands them to one batched call.

Runs off the executor thread so subscriptions, parameter and lifecycle services stay responsive
while the network runs. An exception in processing is logged and the thread keeps going.
"""

from __future__ import annotations

import threading
from typing import Callable

from unified_perception.ros.camera_input import CameraInputs, PendingFrame


class InferenceWorker:
    """A daemon thread looping ``process(inputs.take(...))`` between :meth:`start` and :meth:`stop`."""

    def __init__(self, inputs: CameraInputs, process: Callable[[list[PendingFrame]], None],
                 log_error: Callable[[str], None], poll_s: float = 0.1,
                 batch_window_s: Callable[[], float] = lambda: 0.0) -> None:
        self._inputs = inputs
        self._process = process
        self._batch_window_s = batch_window_s
        self._log_error = log_error
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; a thread still finishing a batch after :meth:`stop` is waited for."""
        if self._thread is not None and self._stop.is_set():
            self._thread.join()         # stop() timed out on a long batch: never run two workers
            self._thread = None
        if self._thread is not None:
            return
        self._stop.clear()
        self._inputs.clear()
        self._thread = threading.Thread(target=self._run, name="unified_perception_inference",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop after the batch in progress (if any) is finished and published.

        Returns False when the thread did not finish within ``timeout_s``; it then ends after its
        batch, and :meth:`start` waits for it.
        """
        if self._thread is None:
            return True
        self._stop.set()
        self._inputs.wake()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            return False
        self._thread = None
        return True

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            frames = self._inputs.take(self._poll_s, self._batch_window_s())
            if not frames or self._stop.is_set():
                continue
            try:
                self._process(frames)
            except Exception as err:  # keep the node alive; the error is logged and counted
                self._log_error(f"inference on {[f.camera for f in frames]} failed: "
                                f"{type(err).__name__}: {err}")
