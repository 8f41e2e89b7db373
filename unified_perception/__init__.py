"""unified_perception: one multi-task network per camera frame, on ROS 2.

Parts: ``contract`` (model I/O contract), ``runtime`` (ONNX Runtime inference core), ``ros`` (the
node), ``sim`` (synthetic driving world), ``data`` (data set readers), ``train`` (PyTorch models,
losses, export), ``eval`` (metrics and reports). ``docs/architecture.md`` in the repository says what
each part does and which part may import which.
"""

__version__ = "0.1.0"
