"""RosbagSequenceReader on real ROS 2 bags (MCAP and sqlite3) written here with rosbags' Writer."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from unified_perception.data import open_dataset
from unified_perception.data.errors import DatasetConfigError, DatasetError, MissingFileError
from unified_perception.data.rosbag import RosbagSequenceReader
from unified_perception.data.rosbag_topics import (EXAMPLE_YAML, RosbagTopics, load_rosbag_topics,
                                                 per_pixel_map)
from unified_perception.data.sample import POSE_FRAME_BASE, POSE_FRAME_CAMERA
from unified_perception.runtime.image_codec import encode_array

TS = get_typestore(Stores.ROS2_KILTED)
H, W = 24, 32
FX, FY, CX, CY = 30.0, 31.0, 15.5, 11.5
T0_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000          # 10 Hz
RECORD_DELAY_NS = 5_000_000      # bag receive time = header stamp + 5 ms


def _header(stamp_ns: int, frame_id: str = "camera_optical"):
    Time = TS.types["builtin_interfaces/msg/Time"]
    Header = TS.types["std_msgs/msg/Header"]
    return Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                  frame_id=frame_id)


def _image_msg(array: np.ndarray, encoding: str, stamp_ns: int):
    packed = encode_array(array, encoding)
    return TS.types["sensor_msgs/msg/Image"](
        header=_header(stamp_ns), height=packed.height, width=packed.width, encoding=encoding,
        is_bigendian=0, step=packed.step, data=np.frombuffer(packed.data, dtype=np.uint8))


def frame_rgb(i: int) -> np.ndarray:
    """A distinct RGB image per frame: red = 10 i, green = column, blue = row."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 10 * i
    rgb[..., 1] = np.arange(W)[None, :]
    rgb[..., 2] = np.arange(H)[:, None]
    return rgb


def frame_gt(i: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(i)
    semantic = rng.integers(0, 19, (H, W)).astype(np.uint8)
    instances = np.where(semantic == 13, 1 + (np.arange(W)[None, :] > W // 2), 0).astype(np.uint16)
    return {
        "depth": rng.uniform(1.0, 80.0, (H, W)).astype(np.float32),
        "semantic": semantic,
        "instances": instances,
        "panoptic": semantic.astype(np.int32) * 1000 + instances,
        "motion_mask": np.where(instances > 0, 255, 0).astype(np.uint8),
        "scene_flow": rng.normal(0.0, 0.5, (H, W, 3)).astype(np.float32),
    }


def pose_of(i: int) -> tuple[np.ndarray, np.ndarray]:
    """(position [3], quaternion xyzw [4]) of the base at frame i: 1 m/frame forward, yawing left."""
    yaw = 0.05 * i
    return np.array([float(i), 0.1 * i, 0.0]), np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])


def steering_of(i: int) -> float:
    return 0.01 * i - 0.02


def write_bag(path: Path, storage: StoragePlugin, frames: int = 5, camera: str = "rgb8",
              gt_frames: tuple[int, ...] | None = None, steering_skip: tuple[int, ...] = ()) -> Path:
    """A bag in the layout of the synthetic bags: /camera/*, /gt/* (GT only for ``gt_frames``)."""
    gt_frames = tuple(range(frames)) if gt_frames is None else gt_frames
    Float32 = TS.types["std_msgs/msg/Float32"]
    with Writer(path, version=9, storage_plugin=storage) as writer:
        image_type = ("sensor_msgs/msg/CompressedImage" if camera == "png"
                      else "sensor_msgs/msg/Image")
        conn = {
            "image": writer.add_connection("/camera/image_raw", image_type, typestore=TS),
            "info": writer.add_connection("/camera/camera_info", "sensor_msgs/msg/CameraInfo",
                                          typestore=TS),
            "depth": writer.add_connection("/gt/depth", "sensor_msgs/msg/Image", typestore=TS),
            "semantic": writer.add_connection("/gt/semantic", "sensor_msgs/msg/Image", typestore=TS),
            "instances": writer.add_connection("/gt/instances", "sensor_msgs/msg/Image", typestore=TS),
            "panoptic": writer.add_connection("/gt/panoptic", "sensor_msgs/msg/Image", typestore=TS),
            "motion_mask": writer.add_connection("/gt/motion_mask", "sensor_msgs/msg/Image",
                                                 typestore=TS),
            "scene_flow": writer.add_connection("/gt/scene_flow", "sensor_msgs/msg/Image",
                                                typestore=TS),
            "odometry": writer.add_connection("/gt/odometry", "nav_msgs/msg/Odometry", typestore=TS),
            "steering": writer.add_connection("/gt/steering/angle", "std_msgs/msg/Float32",
                                              typestore=TS),
        }
        encodings = {"depth": "32FC1", "semantic": "mono8", "instances": "16UC1",
                     "panoptic": "32SC1", "motion_mask": "mono8", "scene_flow": "32FC3"}
        for i in range(frames):
            stamp = T0_NS + i * PERIOD_NS
            log = stamp + RECORD_DELAY_NS
            rgb = frame_rgb(i)
            if camera == "png":
                ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                assert ok
                image = TS.types["sensor_msgs/msg/CompressedImage"](
                    header=_header(stamp), format="png", data=png.reshape(-1))
            elif camera == "bgr8":
                image = _image_msg(rgb[..., ::-1], "bgr8", stamp)
            else:
                image = _image_msg(rgb, "rgb8", stamp)
            writer.write(conn["image"], log, TS.serialize_cdr(image, image.__msgtype__))
            info = TS.types["sensor_msgs/msg/CameraInfo"](
                header=_header(stamp), height=H, width=W, distortion_model="plumb_bob",
                d=np.zeros(5), k=np.array([FX, 0, CX, 0, FY, CY, 0, 0, 1], np.float64),
                r=np.eye(3).ravel(), p=np.array([FX, 0, CX, 0, 0, FY, CY, 0, 0, 0, 1, 0], np.float64),
                binning_x=0, binning_y=0,
                roi=TS.types["sensor_msgs/msg/RegionOfInterest"](
                    x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            writer.write(conn["info"], log, TS.serialize_cdr(info, info.__msgtype__))
            if i in gt_frames:
                for key, array in frame_gt(i).items():
                    msg = _image_msg(array, encodings[key], stamp)
                    writer.write(conn[key], log + 1, TS.serialize_cdr(msg, msg.__msgtype__))
            position, quat = pose_of(i)
            Point, Quaternion = TS.types["geometry_msgs/msg/Point"], TS.types["geometry_msgs/msg/Quaternion"]
            pose = TS.types["geometry_msgs/msg/PoseWithCovariance"](
                pose=TS.types["geometry_msgs/msg/Pose"](
                    position=Point(x=position[0], y=position[1], z=position[2]),
                    orientation=Quaternion(x=quat[0], y=quat[1], z=quat[2], w=quat[3])),
                covariance=np.zeros(36))
            twist = TS.types["geometry_msgs/msg/TwistWithCovariance"](
                twist=TS.types["geometry_msgs/msg/Twist"](
                    linear=TS.types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0),
                    angular=TS.types["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)),
                covariance=np.zeros(36))
            odom = TS.types["nav_msgs/msg/Odometry"](
                header=_header(stamp, "odom"), child_frame_id="base_link", pose=pose, twist=twist)
            writer.write(conn["odometry"], log + 2, TS.serialize_cdr(odom, odom.__msgtype__))
            if i not in steering_skip:
                steer = Float32(data=steering_of(i))
                # Float32 has no header: matched by receive time, here 1 ms after the image's
                writer.write(conn["steering"], log + 1_000_000, TS.serialize_cdr(steer, steer.__msgtype__))
    return path


@pytest.fixture(scope="module")
def mcap_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bag(tmp_path_factory.mktemp("bags") / "synthetic_mcap", StoragePlugin.MCAP)


def _expected_pose(i: int) -> np.ndarray:
    position, quat = pose_of(i)
    yaw = 2 * np.arctan2(quat[2], quat[3])
    T = np.eye(4)
    T[:3, :3] = [[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]]
    T[:3, 3] = position
    return T


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_bag_windows_come_back_with_ground_truth_matched_by_stamp(tmp_path: Path, storage) -> None:
    bag = write_bag(tmp_path / "bag", storage, frames=5)
    reader = RosbagSequenceReader(bag)
    assert len(reader) == 3                       # centres 1, 2, 3 of frames 0..4
    sample = reader[1]                            # centre = frame 2
    assert sample.offsets == (-1, 0, 1) and sample.center == 1
    assert sample.images.shape == (3, H, W, 3) and sample.images.dtype == np.uint8
    for k, frame in enumerate((1, 2, 3)):
        np.testing.assert_array_equal(sample.images[k], frame_rgb(frame))
    np.testing.assert_allclose(sample.stamps_s, (T0_NS + np.array([1, 2, 3]) * PERIOD_NS) * 1e-9)
    np.testing.assert_allclose(sample.K, [[FX, 0, CX], [0, FY, CY], [0, 0, 1]])
    gt = frame_gt(2)
    np.testing.assert_array_equal(sample.depth_m, gt["depth"])
    assert sample.depth_m.dtype == np.float32
    np.testing.assert_array_equal(sample.semantic, gt["semantic"])
    np.testing.assert_array_equal(sample.instances, gt["instances"].astype(np.int32))
    assert sample.instances.dtype == np.int32 and sample.panoptic.dtype == np.int32
    np.testing.assert_array_equal(sample.panoptic, gt["panoptic"])
    np.testing.assert_array_equal(sample.motion_mask, gt["motion_mask"] == 255)
    np.testing.assert_array_equal(sample.scene_flow, gt["scene_flow"])
    assert sample.pose_frame == POSE_FRAME_BASE
    np.testing.assert_allclose(sample.poses, np.stack([_expected_pose(i) for i in (1, 2, 3)]),
                               atol=1e-12)
    np.testing.assert_allclose(sample.steering_rad, [steering_of(i) for i in (1, 2, 3)], atol=1e-7)
    assert set(sample.available()) == {"depth_m", "semantic", "instances", "panoptic",
                                       "motion_mask", "scene_flow", "poses", "steering_rad"}


def test_frames_without_ground_truth_give_none_and_unmatched_steering_gives_nan(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag", StoragePlugin.MCAP, frames=4, gt_frames=(1,),
                    steering_skip=(2,))
    reader = RosbagSequenceReader(bag)
    with_gt, without_gt = reader[0], reader[1]
    np.testing.assert_array_equal(with_gt.depth_m, frame_gt(1)["depth"])
    assert without_gt.depth_m is None and without_gt.semantic is None
    assert without_gt.scene_flow is None and without_gt.poses is not None
    # window of centre frame 2 is frames 1, 2, 3; frame 2 has no steering within 20 ms
    assert np.isnan(without_gt.steering_rad).tolist() == [False, True, False]


@pytest.mark.parametrize("camera", ["bgr8", "png"])
def test_bgr_and_compressed_cameras_decode_to_the_same_rgb(tmp_path: Path, camera: str) -> None:
    reader = RosbagSequenceReader(write_bag(tmp_path / "bag", StoragePlugin.MCAP, frames=3,
                                            camera=camera))
    sample = reader[0]
    for k in range(3):
        np.testing.assert_array_equal(sample.images[k], frame_rgb(k))
    assert reader.describe().native_size == (H, W)


def test_resize_scales_intrinsics_and_resizes_labels_nearest(mcap_bag: Path) -> None:
    sample = RosbagSequenceReader(mcap_bag, size=(12, 16))[0]
    assert sample.images.shape == (3, 12, 16, 3) and sample.size == (12, 16)
    # half size: fx / 2, cx' = (cx + 0.5) / 2 - 0.5
    np.testing.assert_allclose(sample.K, [[FX / 2, 0, (CX + 0.5) / 2 - 0.5],
                                          [0, FY / 2, (CY + 0.5) / 2 - 0.5], [0, 0, 1]])
    gt = frame_gt(1)
    # nearest: output pixel j samples source pixel floor((j + 0.5) * 2) = 2 j + 1
    np.testing.assert_array_equal(sample.semantic, gt["semantic"][1::2, 1::2])
    np.testing.assert_array_equal(sample.depth_m, gt["depth"][1::2, 1::2])
    assert set(np.unique(sample.panoptic)) <= set(np.unique(gt["panoptic"]))


def test_window_offsets_are_configurable(mcap_bag: Path) -> None:
    reader = RosbagSequenceReader(mcap_bag, offsets=(-2, 0))
    assert len(reader) == 3                      # centres 2, 3, 4
    sample = reader[-1]
    np.testing.assert_array_equal(sample.images[0], frame_rgb(2))
    np.testing.assert_array_equal(sample.images[1], frame_rgb(4))
    np.testing.assert_array_equal(sample.depth_m, frame_gt(4)["depth"])
    with pytest.raises(IndexError):
        reader[3]
    with pytest.raises(DatasetConfigError, match="include 0"):
        RosbagSequenceReader(mcap_bag, offsets=(-1, 1))


def test_camera_to_base_extrinsic_turns_poses_into_camera_poses(mcap_bag: Path) -> None:
    T_base_cam = [[0, 0, 1, 1.5], [-1, 0, 0, 0], [0, -1, 0, 1.2], [0, 0, 0, 1]]
    reader = RosbagSequenceReader(mcap_bag, topics={"T_base_cam": T_base_cam})
    sample = reader[0]
    assert sample.pose_frame == POSE_FRAME_CAMERA
    np.testing.assert_allclose(sample.poses[1], _expected_pose(1) @ np.array(T_base_cam, float),
                               atol=1e-12)


def test_reader_survives_pickling_for_worker_processes(mcap_bag: Path) -> None:
    reader = RosbagSequenceReader(mcap_bag)
    clone = pickle.loads(pickle.dumps(reader))
    np.testing.assert_array_equal(clone[2].images, reader[2].images)


def test_example_topic_map_is_the_default_and_describes_the_bag(mcap_bag: Path) -> None:
    assert load_rosbag_topics(EXAMPLE_YAML) == RosbagTopics(
        explicit=frozenset(yaml.safe_load(EXAMPLE_YAML.read_text())))
    reader = open_dataset("rosbag", mcap_bag, topics=EXAMPLE_YAML, size=(12, 16))
    summary = reader.describe()
    assert (summary.kind, summary.samples, summary.frames) == ("rosbag", 3, 5)
    assert summary.native_size == (H, W) and summary.size == (12, 16)
    assert set(summary.ground_truth) == {"depth_m", "semantic", "instances", "panoptic",
                                         "motion_mask", "scene_flow", "poses", "steering_rad"}
    assert summary.to_dict()["size"] == [12, 16]


def test_topic_map_errors_name_the_bad_key(tmp_path: Path, mcap_bag: Path) -> None:
    bad = tmp_path / "topics.yaml"
    bad.write_text("image: /camera/image_raw\ndepht: /gt/depth\n")
    with pytest.raises(DatasetConfigError, match="unknown key 'depht'"):
        load_rosbag_topics(bad)
    bad.write_text("steering_scale: fast\n")
    with pytest.raises(DatasetConfigError, match="'steering_scale' must be a number"):
        load_rosbag_topics(bad)
    bad.write_text("semantic: /gt/labels\n")
    with pytest.raises(DatasetConfigError, match=r"'/gt/labels' \(key 'semantic'.*/gt/depth"):
        RosbagSequenceReader(mcap_bag, topics=bad)
    bad.write_text("steering_field: drive.steering_angle\n")
    with pytest.raises(DatasetConfigError, match="steering_field"):
        RosbagSequenceReader(mcap_bag, topics=bad)
    with pytest.raises(DatasetConfigError, match="'intrinsics' must be"):
        RosbagSequenceReader(mcap_bag, topics={"intrinsics": [1, 2]})


def test_missing_bag_or_topic_map_gives_one_clear_message(tmp_path: Path, mcap_bag: Path) -> None:
    with pytest.raises(MissingFileError, match="rosbag not found: .*no_such_bag"):
        RosbagSequenceReader(tmp_path / "no_such_bag")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(MissingFileError, match="metadata.yaml"):
        RosbagSequenceReader(tmp_path / "empty_dir")
    with pytest.raises(MissingFileError, match="rosbag topic map not found"):
        RosbagSequenceReader(mcap_bag, topics=tmp_path / "nope.yaml")
    assert issubclass(MissingFileError, DatasetError)


def test_camera_extrinsic_is_read_from_tf_static_chain(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / "bag", StoragePlugin.MCAP, frames=3)
    # a second bag directory cannot be appended to; write the static tree into a copy instead
    with_tf = tmp_path / "bag_tf"
    Tf = TS.types["geometry_msgs/msg/TransformStamped"]
    V3, Q = TS.types["geometry_msgs/msg/Vector3"], TS.types["geometry_msgs/msg/Quaternion"]

    def stamped(parent: str, child: str, xyz, quat_xyzw) -> object:
        return Tf(header=_header(T0_NS, parent), child_frame_id=child,
                  transform=TS.types["geometry_msgs/msg/Transform"](
                      translation=V3(x=xyz[0], y=xyz[1], z=xyz[2]),
                      rotation=Q(x=quat_xyzw[0], y=quat_xyzw[1], z=quat_xyzw[2], w=quat_xyzw[3])))

    from rosbags.highlevel import AnyReader
    with AnyReader([bag]) as src, Writer(with_tf, version=9, storage_plugin=StoragePlugin.MCAP) as dst:
        conns = {c.topic: dst.add_connection(c.topic, c.msgtype, typestore=TS) for c in src.connections}
        tf_conn = dst.add_connection("/tf_static", "tf2_msgs/msg/TFMessage", typestore=TS)
        # base_link -> camera_link (1.5 m ahead, 1.2 m up) -> camera_optical (z forward, x right)
        tree = TS.types["tf2_msgs/msg/TFMessage"](transforms=[
            stamped("base_link", "camera_link", (1.5, 0.0, 1.2), (0.0, 0.0, 0.0, 1.0)),
            stamped("camera_link", "camera_optical", (0.0, 0.0, 0.0), (-0.5, 0.5, -0.5, 0.5)),
        ])
        dst.write(tf_conn, T0_NS, TS.serialize_cdr(tree, tree.__msgtype__))
        for conn, log_ns, raw in src.messages():
            dst.write(conns[conn.topic], log_ns, raw)
    sample = RosbagSequenceReader(with_tf)[0]
    assert sample.pose_frame == POSE_FRAME_CAMERA
    T_base_cam = np.array([[0, 0, 1, 1.5], [-1, 0, 0, 0], [0, -1, 0, 1.2], [0, 0, 0, 1.0]])
    np.testing.assert_allclose(sample.poses[1], _expected_pose(1) @ T_base_cam, atol=1e-9)


def test_synthetic_bag_from_the_simulator_reads_with_camera_poses(tmp_path: Path) -> None:
    from unified_perception.cli import main as cli_main

    bag = tmp_path / "synth"
    assert cli_main(["synth", "--out", str(bag), "--frames", "4", "--size", "32x64", "--quiet"]) == 0
    reader = RosbagSequenceReader(bag)
    summary = reader.describe()
    assert summary.samples == 2 and summary.native_size == (32, 64)
    assert set(summary.ground_truth) == {"depth_m", "semantic", "instances", "panoptic",
                                         "motion_mask", "scene_flow", "poses", "steering_rad"}
    sample = reader[0]
    assert sample.pose_frame == POSE_FRAME_CAMERA          # extrinsic from the bag's /tf_static
    assert sample.depth_m.shape == (32, 64) and (sample.depth_m > 0).any()
    np.testing.assert_array_equal(sample.panoptic % 1000, sample.instances)
    # the car drives forward: camera t sits ahead of camera t-1 along its optical axis (+z)
    motion = np.linalg.inv(sample.poses[0]) @ sample.poses[1]
    assert motion[2, 3] > 0 and abs(motion[2, 3]) > 5 * np.abs(motion[:2, 3]).max()
    assert np.isfinite(sample.steering_rad).all()


def test_per_pixel_maps_take_the_sample_dtypes_and_mark_missing_depth_with_zero() -> None:
    depth = per_pixel_map("depth", np.array([[1.5, np.nan], [-2.0, np.inf]], np.float32))
    assert depth.dtype == np.float32 and depth.tolist() == [[1.5, 0.0], [0.0, 0.0]]
    moving = per_pixel_map("motion_mask", np.array([[0, 127, 128, 255]], np.uint8))
    assert moving.dtype == bool and moving.tolist() == [[False, False, True, True]]
    assert per_pixel_map("semantic", np.array([[3]], np.int32)).dtype == np.uint8
    assert per_pixel_map("panoptic", np.array([[26001]], np.uint16)).dtype == np.int32
    flow = per_pixel_map("scene_flow", np.full((1, 1, 3), np.nan, np.float64))
    assert flow.dtype == np.float32 and np.isnan(flow).all()    # ground truth stays as given
