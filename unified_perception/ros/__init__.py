"""The ROS 2 node and message conversions. rclpy + runtime; no maths here, no torch."""
