"""PyTorch side: backbones, heads, losses, teachers, trainer and ONNX export. Never imports rclpy."""
