"""Inference core: ONNX Runtime session, temporal state, pre/post-processing. numpy + onnxruntime (+cv2).

No torch, no rclpy: this is what runs on the car. One job per module:

* ``engine``        ``InferenceEngine``: load + contract check + provider choice + warm-up, batched
                    ``infer`` of N cameras with per-camera temporal state.
* ``providers``     ordered TensorRT / CUDA / CPU preference -> ONNX Runtime providers + one reason.
* ``state``         per-camera state rows on the host and when a camera's state restarts.
* ``device_state``  the same state kept on the GPU between calls with I/O binding.
* ``preprocess``    resize to the model size, scale intrinsics.
* ``postprocess``   outputs to the published encodings (motion mask, 16-bit instances).
* ``scene_flow``    depth + scene flow -> points with velocities.
* ``odometry``      camera ego-motion -> odom -> base_link (REP 103/105), camera mount extrinsic.
* ``steering``      angle/rate limits, smoothing, hold on stale or non-finite input.
* ``colorize``      images for viewing (classes, depth, motion, instances).
* ``stats``         rate, latency percentiles, dropped/invalid counters for diagnostics.
* ``image_codec``   ROS image messages <-> numpy (the ROS engineer's).
"""
