"""How much of the synthetic drives' steering angle one frame can explain, with privileged inputs.

The steering study's head reaches about 0.76 x the mean-angle baseline. This probe asks what a
linear model gets from ground truth instead of a latent, on the same 4-fold split over the training
drives (``train.steering_folds.split_folds``), frame by frame:

* ``road layout``: the fraction of road and of sidewalk pixels in each cell of a 12 x 40 grid over
  the frame's ground-truth semantic labels (what a perfect segmentation of one frame shows);
* ``yaw rate``: the camera's rotation about its vertical axis between the previous frame and this
  one, from the ground-truth poses (what a perfect ego-motion estimate gives);
* both together.

Ridge regression on standardised features, for each of a few penalties (all reported; no penalty
is picked on the test folds). Errors in degrees, mean over folds, next to the training folds'
mean angle.

    python benchmarks/probe_steering_signal.py [--data data/synthetic] [--seeds 1-24]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from tqdm import tqdm

from unified_perception.contract import CLASS_ID
from unified_perception.data.factory import open_dataset
from unified_perception.data.sample import POSE_FRAME_CAMERA
from unified_perception.train.steering_folds import split_folds
from unified_perception.train.synthetic_bags import synthetic_bag_name

GRID = (12, 40)
PENALTIES = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


def _seeds(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def yaw_between(T_odom_prev: np.ndarray, T_odom_cur: np.ndarray, pose_frame: str) -> float:
    """Rotation (rad) about the vertical axis from the previous pose to the current one: the
    camera's y axis for optical-frame poses (y down), the base's z axis otherwise (z up)."""
    R = (np.linalg.inv(T_odom_prev) @ T_odom_cur)[:3, :3]
    if pose_frame == POSE_FRAME_CAMERA:
        return float(math.atan2(R[0, 2], R[2, 2]))
    return float(math.atan2(R[1, 0], R[0, 0]))


def road_layout(semantic: np.ndarray, grid: tuple[int, int] = GRID) -> np.ndarray:
    """``[2 * rows * cols]``: the fraction of road and of sidewalk pixels per grid cell."""
    h, w = semantic.shape
    rows, cols = grid
    crop = semantic[: h - h % rows, : w - w % cols]
    cells = []
    for name in ("road", "sidewalk"):
        mask = (crop == CLASS_ID[name]).astype(np.float32)
        cells.append(mask.reshape(rows, mask.shape[0] // rows, cols, mask.shape[1] // cols)
                     .mean(axis=(1, 3)).ravel())
    return np.concatenate(cells)


def read_drive(path: Path) -> dict[str, np.ndarray]:
    """Per frame with a previous frame: road layout, yaw rate (rad) and steering (deg)."""
    data = open_dataset("rosbag", path, offsets=(-1, 0))
    layout, yaw, steering = [], [], []
    for i in range(len(data)):
        sample = data[i]
        if sample.semantic is None or sample.poses is None or sample.steering_rad is None:
            continue
        layout.append(road_layout(sample.semantic))
        yaw.append(yaw_between(sample.poses[0], sample.poses[1], sample.pose_frame))
        steering.append(math.degrees(float(sample.steering_rad[-1])))
    return {"road layout": np.array(layout), "yaw rate": np.array(yaw)[:, None],
            "steering_deg": np.array(steering)}


def ridge_rmse(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
               penalty: float) -> float:
    """Test RMSE of ridge regression on features standardised with the training statistics."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    a, b = (train_x - mean) / std, (test_x - mean) / std
    weights = np.linalg.solve(a.T @ a + penalty * np.eye(a.shape[1]), a.T @ (train_y - train_y.mean()))
    return float(np.sqrt(np.mean((b @ weights + train_y.mean() - test_y) ** 2)))


def probe(drives: list[dict[str, np.ndarray]], folds: int, seed: int) -> dict[str, object]:
    """Mean test RMSE over folds per feature set and penalty, and the mean-angle baseline."""
    for drive in drives:
        drive["both"] = np.concatenate([drive["road layout"], drive["yaw rate"]], axis=1)
    split = split_folds(len(drives), folds, seed)
    stack = lambda key, ids: np.concatenate([drives[i][key] for i in ids])  # noqa: E731
    results: dict[str, dict[str, float]] = {}
    baseline = []
    for test in split:
        train = [i for i in range(len(drives)) if i not in test]
        y, y_test = stack("steering_deg", train), stack("steering_deg", test)
        baseline.append(float(np.sqrt(np.mean((y_test - y.mean()) ** 2))))
        for key in ("road layout", "yaw rate", "both"):
            for penalty in PENALTIES:
                rmse = ridge_rmse(stack(key, train), y, stack(key, test), y_test, penalty)
                results.setdefault(key, {}).setdefault(str(penalty), 0.0)
                results[key][str(penalty)] += rmse / len(split)
    return {"folds": folds, "drives": len(drives), "baseline_rmse_deg": float(np.mean(baseline)),
            "ridge_rmse_deg": results}


def table(result: dict[str, object]) -> str:
    lines = [f"Steering from ground truth, {result['folds']}-fold over {result['drives']} drives, one "
             f"frame, ridge regression; test RMSE (deg), mean over folds. Mean-angle baseline: "
             f"{result['baseline_rmse_deg']:.3f} deg.", "",
             "| features | " + " | ".join(f"penalty {p:g}" for p in PENALTIES) + " |",
             "|---|" + "---:|" * len(PENALTIES)]
    for key, by_penalty in result["ridge_rmse_deg"].items():
        lines.append(f"| {key} | " + " | ".join(f"{v:.3f}" for v in by_penalty.values()) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--seeds", default="1-24", help="training drive seeds, FIRST-LAST")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--size", default="96x320")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="fold split seed (the steering stage's)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    paths = [args.data / synthetic_bag_name(s, args.frames, (height, width)) for s in _seeds(args.seeds)]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        parser.error(f"missing drives {missing[:3]}...: train the synthetic chain first (it renders "
                     f"them) or pass --data / --seeds")
    drives = [read_drive(p) for p in tqdm(paths, desc="read drives")]
    result = probe(drives, args.folds, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe_steering_signal.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "probe_steering_signal.md").write_text(table(result))
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
