"""Evaluation metrics: pure numpy functions with cited definitions, and constant-memory accumulators.

Every accumulator has ``update(...)``, ``result() -> dict`` and ``merge(other)`` (to combine DDP ranks
or parallel workers). The trainer's validation and the evaluation report both use these.
"""

from unified_perception.eval.metrics.depth import (
    DEPTH_METRIC_NAMES, DepthAccumulator, DepthByDistance, DepthErrors, default_distance_bins,
    depth_error_by_distance, depth_errors)
from unified_perception.eval.metrics.motion import MotionAccumulator
from unified_perception.eval.metrics.odometry import (
    RpeResult, TrajectoryAccumulator, absolute_trajectory_error, aligned_positions,
    relative_pose_error, relative_poses_to_trajectory, rotation_angle_rad, umeyama_alignment)
from unified_perception.eval.metrics.panoptic import (
    PanopticAccumulator, PanopticCounts, PanopticQuality, panoptic_counts, panoptic_quality)
from unified_perception.eval.metrics.scene_flow import SceneFlowAccumulator, flow_point_errors
from unified_perception.eval.metrics.semantic import (
    SemanticAccumulator, confusion_matrix, iou_per_class, mean_iou, pixel_accuracy)
from unified_perception.eval.metrics.steering import SteeringAccumulator
from unified_perception.eval.metrics.timing import LatencyAccumulator

__all__ = [
    "DEPTH_METRIC_NAMES", "DepthAccumulator", "DepthByDistance", "DepthErrors", "LatencyAccumulator",
    "MotionAccumulator", "PanopticAccumulator", "PanopticCounts", "PanopticQuality", "RpeResult",
    "SceneFlowAccumulator", "SemanticAccumulator", "SteeringAccumulator", "TrajectoryAccumulator",
    "absolute_trajectory_error", "aligned_positions", "confusion_matrix", "default_distance_bins",
    "depth_error_by_distance", "depth_errors", "flow_point_errors", "iou_per_class", "mean_iou",
    "panoptic_counts", "panoptic_quality", "pixel_accuracy", "relative_pose_error",
    "relative_poses_to_trajectory", "rotation_angle_rad", "umeyama_alignment",
]
