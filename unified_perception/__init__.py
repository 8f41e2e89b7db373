"""unified_perception: one multi-task network per camera frame, on ROS 2.

Parts (see ../shared/design.md): ``contract`` (model I/O contract), ``runtime`` (ONNX Runtime
inference core), ``ros`` (the node), ``sim`` (synthetic driving world), ``data`` (data set readers),
``train`` (PyTorch models, losses, export), ``eval`` (metrics and reports).
"""

__version__ = "0.1.0"
