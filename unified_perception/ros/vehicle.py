"""Vehicle-level outputs from the primary camera: odometry + path and the limited steering command.

The arithmetic lives in :class:`runtime.vehicle_state.VehicleState`: odometry integrates the
network's ego-motion (only from valid frame pairs) into ``odom -> base_link`` (REP 105); steering
goes through the runtime's limiter; a watchdog tick holds / decays the command when no valid frame
came for ``steering.stale_timeout_s`` (then returns it to straight). This class builds the messages
of what it computes (steering first, into the frame's :class:`ros.publishers.Outbox`); a time
jump backwards restarts odometry and the path. A frame whose steering value is missing never
produces a command. Called from the worker thread (results) and the executor thread (watchdog),
hence the lock.
"""

from __future__ import annotations

import threading
from collections import deque

import numpy as np
from builtin_interfaces.msg import Time

from unified_perception.ros import builders
from unified_perception.ros.params import NodeSettings
from unified_perception.ros.publishers import Outbox, VehiclePublishers
from unified_perception.runtime.engine import FrameResult
from unified_perception.runtime.odometry import camera_to_base_extrinsic
from unified_perception.runtime.steering import SteeringLimits, SteeringOutput
from unified_perception.runtime.vehicle_state import VehicleState


def steering_limits(settings: NodeSettings) -> SteeringLimits:
    return SteeringLimits(
        max_angle_rad=settings.steering_max_angle_rad,
        max_rate_rad_s=settings.steering_max_rate_rad_s,
        smoothing_time_constant_s=settings.steering_smoothing_time_constant_s,
        stale_timeout_s=settings.steering_stale_timeout_s)


class VehicleOutputs:
    """Odometry, path and steering state of the vehicle, and their publishing."""

    def __init__(self, pubs: VehiclePublishers, settings: NodeSettings) -> None:
        self._pubs = pubs
        self._lock = threading.Lock()
        self._T_base_cam = camera_to_base_extrinsic(settings.camera_to_base_xyz,
                                                    settings.camera_to_base_rpy)
        self._state = VehicleState(self._T_base_cam, steering_limits(settings))
        self._path: deque = deque(maxlen=settings.path_max_poses)
        self._path_period_s = settings.path_period_s
        self._path_sent_s: float | None = None      # camera stamp of the last /path message
        self._odom_frame = settings.odom_frame_id
        self._base_frame = settings.base_frame_id
        self._static_tf_frame: str | None = None

    def apply(self, settings: NodeSettings) -> None:
        """Take over run-time parameter changes (steering limits, path length)."""
        with self._lock:
            self._state.set_limits(steering_limits(settings))
            if self._path.maxlen != settings.path_max_poses:
                self._path = deque(self._path, maxlen=settings.path_max_poses)
            self._path_period_s = settings.path_period_s

    def restart_steering(self) -> None:
        """Forget the steering history (at activation); odometry continues where it was (REP 105)."""
        with self._lock:
            self._state.restart_steering()

    def on_result(self, result: FrameResult, stamp: Time, now: Time,
                  camera_frame_id: str = "") -> None:
        """Publish the odometry update (valid pairs only) and the steering command of a frame
        (:meth:`add_result`, published at once)."""
        outbox = Outbox()
        self.add_result(outbox, result, stamp, now, camera_frame_id)
        outbox.publish()

    def add_result(self, outbox: Outbox, result: FrameResult, stamp: Time, now: Time,
                   camera_frame_id: str = "") -> None:
        """Take a frame's result into odometry and steering; its odometry update (valid pairs
        only) and steering command go into ``outbox`` for the caller to publish.

        ``stamp``: the camera frame's stamp; ``now``: the node clock when the result came;
        ``camera_frame_id``: the primary camera's optical frame (for /tf_static).
        """
        with self._lock:
            self._add_camera_mount(outbox, camera_frame_id, stamp)
            out = self._state.steering(result, builders.stamp_to_s(stamp), builders.stamp_to_s(now))
            if out is not None:
                self._add_steering(outbox, out, stamp)
            self._add_odometry(outbox, result, stamp)

    def on_watchdog(self, now: Time) -> None:
        """Without a steering output for ``stale_timeout_s``, publish the held command at ``now``."""
        outbox = Outbox()
        with self._lock:
            out = self._state.watchdog(builders.stamp_to_s(now))
            if out is not None:
                self._add_steering(outbox, out, now)
        outbox.publish()

    def _add_odometry(self, outbox: Outbox, result: FrameResult, stamp: Time) -> None:
        update = self._state.odometry(result)
        if update is None:
            return      # invalid pair or non-finite ego-motion: no pose, no twist
        if update.restarted:
            self._path.clear()      # time went back: odometry and the path start again
        T_odom_base = update.T_odom_base
        odom = builders.odometry(T_odom_base, update.linear_mps, update.angular_rps,
                                 builders.header(stamp, self._odom_frame), self._base_frame)
        self._path.append(builders.path_pose(odom))
        outbox.add(self._pubs.odometry, odom)
        if self._pubs.tf is not None:
            outbox.add(self._pubs.tf, builders.tf_message([builders.transform_stamped(
                T_odom_base, builders.header(stamp, self._odom_frame), self._base_frame)]))
        if self._path_due(builders.stamp_to_s(stamp), update.restarted):
            outbox.add_if_wanted(
                self._pubs.path,
                lambda: builders.path(self._path, builders.header(stamp, self._odom_frame)))

    def _path_due(self, stamp_s: float, restarted: bool) -> bool:
        """Whether this pose's frame publishes /path: the first, one after a restart, and then one
        per ``path_period_s`` of camera stamps (a message holds the whole path: publishing it
        every frame grew with its length, to 4 ms at 2000 poses)."""
        last = self._path_sent_s
        if (restarted or last is None or stamp_s < last
                or stamp_s - last >= self._path_period_s - 1e-6):   # 1 us: stamps are ns
            self._path_sent_s = stamp_s
            return True
        return False

    def _add_camera_mount(self, outbox: Outbox, camera_frame_id: str, stamp: Time) -> None:
        """Latch base_link -> camera optical frame on /tf_static once per optical frame id."""
        if (self._pubs.tf_static is None or not camera_frame_id
                or camera_frame_id == self._static_tf_frame):
            return
        self._static_tf_frame = camera_frame_id
        outbox.add(self._pubs.tf_static, builders.tf_message([builders.transform_stamped(
            self._T_base_cam, builders.header(stamp, self._base_frame), camera_frame_id)]))

    def _add_steering(self, outbox: Outbox, out: SteeringOutput, stamp: Time) -> None:
        if not np.isfinite(out.angle_rad):
            return
        if self._pubs.steering_command is not None:
            outbox.add_if_wanted(
                self._pubs.steering_command,
                lambda: builders.ackermann(out.angle_rad, builders.header(stamp, self._base_frame)))
        outbox.add(self._pubs.steering_angle, builders.float32(out.angle_rad))
        outbox.add_if_wanted(self._pubs.steering_marker, lambda: builders.steering_marker(
            out.angle_rad, out.held, builders.header(stamp, self._base_frame)))
