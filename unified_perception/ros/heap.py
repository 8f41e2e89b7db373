"""Python's cyclic garbage collector kept off the frame path while the node processes frames.

A full (generation 2) collection walks every container object of the process, about 50 000 in the
running node (rclpy, the message classes, numpy, the ONNX Runtime bindings), with the interpreter
lock held: 54 ms on the 2-core AVX2 CPU at 96x320, as long as a whole pass of the network, for one
frame every few tens of seconds (measured in the node with ``gc.callbacks``). ``gc.freeze()`` moves
the objects that exist at activation (imports, the loaded model, publishers) into a permanent
generation that collections skip; the same collection then takes about 1 ms. Objects created later
are collected as usual. Deactivation unfreezes, so what a cleanup releases can be collected.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect once, then exempt every object alive now from later collections."""
    gc.collect()
    gc.freeze()


def unfreeze() -> None:
    """Return the frozen objects to the collector (the oldest generation)."""
    gc.unfreeze()
