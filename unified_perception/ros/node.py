"""The managed (lifecycle) node ``unified_perception``: a wiring diagram.

* construction: ``/diagnostics`` and its timer, which report in every state (a model that fails
  to load is ERROR there, with the reason, until a configure succeeds).
* configure: load the model (contract checked by the engine), create publishers and the pipeline.
* activate: subscribe to the cameras, start the inference worker and the steering watchdog; the
  objects alive by then are frozen out of Python's garbage collection (:mod:`ros.heap`).
* deactivate: unsubscribe, stop the worker and the watchdog; lifecycle publishers fall silent.
* cleanup: destroy publishers and free the inference session.

Parameters come from :mod:`unified_perception.ros.params`; the run-time ones (motion threshold,
point-cloud stride, path length, steering limits) apply from the next frame on; the model and
engine ones may be set while the node is unconfigured and apply at the next configure.
"""

from __future__ import annotations

from typing import Any

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter

from unified_perception import topics
from unified_perception.ros import camera_input, heap, params
from unified_perception.ros.camera_input import CameraInputs
from unified_perception.ros.diagnostics import (
    CLEANED_UP, INACTIVE, NOT_CONFIGURED, IdleStatus, diagnostics_message, idle_message,
    model_not_loaded)
from unified_perception.ros.event_callbacks import quiet_publisher
from unified_perception.ros.pipeline import FramePipeline
from unified_perception.ros.publishers import OUTPUT_QOS, OutputPublishers
from unified_perception.ros.vehicle import VehicleOutputs
from unified_perception.ros.worker import InferenceWorker
from unified_perception.runtime.engine import EngineConfig, InferenceEngine
from unified_perception.runtime.stats import RunStats

NODE_NAME = "unified_perception"
SUCCESS, FAILURE = TransitionCallbackReturn.SUCCESS, TransitionCallbackReturn.FAILURE


class PerceptionNode(LifecycleNode):
    """Camera frames in, every perception output and a steering command out."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.settings = params.declare(self)
        self.add_on_set_parameters_callback(
            lambda changes: params.validate(changes, configured=self._engine is not None))
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self._engine: InferenceEngine | None = None
        self._outputs: OutputPublishers | None = None
        self._inputs: CameraInputs | None = None
        self._vehicle: VehicleOutputs | None = None
        self._pipeline: FramePipeline | None = None
        self._worker: InferenceWorker | None = None
        # Not `_subscriptions` / `_timers`: rclpy.Node keeps its own lists under those names (the
        # executor serves /clock and parameter events from them).
        self._camera_subscriptions: list[Any] = []
        self._processing_timers: list[Any] = []
        self._stats = RunStats()
        self._idle: IdleStatus | None = NOT_CONFIGURED    # why no frame is processed; None: active
        self._diagnostics = self.create_publisher(DiagnosticArray, topics.DIAGNOSTICS.name,
                                                  OUTPUT_QOS, event_callbacks=quiet_publisher())
        self._diagnostics_timer = self.create_timer(self.settings.diagnostics_period_s,
                                                    self._publish_diagnostics)

    # ---------------------------------------------------------------- lifecycle transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._engine = InferenceEngine(self._engine_config(), log=self.get_logger().info)
        except Exception as err:  # ModelLoadError / ContractError: one clear line, stay unconfigured
            return self._configure_failed(str(err))
        self._outputs = OutputPublishers(self, self.settings.cameras, self.settings.publish_tf)
        self._stats = RunStats()
        self._inputs = CameraInputs(self.settings.cameras, self._stats.count_dropped)
        self._vehicle = VehicleOutputs(self._outputs.vehicle, self.settings)
        self._pipeline = FramePipeline(
            self._engine, self._outputs, self._vehicle, self._stats, lambda: self.settings,
            lambda msg: self.get_logger().warning(msg, throttle_duration_sec=5.0),
            lambda: self.get_clock().now().to_msg(),
            lambda msg: self.get_logger().error(msg, throttle_duration_sec=5.0))
        self._worker = InferenceWorker(self._inputs, self._pipeline.process,
                                       lambda msg: self.get_logger().error(msg),
                                       batch_window_s=lambda: self.settings.batch_window_s)
        self.get_logger().info(
            f"configured: model {self._engine.model_path} at {self._engine.input_size[1]}x"
            f"{self._engine.input_size[0]} on {self._engine.active_provider}, cameras "
            f"{list(self.settings.cameras)} ({self.settings.transport})")
        self._idle = INACTIVE
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        heap.freeze_startup_objects()
        self._engine.reset()
        self._vehicle.restart_steering()
        self._worker.start()
        self._camera_subscriptions = camera_input.subscribe(self, self._inputs,
                                                            self.settings.transport)
        self._processing_timers = [self.create_timer(0.05, self._watchdog)]
        self._idle = None
        self.get_logger().info("active: processing camera frames")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_processing()
        heap.unfreeze()
        self._idle = INACTIVE
        self.get_logger().info("inactive: not processing, not publishing")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._idle = CLEANED_UP
        self.get_logger().info("cleaned up: inference session freed")
        return super().on_cleanup(state)

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release_all()
        self.destroy_timer(self._diagnostics_timer)
        return super().on_shutdown(state)

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.release_all()
        self._idle = model_not_loaded("a lifecycle transition raised an error (see the log); "
                                      "configure the node again")
        return super().on_error(state)

    def release_all(self) -> None:
        """Stop processing and free everything configure created (idempotent)."""
        self._stop_processing()
        self._release()

    # ---------------------------------------------------------------- helpers
    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        """One error line, ERROR in /diagnostics until a configure succeeds; stay unconfigured."""
        self.get_logger().error(f"cannot configure: {reason}")
        self._idle = model_not_loaded(reason)
        return FAILURE

    def _engine_config(self) -> EngineConfig:
        s = self.settings
        return EngineConfig(model_path=s.model_path, providers=tuple(s.providers), trt_fp16=s.trt_fp16,
                            trt_cache_dir=s.trt_cache_dir, max_gap_s=s.max_gap_s,
                            warmup_runs=s.warmup_runs, warmup_batch=len(s.cameras),
                            intra_op_threads=s.intra_op_threads,
                            intra_op_spinning=s.intra_op_spinning)

    def _stop_processing(self) -> None:
        for sub in self._camera_subscriptions:
            self.destroy_subscription(sub)
        for timer in self._processing_timers:
            self.destroy_timer(timer)
        self._camera_subscriptions, self._processing_timers = [], []
        if self._worker is not None:
            if not self._worker.stop():
                self.get_logger().warning("the inference thread is still finishing a batch; its "
                                          "outputs are not published (the node is inactive)")

    def _release(self) -> None:
        if self._outputs is not None:
            self._outputs.destroy(self)
        if self._engine is not None:
            self._engine.close()
        self._engine = self._outputs = self._inputs = self._vehicle = None
        self._pipeline = self._worker = None

    def _watchdog(self) -> None:
        self._vehicle.on_watchdog(self.get_clock().now().to_msg())

    def _publish_diagnostics(self) -> None:
        name, stamp = self.get_fully_qualified_name(), self.get_clock().now().to_msg()
        pipeline = self._pipeline
        if self._idle is not None or pipeline is None:
            msg = idle_message(name, self.settings, self._idle or INACTIVE, stamp)
        else:
            msg = diagnostics_message(name, self.settings, self._engine, self._stats.snapshot(),
                                      self._inputs.received, pipeline.last_invalid_reason, stamp,
                                      pipeline.last_non_finite_reason)
        self._diagnostics.publish(msg)

    def _on_parameters_set(self, parameters: list[Parameter]) -> None:
        self.settings = params.read(self)
        if self._vehicle is not None:
            self._vehicle.apply(self.settings)
        self.get_logger().info("parameters changed: " + ", ".join(
            f"{p.name}={p.value}" for p in parameters))


def autostart(node: PerceptionNode) -> bool:
    """Configure and activate ``node``; False (with the reason already logged) if either fails."""
    if node.trigger_configure() != SUCCESS:
        return False
    return node.trigger_activate() == SUCCESS
