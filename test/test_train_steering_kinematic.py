"""The steering head's kinematic prior: the bicycle model's angle of the ego-motion, in PyTorch and
in the exported graph."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from unified_perception.train.heads.steering import WHEELBASE_M, kinematic_steering
from unified_perception.train.export import export_model
from unified_perception.train.model import build_unified_model
from unified_perception.train.pose_stage import pair_targets

HEIGHT, WIDTH = 64, 128


def _circle_poses(radius_m: float, step_m: float, frames: int) -> np.ndarray:
    """``[F, 4, 4]`` ``T_odom_cam`` of a camera (x right, y down, z forward) driving a circle of
    ``radius_m`` (positive: turning left) on flat ground, ``step_m`` per frame."""
    heading = np.arange(frames) * step_m / radius_m                 # yaw about the up axis
    # Odom: x forward, y left, z up at the start; the camera looks along the heading.
    x, y = radius_m * np.sin(heading), radius_m * (1 - np.cos(heading))
    cam_in_base = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=np.float64)  # x_b = z_c ...
    poses = np.tile(np.eye(4), (frames, 1, 1))
    for i, h in enumerate(heading):
        yaw = np.array([[np.cos(h), -np.sin(h), 0], [np.sin(h), np.cos(h), 0], [0, 0, 1]])
        poses[i, :3, :3] = yaw @ cam_in_base
        poses[i, :3, 3] = (x[i], y[i], 1.5)
    return poses


@pytest.mark.parametrize("radius_m", [40.0, -25.0, 1e9])
def test_the_prior_is_the_bicycle_model_angle_of_the_driven_curvature(radius_m: float) -> None:
    ego = torch.from_numpy(pair_targets(_circle_poses(radius_m, 1.2, 5), 1))
    angle = kinematic_steering(ego, torch.tensor(WHEELBASE_M))[:, 0].numpy()
    np.testing.assert_allclose(angle, np.arctan(WHEELBASE_M / radius_m), rtol=0.01, atol=1e-9)
    # No previous frame (zero ego-motion): no angle, and nothing non-finite.
    still = kinematic_steering(torch.zeros(2, 6), torch.tensor(WHEELBASE_M))
    assert torch.equal(still, torch.zeros(2, 1))


def test_a_stopped_car_s_yaw_noise_does_not_steer() -> None:
    """Standing still, the estimated ego-motion is noise: 1 mrad of yaw over 5 mm would be a
    curvature of 0.2 /m (28 deg of wheel angle) read naively; the prior fades it out."""
    noise = torch.tensor([[0.0, 1e-3, 0.0, 0.003, 0.0, -0.004]])
    assert abs(float(kinematic_steering(noise, torch.tensor(WHEELBASE_M)))) < np.radians(0.1)


def test_a_kinematic_head_exports_and_adds_the_prior_from_the_second_frame(tmp_path) -> None:
    model = build_unified_model("resnet18", HEIGHT, WIDTH, seed=0, preset="light",
                                latent_ego_motion=True, steering_kinematic=True).eval()
    session = ort.InferenceSession(str(export_model(model, tmp_path / "kinematic.onnx")),
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (2, HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(2)]
    names = [o.name for o in session.get_outputs()]
    inputs = [i for i in session.get_inputs() if i.name != "image"]
    state = {i.name: np.zeros((2, *i.shape[1:]), np.float32) for i in inputs}
    torch_state = None
    for t, frame in enumerate(frames):
        out = dict(zip(names, session.run(names, {"image": frame, **state})))
        state = {i.name: out["state_out_" + i.name[len("state_in_"):]] for i in inputs}
        with torch.no_grad():
            expected, torch_state = model(torch.from_numpy(frame), torch_state)
            pooled_only = model.steering(torch_state.latent_window, torch_state.latent_mask,
                                         torch.zeros(2, 6))
        np.testing.assert_allclose(out["steering"], expected.steering_rad.numpy(), atol=1e-5)
        prior = expected.steering_rad - pooled_only
        if t == 0:       # no previous frame: zero ego-motion, no prior
            assert torch.equal(prior, torch.zeros_like(prior))
        else:
            with torch.no_grad():
                want = kinematic_steering(expected.pose_vector, model.steering.kinematic_scale)
            assert float(want.abs().max()) > 0
            np.testing.assert_allclose(prior.numpy(), want.numpy(), atol=1e-6)


def test_a_kinematic_head_needs_a_pose_decoder() -> None:
    with pytest.raises(ValueError, match="steering_kinematic"):
        build_unified_model("resnet18", HEIGHT, WIDTH, tasks=("depth", "steering"),
                            preset="light", steering_kinematic=True)
