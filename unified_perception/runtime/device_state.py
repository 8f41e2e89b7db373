"""Temporal state kept on the accelerator between calls, with ONNX Runtime I/O binding.

After a call, the ``state_out_*`` tensors stay where the session wrote them (GPU memory under the
CUDA / TensorRT providers) as ``OrtValue`` objects. When the next call has the same cameras in the same
order and none of them restarts, they are bound directly as ``state_in_*``: no copy through the host.
Anything else (another camera set, a reset, a camera dropped) first copies the rows back into
:class:`~unified_perception.runtime.state.HostStates` and builds the batch there - rare events.

The same code runs with ``device_type="cpu"``, which is how it is tested on machines without a GPU.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnxruntime as ort

from unified_perception.contract import IMAGE
from unified_perception.runtime.state import HostStates, StateSpec


class DeviceStates:
    """The state rows of the last batch, as ``OrtValue`` on ``device_type`` (``cuda`` or ``cpu``)."""

    def __init__(self, specs: Sequence[StateSpec], device_type: str, device_id: int = 0) -> None:
        self.specs = tuple(specs)
        self.device_type = device_type
        self.device_id = device_id
        self._cameras: tuple[str, ...] | None = None
        self._values: dict[str, ort.OrtValue] = {}

    @property
    def cameras(self) -> tuple[str, ...]:
        """The cameras whose state currently lives on the device, in batch order."""
        return self._cameras or ()

    def download(self, host: HostStates) -> None:
        """Copy the device rows into ``host`` (one transfer per state tensor) and forget them."""
        if self._cameras is not None:
            host.scatter(self._cameras, {name: value.numpy() for name, value in self._values.items()})
        self._cameras, self._values = None, {}

    def run(self, session: ort.InferenceSession, image: np.ndarray, cameras: Sequence[str],
            fresh: Sequence[bool], host: HostStates, output_names: Sequence[str]) -> dict[str, np.ndarray]:
        """One session call: ``image`` ``[N, h, w, 3] uint8``, state from the device when it can.

        Returns the non-state outputs ``output_names`` as host arrays; the new state stays on the
        device for the next call.
        """
        binding = session.io_binding()
        binding.bind_cpu_input(IMAGE.name, image)
        if self._cameras == tuple(cameras) and not any(fresh):
            for name, value in self._values.items():
                binding.bind_ortvalue_input(name, value)
        else:
            self.download(host)
            for name, rows in host.gather(cameras, fresh).items():
                binding.bind_cpu_input(name, rows)
        for name in output_names:
            binding.bind_output(name, "cpu")
        for spec in self.specs:
            binding.bind_output(spec.out_name, self.device_type, self.device_id)
        session.run_with_iobinding(binding)
        values = binding.get_outputs()
        n = len(output_names)
        self._values = {spec.in_name: value for spec, value in zip(self.specs, values[n:])}
        self._cameras = tuple(cameras)
        return {name: value.numpy() for name, value in zip(output_names, values[:n])}
