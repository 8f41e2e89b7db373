"""3D scene flow metrics: end-point error and accuracy / outlier rates.

Definitions of FlowNet3D (Liu et al., CVPR 2019) as evaluated by HPLFlowNet (Gu et al., CVPR 2019,
``evaluation_utils.evaluate_3d``), per point with ``EPE = |pred - gt|`` (m) and relative error
``rel = EPE / |gt|``:

* ``epe3d``: mean EPE (m);
* ``acc_strict``: fraction with ``EPE < 0.05 m`` OR ``rel < 0.05``;
* ``acc_relaxed``: fraction with ``EPE < 0.1 m`` OR ``rel < 0.1``;
* ``outliers``: fraction with ``EPE > 0.3 m`` OR ``rel > 0.1``.

Edge convention: the comparisons are exactly these strict ones, so an EPE of exactly 0.05 m is not
strict-accurate and an EPE of exactly 0.3 m is not an outlier. Unlike HPLFlowNet's code, which
divides by ``|gt| + 1e-4``, the relative error is exact; where ``|gt| = 0`` it is 0 if ``EPE = 0`` and
infinite otherwise. So on points without true motion (the static background of independent flow)
any error at all makes an outlier, as it nearly does in HPLFlowNet's code (``EPE / 1e-4``): read
the outlier rate of independent flow on the moving points. Computed in float64; figures pool all
evaluated points of all frames (each point weighs the same). Points whose ground truth is not
finite are not evaluated; a non-finite prediction at an evaluated point is an error.
"""

from __future__ import annotations

import numpy as np

STRICT_EPE_M, STRICT_REL = 0.05, 0.05
RELAXED_EPE_M, RELAXED_REL = 0.1, 0.1
OUTLIER_EPE_M, OUTLIER_REL = 0.3, 0.1


def flow_point_errors(pred_flow_m: np.ndarray, gt_flow_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(EPE [...] m, relative error [...])`` of ``[..., 3]`` flows (m), float64 (see module docstring)."""
    pred = np.asarray(pred_flow_m, dtype=np.float64)
    gt = np.asarray(gt_flow_m, dtype=np.float64)
    diff = pred - gt
    epe = np.sqrt(np.sum(diff * diff, axis=-1))
    gt_norm = np.sqrt(np.sum(gt * gt, axis=-1))
    relative = np.divide(epe, gt_norm, out=np.where(epe > 0.0, np.inf, 0.0), where=gt_norm > 0.0)
    return epe, relative


class _FlowSums:
    """Point count and sums of EPE and of the three threshold indicators."""

    def __init__(self) -> None:
        self.points = 0
        self.epe_sum = 0.0
        self.strict = self.relaxed = self.outliers = 0

    def add(self, epe: np.ndarray, relative: np.ndarray) -> None:
        self.points += int(epe.size)
        self.epe_sum += float(np.sum(epe))
        self.strict += int(np.count_nonzero((epe < STRICT_EPE_M) | (relative < STRICT_REL)))
        self.relaxed += int(np.count_nonzero((epe < RELAXED_EPE_M) | (relative < RELAXED_REL)))
        self.outliers += int(np.count_nonzero((epe > OUTLIER_EPE_M) | (relative > OUTLIER_REL)))

    def merge(self, other: _FlowSums) -> None:
        self.points += other.points
        self.epe_sum += other.epe_sum
        self.strict += other.strict
        self.relaxed += other.relaxed
        self.outliers += other.outliers

    def result(self) -> dict[str, float]:
        if not self.points:
            return dict.fromkeys(("epe3d", "acc_strict", "acc_relaxed", "outliers"), float("nan"))
        return {"epe3d": self.epe_sum / self.points, "acc_strict": self.strict / self.points,
                "acc_relaxed": self.relaxed / self.points, "outliers": self.outliers / self.points}


class SceneFlowAccumulator:
    """Scene flow EPE / accuracy / outliers over all valid points, and over the moving ones."""

    def __init__(self) -> None:
        self.all = _FlowSums()
        self.moving = _FlowSums()

    def update(self, pred_flow: np.ndarray, gt_flow: np.ndarray, valid: np.ndarray | None,
               moving: np.ndarray | None) -> None:
        """Add one frame.

        ``pred_flow``, ``gt_flow``: ``[H, W, 3]`` (or ``[N, H, W, 3]``) 3D motion in metres (the
        contract's ``[N, 3, H, W]`` moved to channels-last). ``valid``: ``[H, W]`` bool, the points
        with ground truth (None = all with finite ground truth). ``moving``: ``[H, W]`` bool, the
        independently moving points, scored again under "moving" (None = none).
        """
        shape = np.shape(gt_flow)
        if np.shape(pred_flow) != shape or len(shape) < 2 or shape[-1] != 3:
            raise ValueError(f"scene flows need the same [..., 3] shape, got {np.shape(pred_flow)} "
                             f"and {shape}")
        for name, mask in (("valid", valid), ("moving", moving)):
            if mask is not None and np.shape(mask) != shape[:-1]:
                raise ValueError(f"{name} mask needs shape {shape[:-1]}, got {np.shape(mask)}")
        gt_flow, pred_flow = np.asarray(gt_flow), np.asarray(pred_flow)
        keep = np.all(np.isfinite(gt_flow), axis=-1)
        if valid is not None:
            keep &= np.asarray(valid, dtype=bool)
        if not np.all(np.isfinite(pred_flow[keep])):
            raise ValueError("predicted scene flow is NaN or infinite at evaluated points; check the "
                             "model output before scoring")
        epe, relative = flow_point_errors(pred_flow[keep], gt_flow[keep])
        self.all.add(epe, relative)
        if moving is not None:
            is_moving = np.asarray(moving, dtype=bool)[keep]
            self.moving.add(epe[is_moving], relative[is_moving])

    def result(self) -> dict:
        """``{"epe3d" (m), "acc_strict", "acc_relaxed", "outliers", "moving": {same keys}}``;
        NaN where no point was evaluated."""
        return {**self.all.result(), "moving": self.moving.result()}

    def merge(self, other: SceneFlowAccumulator) -> None:
        """Add ``other``'s points."""
        self.all.merge(other.all)
        self.moving.merge(other.moving)
