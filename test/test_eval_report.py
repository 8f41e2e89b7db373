"""`unified-perception evaluate`: prediction bags built from the ground truth itself, scored end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval_bag_helpers import (
    edit_image, edit_pose, edit_steering, read_gt_images, read_gt_values, write_prediction_bag)
from unified_perception.cli import main as cli_main
from unified_perception.contract import CLASS_ID
from unified_perception.eval.bag_index import pose_of
from unified_perception.eval.evaluate import evaluate_bags
from unified_perception.eval.metrics import depth_errors

FRAMES = 6
REPORT_FILES = {"metrics.json", "summary.md", "semantic_iou.png", "depth_by_distance.png",
                "trajectory.png", "steering.png", "latency.png", "montage.gif", "montage.png"}
METRIC_KEYS = {
    "frames": {"in", "out", "dropped", "per_output"},
    "depth": {"abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"},
    "semantic": {"miou", "per_class"},
    "panoptic": {"pq", "sq", "rq", "pq_things", "pq_stuff"},
    "motion": {"iou", "precision", "recall"},
    "scene_flow": {"epe3d", "acc_strict", "acc_relaxed", "outliers"},
    "odometry": {"ate_m", "ate_sim3_m", "rpe_trans_m", "rpe_rot_deg"},
    "steering": {"rmse_deg", "mae_deg"},
    "latency_ms": {"p50", "p95", "p99"},
}
BASELINE_TASKS = {"depth", "semantic", "panoptic", "motion", "scene_flow", "odometry", "steering"}


def _evaluate(pred: Path, gt: Path, out: Path, *extra: str) -> int:
    return cli_main(["evaluate", str(pred), "--gt", str(gt), "--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="session")
def gt_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("eval_gt") / "gt"
    assert cli_main(["synth", "--out", str(path), "--frames", str(FRAMES), "--size", "64x128",
                     "--quiet"]) == 0
    return path


@pytest.fixture(scope="module")
def perfect_report(gt_bag: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eval_perfect")
    pred = write_prediction_bag(gt_bag, root / "pred")
    assert _evaluate(pred, gt_bag, root / "report") == 0
    return root / "report"


def _metrics(report: Path) -> dict:
    return json.loads((report / "metrics.json").read_text())


def test_ground_truth_scored_against_itself_is_perfect_in_every_task(perfect_report: Path) -> None:
    m = _metrics(perfect_report)
    assert m["frames"] == {"in": FRAMES, "out": FRAMES, "dropped": 0, "per_output": {
        name: FRAMES for name in ("depth", "semantic", "instances", "panoptic", "motion_mask",
                                  "scene_flow", "odometry", "steering/angle")}}
    assert m["depth"] == {"abs_rel": 0.0, "sq_rel": 0.0, "rmse": 0.0, "rmse_log": 0.0,
                          "a1": 1.0, "a2": 1.0, "a3": 1.0}
    assert m["semantic"]["miou"] == 1.0 and set(m["semantic"]["per_class"].values()) == {1.0}
    assert m["panoptic"] == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "pq_things": 1.0, "pq_stuff": 1.0}
    assert m["motion"] == {"iou": 1.0, "precision": 1.0, "recall": 1.0}
    assert m["scene_flow"] == {"epe3d": 0.0, "acc_strict": 1.0, "acc_relaxed": 1.0, "outliers": 0.0}
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in m["odometry"].values())
    assert m["steering"] == {"rmse_deg": 0.0, "mae_deg": 0.0}
    # the helper's latencies are 10 + frame index ms: nearest-rank percentiles of 10..15
    assert m["latency_ms"] == {"p50": 12.0, "p95": 15.0, "p99": 15.0}


def test_baselines_are_the_constant_predictions_scored_by_the_same_metrics(
        perfect_report: Path, gt_bag: Path) -> None:
    base = _metrics(perfect_report)["baselines"]
    depths = read_gt_images(gt_bag, "depth")
    valid = np.concatenate([d[np.isfinite(d) & (d > 1e-3) & (d <= 80.0)] for d in depths])
    mean_depth = float(valid.astype(np.float64).mean())
    per_image = [depth_errors(np.full(d.shape, mean_depth, np.float32),
                              np.where(np.isfinite(d), d, 0.0)) for d in depths]
    assert base["depth"]["abs_rel"] == pytest.approx(np.mean([e.abs_rel for e in per_image]), rel=1e-6)
    semantic = np.stack(read_gt_images(gt_bag, "semantic"))
    counts = np.bincount(semantic.ravel(), minlength=256)
    most = int(np.argmax(counts))
    present = [c for c in np.flatnonzero(counts) if c != 255]
    assert base["semantic"]["miou"] == pytest.approx(counts[most] / semantic.size / len(present))
    motion = np.stack(read_gt_images(gt_bag, "motion_mask"))
    assert motion.any() and base["motion"] == {"iou": 0.0, "precision": None, "recall": 0.0}
    flow = np.stack(read_gt_images(gt_bag, "scene_flow"))
    on_surface = np.isfinite(np.stack(depths))
    assert base["scene_flow"]["epe3d"] == pytest.approx(
        np.linalg.norm(flow[on_surface].astype(np.float64), axis=-1).mean(), rel=1e-6)
    positions = np.stack(read_gt_values(gt_bag, "odometry", pose_of))[:, :3, 3]
    spread = np.sqrt(np.mean(np.sum((positions - positions.mean(0)) ** 2, axis=1)))
    assert base["odometry"]["ate_m"] == pytest.approx(spread, rel=1e-6)
    steering = np.array(read_gt_values(gt_bag, "steering/angle", lambda msg: msg.data), np.float64)
    assert base["steering"]["rmse_deg"] == pytest.approx(math.degrees(np.std(steering)), abs=1e-6)


def test_report_folder_holds_every_file_and_metrics_json_has_exactly_the_fixed_keys(
        perfect_report: Path) -> None:
    assert {p.name for p in perfect_report.iterdir()} == REPORT_FILES
    m = _metrics(perfect_report)
    assert set(m) == set(METRIC_KEYS) | {"baselines"}
    for task, keys in METRIC_KEYS.items():
        assert set(m[task]) == keys, task
    assert set(m["baselines"]) == BASELINE_TASKS
    for task in BASELINE_TASKS:
        assert set(m["baselines"][task]) == METRIC_KEYS[task], task
    with Image.open(perfect_report / "montage.gif") as gif:
        assert gif.n_frames == FRAMES
        still = Image.open(perfect_report / "montage.png")
        assert still.width > 7 * 128 * 0.99 and still.height > 2 * 64   # 7 columns, 2 rows, full size
    summary = (perfect_report / "summary.md").read_text()
    assert "| depth (baseline: mean depth" in summary and "![trajectory seen from above]" in summary


def test_a_report_without_figures_has_the_same_metrics_and_no_images(
        perfect_report: Path, gt_bag: Path, tmp_path: Path) -> None:
    pred = write_prediction_bag(gt_bag, tmp_path / "pred")
    assert _evaluate(pred, gt_bag, tmp_path / "report", "--no-figures") == 0
    assert {p.name for p in (tmp_path / "report").iterdir()} == {"metrics.json", "summary.md"}
    assert _metrics(tmp_path / "report") == _metrics(perfect_report)
    summary = (tmp_path / "report" / "summary.md").read_text()
    assert "![" not in summary and "figures: none" in summary


@pytest.fixture(scope="module")
def corrupted_report(gt_bag: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ground truth with known corruptions: depth x1.25, road labelled sidewalk, steering +1 deg,
    flow +3 cm along x, no motion at all, poses in another odom frame with twice the distances."""
    road, sidewalk = CLASS_ID["road"], CLASS_ID["sidewalk"]
    T_offset = np.eye(4)
    T_offset[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    T_offset[:3, 3] = [5.0, -3.0, 0.2]

    def doubled(T: np.ndarray) -> np.ndarray:
        out = T.copy()
        out[:3, 3] *= 2.0
        return T_offset @ out

    edits = {
        "depth": edit_image(lambda d: d * np.float32(1.25)),
        "semantic": edit_image(lambda s: np.where(s == road, sidewalk, s).astype(np.uint8)),
        "steering/angle": edit_steering(lambda a: a + math.radians(1.0)),
        "scene_flow": edit_image(lambda f: f + np.array([0.03, 0.0, 0.0], np.float32)),
        "motion_mask": edit_image(np.zeros_like),
        "odometry": edit_pose(doubled),
    }
    root = tmp_path_factory.mktemp("eval_corrupt")
    pred = write_prediction_bag(gt_bag, root / "pred", edits=edits)
    assert _evaluate(pred, gt_bag, root / "report", "--max-depth", "250") == 0
    return root / "report"


def test_known_corruptions_give_the_expected_scores(corrupted_report: Path, gt_bag: Path) -> None:
    m = _metrics(corrupted_report)
    assert m["depth"]["abs_rel"] == pytest.approx(0.25, abs=1e-6)
    assert m["depth"]["rmse_log"] == pytest.approx(math.log(1.25), abs=1e-6)
    assert m["depth"]["a2"] == 1.0 and m["depth"]["a3"] == 1.0

    semantic = np.stack(read_gt_images(gt_bag, "semantic"))
    n_road = np.count_nonzero(semantic == CLASS_ID["road"])
    n_sidewalk = np.count_nonzero(semantic == CLASS_ID["sidewalk"])
    per_class = m["semantic"]["per_class"]
    assert per_class["road"] == 0.0
    assert per_class["sidewalk"] == pytest.approx(n_sidewalk / (n_sidewalk + n_road))
    others = [v for k, v in per_class.items() if k not in ("road", "sidewalk")]
    assert others and set(others) == {1.0}
    assert m["semantic"]["miou"] == pytest.approx(np.mean(list(per_class.values())))
    assert m["panoptic"]["pq"] == 1.0                     # panoptic was left as the ground truth

    assert m["steering"]["rmse_deg"] == pytest.approx(1.0, abs=1e-4)
    assert m["steering"]["mae_deg"] == pytest.approx(1.0, abs=1e-4)
    assert m["scene_flow"]["epe3d"] == pytest.approx(0.03, abs=1e-6)
    assert m["scene_flow"]["acc_strict"] == 1.0 and m["scene_flow"]["acc_relaxed"] == 1.0
    assert m["motion"] == {"iou": 0.0, "precision": None, "recall": 0.0} == m["baselines"]["motion"]

    poses = np.stack(read_gt_values(gt_bag, "odometry", pose_of))
    steps = np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)
    assert m["odometry"]["ate_sim3_m"] == pytest.approx(0.0, abs=1e-6)   # a pure scale error
    assert m["odometry"]["ate_m"] > 0.1
    assert m["odometry"]["rpe_trans_m"] == pytest.approx(np.sqrt(np.mean(steps ** 2)), rel=1e-6)
    assert m["odometry"]["rpe_rot_deg"] == pytest.approx(0.0, abs=1e-6)


def test_dropped_frames_and_missing_outputs_are_counted_and_explained(
        gt_bag: Path, tmp_path: Path) -> None:
    pred = write_prediction_bag(gt_bag, tmp_path / "pred", skip_frames=2, latency_ms=None,
                                leave_out=("motion_mask", "scene_flow"))
    report = evaluate_bags(pred, gt_bag, tmp_path / "report", quiet=True)
    m = _metrics(report)
    assert {k: m["frames"][k] for k in ("in", "out", "dropped")} == \
        {"in": FRAMES, "out": FRAMES - 2, "dropped": 2}
    assert "motion_mask" not in m["frames"]["per_output"]
    assert "frames only" not in (report / "summary.md").read_text()
    for task in ("motion", "scene_flow"):
        assert m[task] is None and m["baselines"][task] is None
    assert m["latency_ms"] is None and m["depth"]["abs_rel"] == 0.0
    summary = (report / "summary.md").read_text()
    assert "**motion**: the prediction bag has no `motion_mask` output" in summary
    assert "**latency**: the prediction bag has no `/replay/latency`" in summary
    with Image.open(report / "montage.gif") as gif:
        assert gif.n_frames == FRAMES - 2
    assert not (report / "latency.png").exists()


def test_outputs_lost_for_some_frames_are_counted_per_output_and_named_in_the_summary(
        gt_bag: Path, tmp_path: Path) -> None:
    pred = write_prediction_bag(gt_bag, tmp_path / "pred", latency_ms=None,
                                lost={"semantic": (1, 4), "instances": (2,)})
    report = evaluate_bags(pred, gt_bag, tmp_path / "report", quiet=True)
    frames = _metrics(report)["frames"]
    assert (frames["out"], frames["dropped"]) == (FRAMES, 0)
    assert (frames["per_output"]["semantic"], frames["per_output"]["instances"],
            frames["per_output"]["depth"]) == (FRAMES - 2, FRAMES - 1, FRAMES)
    assert (f"{FRAMES} with outputs, 0 dropped; semantic in {FRAMES - 2}, instances in "
            f"{FRAMES - 1} frames only") in (report / "summary.md").read_text()


def test_headerless_steering_pairs_with_its_frame_when_outputs_arrive_late(
        gt_bag: Path, tmp_path: Path) -> None:
    """As a live recorder logs them: every output 30-35 ms after its stamp, steering 60 ms after,
    closer to the next camera stamp than to its own. Frame i's angle is off by i degrees."""
    frame = iter(range(FRAMES))
    pred = write_prediction_bag(
        gt_bag, tmp_path / "pred",
        edits={"steering/angle": edit_steering(lambda a: a + math.radians(next(frame)))},
        receive_delay_ns={"depth": 30_000_000, "semantic": 30_000_000, "odometry": 35_000_000,
                          "latency": 30_000_000, "steering/angle": 60_000_000})
    report = evaluate_bags(pred, gt_bag, tmp_path / "report", quiet=True)
    steering = _metrics(report)["steering"]
    offsets_deg = np.arange(FRAMES, dtype=np.float64)
    assert steering["mae_deg"] == pytest.approx(offsets_deg.mean(), abs=1e-4)
    assert steering["rmse_deg"] == pytest.approx(np.sqrt(np.mean(offsets_deg ** 2)), abs=1e-4)


def _no_report_left(out: Path) -> bool:
    return not out.exists() and not any(p.name.startswith(f".{out.name}.") for p in out.parent.iterdir())


def test_prediction_bag_without_a_common_stamp_is_refused_with_one_message(
        gt_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = write_prediction_bag(gt_bag, tmp_path / "pred", shift_ns=1_000_000_000_000)
    out = tmp_path / "report"
    assert _evaluate(pred, gt_bag, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unified-perception evaluate: no frame in common") and "\n" not in err
    assert _no_report_left(out)


@pytest.mark.parametrize("role", ["prediction", "ground-truth"])
def test_corrupt_bag_is_refused_with_one_message_and_leaves_no_report(
        gt_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], role: str) -> None:
    pred = write_prediction_bag(gt_bag, tmp_path / "pred")
    broken = pred if role == "prediction" else tmp_path / "gt_copy"
    if role == "ground-truth":
        broken.mkdir()
        for f in gt_bag.iterdir():
            (broken / f.name).write_bytes(f.read_bytes())
    storage = next(broken.glob("*.mcap"))
    data = storage.read_bytes()
    storage.write_bytes(data[: len(data) // 2])            # cut short, as by a full disk
    out = tmp_path / "report"
    gt = gt_bag if role == "prediction" else broken
    assert _evaluate(pred, gt, out) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"unified-perception evaluate: cannot read the {role} bag") and "\n" not in err
    assert _no_report_left(out)


def test_ground_truth_bag_without_ground_truth_is_refused(
        gt_bag: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred = write_prediction_bag(gt_bag, tmp_path / "pred")
    assert _evaluate(gt_bag, pred, tmp_path / "report") == 2     # the roles swapped
    assert "holds no ground-truth topic" in capsys.readouterr().err
    assert _no_report_left(tmp_path / "report")
