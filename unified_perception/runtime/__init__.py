"""Inference core: ONNX Runtime session, temporal state, pre/post-processing. numpy + onnxruntime (+cv2)."""
