"""The synthetic driving world with exact ground truth for every task, written as ROS 2 bags."""
