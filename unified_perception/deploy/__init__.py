"""Offline deployment tools on exported ONNX files: equivalent graph rewrites that run faster, and
INT8 (QDQ) quantization calibrated on the frames of a bag. numpy, onnx and onnxruntime; no torch,
no rclpy. Reads bags through ``eval.replay_input`` and prepares frames with ``runtime/`` exactly as
the node does."""
