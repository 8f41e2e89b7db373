"""Monocular depth error metrics (Eigen et al. 2014) and their accumulation over a data set.

Definitions follow D. Eigen, C. Puhrsch, R. Fergus, "Depth Map Prediction from a Single Image using a
Multi-Scale Deep Network", NeurIPS 2014, Sec. 4, and the evaluation protocol of monodepth2 (Godard et
al., ICCV 2019, ``evaluate_depth.py``): per image, over the pixels whose ground truth ``d*`` lies in
``(min_depth_m, max_depth_m]``, with the prediction ``d`` optionally median-scaled and then clamped to
``[min_depth_m, max_depth_m]``:

* ``abs_rel  = mean(|d - d*| / d*)``
* ``sq_rel   = mean((d - d*)^2 / d*)`` (m)
* ``rmse     = sqrt(mean((d - d*)^2))`` (m)
* ``rmse_log = sqrt(mean((ln d - ln d*)^2))``
* ``a_k      = mean(max(d / d*, d* / d) < 1.25^k)`` for k = 1, 2, 3 (strict ``<``)

A data set's figures are the mean of the per-image figures (the Eigen protocol), not a pool of
pixels. Image crops (Eigen / Garg crop for KITTI, the Cityscapes crop) are the caller's job: pass the
cropped arrays. All computation is in float64.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import numpy as np

DEPTH_METRIC_NAMES: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
"""The keys of :meth:`DepthErrors.as_dict` and :meth:`DepthAccumulator.result`, in that order."""

DELTA_THRESHOLD = 1.25
"""Base of the accuracy thresholds ``1.25``, ``1.25^2``, ``1.25^3`` (Eigen et al. 2014)."""


@dataclass(frozen=True)
class DepthErrors:
    """Eigen et al. 2014 depth metrics of one image (or their mean over images).

    ``abs_rel``, ``rmse_log`` and ``a1..a3`` have no unit (``a*`` are fractions in [0, 1]);
    ``sq_rel`` and ``rmse`` are in metres.
    """

    abs_rel: float
    sq_rel: float
    rmse: float
    rmse_log: float
    a1: float
    a2: float
    a3: float

    def as_dict(self) -> dict[str, float]:
        """``{name: value}`` with the keys of :data:`DEPTH_METRIC_NAMES`."""
        return asdict(self)


class DepthByDistance(NamedTuple):
    """Mean AbsRel per ground-truth distance bin.

    ``bin_edges_m``: ``[B + 1]`` (m); bin ``i`` holds pixels with ``edges[i] < d* <= edges[i + 1]``.
    ``abs_rel``: ``[B]`` pixel mean of ``|d - d*| / d*`` in each bin (NaN for an empty bin).
    ``counts``: ``[B] int64`` pixels in each bin.
    """

    bin_edges_m: np.ndarray
    abs_rel: np.ndarray
    counts: np.ndarray


def _check_range(min_depth_m: float, max_depth_m: float) -> None:
    if not 0.0 < min_depth_m < max_depth_m:
        raise ValueError(f"depth range needs 0 < min_depth_m < max_depth_m, got "
                         f"min_depth_m={min_depth_m}, max_depth_m={max_depth_m}")


def _valid_pairs(pred_m: np.ndarray, gt_m: np.ndarray, min_depth_m: float, max_depth_m: float,
                 median_scaling: bool) -> tuple[np.ndarray, np.ndarray]:
    """The evaluated ``(pred, gt)`` pixels of one image, ``[M] float64`` each (M may be 0).

    Valid pixels have ``gt`` in ``(min_depth_m, max_depth_m]`` (NaN / inf ground truth is invalid);
    ``pred`` is median-scaled (``median(gt) / median(pred)`` over the valid pixels, monodepth2) when
    asked, then clamped to ``[min_depth_m, max_depth_m]``.
    """
    pred = np.asarray(pred_m, dtype=np.float64)
    gt = np.asarray(gt_m, dtype=np.float64)
    valid = (gt > min_depth_m) & (gt <= max_depth_m)
    pred, gt = pred[valid], gt[valid]
    if not np.all(np.isfinite(pred)):
        raise ValueError(f"predicted depth is NaN or infinite at {int(np.sum(~np.isfinite(pred)))} "
                         "pixels with valid ground truth; check the model output before scoring")
    if median_scaling and gt.size:
        median_pred = np.median(pred)
        if median_pred <= 0.0:
            raise ValueError(f"median scaling needs a positive median predicted depth, got "
                             f"{median_pred}; pass median_scaling=False or check the prediction")
        pred = pred * (np.median(gt) / median_pred)
    return np.clip(pred, min_depth_m, max_depth_m), gt


def _errors_of_pairs(pred: np.ndarray, gt: np.ndarray) -> DepthErrors:
    """Eigen metrics of matched ``[M]`` predicted and true depths (m), ``M > 0``."""
    ratio = np.maximum(gt / pred, pred / gt)
    diff = pred - gt
    log_diff = np.log(pred) - np.log(gt)
    return DepthErrors(
        abs_rel=float(np.mean(np.abs(diff) / gt)),
        sq_rel=float(np.mean(diff * diff / gt)),
        rmse=float(np.sqrt(np.mean(diff * diff))),
        rmse_log=float(np.sqrt(np.mean(log_diff * log_diff))),
        a1=float(np.mean(ratio < DELTA_THRESHOLD)),
        a2=float(np.mean(ratio < DELTA_THRESHOLD ** 2)),
        a3=float(np.mean(ratio < DELTA_THRESHOLD ** 3)),
    )


def _check_shapes(pred_m: np.ndarray, gt_m: np.ndarray, dims: tuple[int, ...]) -> None:
    if np.shape(pred_m) != np.shape(gt_m) or np.ndim(gt_m) not in dims:
        raise ValueError(f"predicted and true depth need the same shape with {' or '.join(map(str, dims))} "
                         f"dimensions, got {np.shape(pred_m)} and {np.shape(gt_m)}")


def depth_errors(pred_m: np.ndarray, gt_m: np.ndarray, *, min_depth_m: float = 1e-3,
                 max_depth_m: float = 80.0, median_scaling: bool = False) -> DepthErrors:
    """Eigen et al. (NeurIPS 2014) depth metrics of one image (monodepth2's protocol).

    ``pred_m``, ``gt_m``: ``[H, W]`` depth in metres (any float dtype). Pixels with ``gt_m`` in
    ``(min_depth_m, max_depth_m]`` are scored; with ``median_scaling`` the prediction is first
    multiplied by ``median(gt) / median(pred)`` over those pixels (for scale-ambiguous monocular
    models), then clamped to ``[min_depth_m, max_depth_m]``. See the module docstring for the
    formulas. Raises ValueError when no pixel has valid ground truth.
    """
    _check_range(min_depth_m, max_depth_m)
    _check_shapes(pred_m, gt_m, (2,))
    pred, gt = _valid_pairs(pred_m, gt_m, min_depth_m, max_depth_m, median_scaling)
    if gt.size == 0:
        raise ValueError(f"no pixel has ground-truth depth in ({min_depth_m}, {max_depth_m}] m; "
                         "check the ground truth or the depth range")
    return _errors_of_pairs(pred, gt)


def default_distance_bins(max_depth_m: float = 80.0, bin_width_m: float = 10.0) -> np.ndarray:
    """``[B + 1]`` bin edges (m) from 0 to ``max_depth_m`` every ``bin_width_m`` (last bin may be shorter)."""
    edges = np.arange(0.0, max_depth_m, bin_width_m)
    return np.append(edges, max_depth_m)


def _bin_abs_rel(pred: np.ndarray, gt: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin ``(sum of |d - d*| / d*, pixel count)``, bins ``edges[i] < d* <= edges[i + 1]``."""
    bins = edges.size - 1
    index = np.searchsorted(edges, gt, side="left") - 1
    inside = (index >= 0) & (index < bins)
    index = index[inside]
    abs_rel = np.abs(pred[inside] - gt[inside]) / gt[inside]
    return (np.bincount(index, weights=abs_rel, minlength=bins),
            np.bincount(index, minlength=bins).astype(np.int64))


def _checked_edges(bin_edges_m: np.ndarray) -> np.ndarray:
    edges = np.asarray(bin_edges_m, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError(f"distance bin edges must be a strictly increasing 1-D list of at least two "
                         f"values (m), got {bin_edges_m!r}")
    return edges


def depth_error_by_distance(pred_m: np.ndarray, gt_m: np.ndarray, bin_edges_m: np.ndarray, *,
                            min_depth_m: float = 1e-3, max_depth_m: float = 80.0,
                            median_scaling: bool = False) -> DepthByDistance:
    """Pixel-mean AbsRel (Eigen et al. 2014) per ground-truth distance bin of one image.

    ``pred_m``, ``gt_m``: ``[H, W]`` metres, prepared exactly as in :func:`depth_errors` (valid
    range, median scaling, clamping). ``bin_edges_m``: ``[B + 1]`` increasing edges (m); bin ``i``
    holds ``edges[i] < d* <= edges[i + 1]``, pixels outside all bins are not counted.
    """
    _check_range(min_depth_m, max_depth_m)
    _check_shapes(pred_m, gt_m, (2,))
    edges = _checked_edges(bin_edges_m)
    pred, gt = _valid_pairs(pred_m, gt_m, min_depth_m, max_depth_m, median_scaling)
    sums, counts = _bin_abs_rel(pred, gt, edges)
    return DepthByDistance(edges, _safe_mean(sums, counts), counts)


def _safe_mean(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``sums / counts`` with NaN where ``counts`` is 0."""
    return np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)


class DepthAccumulator:
    """Eigen et al. (2014) depth metrics over a data set, in constant memory.

    Each image is scored as by :func:`depth_errors`; :meth:`result` is the MEAN OVER IMAGES of the
    per-image metrics (the Eigen / monodepth2 protocol), so every image weighs the same whatever its
    number of valid pixels. Images without any valid ground-truth pixel are skipped and counted in
    :attr:`images_skipped`. :meth:`by_distance` additionally pools AbsRel over all pixels per
    ground-truth distance bin (a pixel mean, for the "depth error by distance" plot).
    """

    def __init__(self, min_depth_m: float = 1e-3, max_depth_m: float = 80.0,
                 median_scaling: bool = False, distance_bins_m: np.ndarray | None = None) -> None:
        """``distance_bins_m``: ``[B + 1]`` edges for :meth:`by_distance` (m); default every 10 m
        from 0 to ``max_depth_m``."""
        _check_range(min_depth_m, max_depth_m)
        self.min_depth_m = float(min_depth_m)
        self.max_depth_m = float(max_depth_m)
        self.median_scaling = bool(median_scaling)
        self.bin_edges_m = _checked_edges(
            default_distance_bins(max_depth_m) if distance_bins_m is None else distance_bins_m)
        self._sums = np.zeros(len(DEPTH_METRIC_NAMES))
        self.num_images = 0
        self.images_skipped = 0
        self._bin_sums = np.zeros(self.bin_edges_m.size - 1)
        self._bin_counts = np.zeros(self.bin_edges_m.size - 1, dtype=np.int64)

    def update(self, pred_m: np.ndarray, gt_m: np.ndarray) -> None:
        """Score ``[H, W]`` or ``[N, H, W]`` predicted against true depth (m); each image separately."""
        _check_shapes(pred_m, gt_m, (2, 3))
        pred_m, gt_m = np.asarray(pred_m), np.asarray(gt_m)
        if gt_m.ndim == 2:
            pred_m, gt_m = pred_m[None], gt_m[None]
        for pred_image, gt_image in zip(pred_m, gt_m):
            pred, gt = _valid_pairs(pred_image, gt_image, self.min_depth_m, self.max_depth_m,
                                    self.median_scaling)
            if gt.size == 0:
                self.images_skipped += 1
                continue
            self._sums += np.array(list(_errors_of_pairs(pred, gt).as_dict().values()))
            self.num_images += 1
            sums, counts = _bin_abs_rel(pred, gt, self.bin_edges_m)
            self._bin_sums += sums
            self._bin_counts += counts

    def result(self) -> dict[str, float]:
        """Mean over images of each metric, keys :data:`DEPTH_METRIC_NAMES` (NaN before any image)."""
        means = self._sums / self.num_images if self.num_images else np.full(self._sums.shape, np.nan)
        return {name: float(value) for name, value in zip(DEPTH_METRIC_NAMES, means)}

    def by_distance(self) -> DepthByDistance:
        """``(bin_edges_m [B+1], abs_rel_per_bin [B] (NaN where empty), counts [B])`` over all images."""
        return DepthByDistance(self.bin_edges_m.copy(), _safe_mean(self._bin_sums, self._bin_counts),
                               self._bin_counts.copy())

    def merge(self, other: DepthAccumulator) -> None:
        """Add ``other``'s images (same depth range, scaling and bins) to this accumulator."""
        if (other.min_depth_m, other.max_depth_m, other.median_scaling) != (
                self.min_depth_m, self.max_depth_m, self.median_scaling) or not np.array_equal(
                other.bin_edges_m, self.bin_edges_m):
            raise ValueError("cannot merge depth accumulators with different depth ranges, median "
                             "scaling or distance bins")
        self._sums += other._sums
        self.num_images += other.num_images
        self.images_skipped += other.images_skipped
        self._bin_sums += other._bin_sums
        self._bin_counts += other._bin_counts
