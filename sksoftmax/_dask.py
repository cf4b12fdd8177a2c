"""The softmax loss evaluated over the row chunks of dask arrays.

A fit on dask arrays runs the same solvers as a fit in memory: only the
evaluation of the loss differs. The training data are split into their row
chunks once, and each chunk becomes a :class:`~sksoftmax._loss.SoftmaxLoss`
held in the memory of a worker (of the active ``distributed.Client``, else of
dask's default scheduler). An evaluation sends the flat parameter vector
(``(n_features + 1) * n_classes`` floats) to every chunk and sums the
chunks' values and gradients in a tree of additions on the workers; the
client receives one vector of ``n_params`` floats back and never the data.

Each chunk's loss is normalized by its own weight sum ``S_c``, so its
partial value and gradient are scaled by ``S_c / S`` before they add up to
the objective over all rows; the L2 penalty is added once, on the client.
"""

import dask
import dask.array as da
import numpy as np
from sklearn.utils import assert_all_finite
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_feature_names, _check_n_features

from ._loss import ParameterLayout, SoftmaxLoss

# Partial results added per task of the tree reduction.
_SPLIT_EVERY = 8


def _rows_chunked(X):
    """X as float32/float64 with one chunk across columns and known row chunks."""
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-dimensional dask array for X, got {X.ndim} dimension(s)."
        )
    if any(np.isnan(size) for size in X.chunks[0]):
        raise ValueError(
            "X has unknown chunk sizes along its rows (e.g. after boolean "
            "indexing); call X.compute_chunk_sizes() first."
        )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if X.numblocks[1] > 1:
        # Each chunk's loss needs whole rows.
        X = X.rechunk({1: -1})
    return X


def _aligned(v, X, name):
    """v as a 1-d dask array chunked like the rows of X."""
    if not isinstance(v, da.Array):
        v = np.asarray(v)
        if v.ndim == 2 and v.shape[1] == 1:
            v = v.ravel()
        if v.ndim != 1 or v.shape[0] != X.shape[0]:
            raise ValueError(
                f"{name} must have shape ({X.shape[0]},) like the rows of X, "
                f"got {v.shape}."
            )
        return da.from_array(v, chunks=(X.chunks[0],))
    if v.ndim != 1:
        raise ValueError(f"{name} must be a 1-dimensional dask array, got {v.ndim}.")
    if any(np.isnan(size) for size in v.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first."
        )
    if v.shape[0] != X.shape[0]:
        raise ValueError(
            f"{name} has {v.shape[0]} entries but X has {X.shape[0]} rows."
        )
    if v.chunks[0] != X.chunks[0]:
        v = v.rechunk((X.chunks[0],))
    return v


def _encode(labels, classes):
    return np.searchsorted(classes, labels).astype(np.intp)


def _per_sample(y_codes, per_class):
    return per_class[y_codes]


def _class_totals(y_codes, weights, n_classes):
    return np.bincount(y_codes, weights=weights, minlength=n_classes)[None, :]


def validate_fit_data(estimator, X, y, sample_weight):
    """Check dask training data and encode its labels and weights, lazily.

    Computed here are only small summaries of ``y`` and ``sample_weight``: the
    distinct labels, the weight totals per class and the smallest weight.
    ``X`` itself is not computed.

    Returns
    -------
    X : dask array of shape (n_samples, n_features)
    y_codes : dask array of shape (n_samples,), int
    classes : ndarray of shape (n_classes,)
    sample_weight : dask array of shape (n_samples,), float64
        Sample weight times class weight.
    class_totals : ndarray of shape (n_classes,), float64
        Sum of ``sample_weight`` per class.
    """
    from ._classifier import _check_two_classes

    X = _rows_chunked(X)
    _check_n_features(estimator, X, reset=True)
    _check_feature_names(estimator, X, reset=True)
    y = _aligned(y, X, "y")
    classes = da.unique(y).compute()
    check_classification_targets(classes)
    _check_two_classes(classes)
    y_codes = y.map_blocks(_encode, classes, dtype=np.intp)

    if sample_weight is None:
        sample_weight = da.ones(X.shape[0], chunks=(X.chunks[0],))
    elif np.ndim(sample_weight) == 0 and not isinstance(sample_weight, da.Array):
        sample_weight = da.full(X.shape[0], float(sample_weight), chunks=(X.chunks[0],))
    else:
        sample_weight = _aligned(sample_weight, X, "sample_weight").astype(np.float64)
    n_classes = classes.shape[0]
    totals = da.map_blocks(
        _class_totals,
        y_codes,
        sample_weight,
        n_classes,
        new_axis=1,
        chunks=((1,) * y_codes.numblocks[0], (n_classes,)),
        dtype=np.float64,
    ).sum(axis=0)
    totals, smallest, finite = dask.compute(
        totals, sample_weight.min(), da.isfinite(sample_weight).all()
    )
    if not finite:
        raise ValueError("sample_weight contains NaN or infinity.")
    if smallest < 0:
        raise ValueError(
            f"sample_weight must be non-negative; its smallest value is {smallest:g}."
        )
    # Class weights depend on the data only through the weighted class
    # counts, so the data collapsed to one row per class, weighted by those
    # counts, go through the same checks as in-memory data.
    class_totals = estimator._effective_weights(
        totals, classes, classes, np.arange(n_classes)
    )
    if estimator.class_weight is not None:
        per_class = compute_class_weight(
            estimator.class_weight, classes=classes, y=classes, sample_weight=totals
        )
        sample_weight = sample_weight * y_codes.map_blocks(
            _per_sample, per_class, dtype=np.float64
        )
    return X, y_codes, classes, sample_weight, class_totals


class _Chunk:
    """One row chunk's loss, living on a worker.

    It keeps the Hessian-vector product of its last ``hessian_product`` call,
    so that the products at one point reuse its probabilities. The cache is
    an optimization only: a chunk that lost it (copied to another worker)
    recomputes it.
    """

    def __init__(self, X, y_codes, weights, n_classes, fit_intercept):
        assert_all_finite(X, input_name="X")
        self.weight_sum = float(np.sum(weights))
        self.loss = None
        if self.weight_sum > 0:
            self.loss = SoftmaxLoss(
                np.ascontiguousarray(X), y_codes, n_classes, weights, 0.0, fit_intercept
            )
        self._hessp_at = None
        self._hessp = None

    def hessian_product(self, params):
        value, grad, self._hessp = self.loss.hessian_product(params)
        self._hessp_at = params.copy()
        return value, grad


def _chunk_weight_sum(chunk):
    return chunk.weight_sum


def _scaled(chunk, weight_sum, value, grad):
    scale = chunk.weight_sum / weight_sum
    return value * scale, grad * scale


def _chunk_loss_gradient(chunk, params, weight_sum):
    if chunk.loss is None:
        return None
    return _scaled(chunk, weight_sum, *chunk.loss.loss_gradient(params))


def _chunk_hessian_product(chunk, params, weight_sum):
    if chunk.loss is None:
        return None
    return _scaled(chunk, weight_sum, *chunk.hessian_product(params))


def _chunk_hessp(chunk, params, direction, weight_sum):
    if chunk.loss is None:
        return None
    if chunk._hessp_at is None or not np.array_equal(chunk._hessp_at, params):
        chunk.hessian_product(params)
    return _scaled(chunk, weight_sum, 0.0, chunk._hessp(direction))


def _chunk_moments(chunk, weight_sum):
    if chunk.loss is None:
        return None
    mean, var = chunk.loss.column_moments()
    return _scaled(chunk, weight_sum, mean, var + mean**2)


def _chunk_separates(chunk, W, b):
    if chunk.loss is None:
        return True
    return chunk.loss.separates(W, b)


def _add(*parts):
    parts = [part for part in parts if part is not None]
    if not parts:
        return None
    first, second = parts[0]
    return sum(p[0] for p in parts[1:]) + first, sum(p[1] for p in parts[1:]) + second


def _all(*flags):
    return all(flags)


def _tree(combine, parts):
    """Combine delayed parts in a tree, ``_SPLIT_EVERY`` at a time."""
    while len(parts) > 1:
        parts = [
            dask.delayed(combine)(*parts[i : i + _SPLIT_EVERY])
            for i in range(0, len(parts), _SPLIT_EVERY)
        ]
    return parts[0]


class DaskSoftmaxLoss(ParameterLayout):
    """:class:`~sksoftmax._loss.SoftmaxLoss` over the row chunks of dask arrays.

    The same objective, gradient and Hessian-vector product, with the
    interface the solvers use. Construction computes each chunk once and
    keeps it in the workers' memory (``dask.persist``).

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
        float32 or float64, one chunk across the columns, known row chunks.
    y : dask array of shape (n_samples,)
        Integer class codes, chunked like the rows of X.
    n_classes : int
    sample_weight : dask array of shape (n_samples,)
        Non-negative weights with a positive sum, chunked like the rows of X.
    l2_reg_strength : float
    fit_intercept : bool
    """

    def __init__(self, X, y, n_classes, sample_weight, l2_reg_strength, fit_intercept):
        self.n_classes = n_classes
        self.l2_reg_strength = float(l2_reg_strength)
        self.fit_intercept = fit_intercept
        self.dtype = X.dtype
        self.n_features = X.shape[1]
        build = dask.delayed(_Chunk)
        chunks = [
            build(X_part, y_part, w_part, n_classes, fit_intercept)
            for X_part, y_part, w_part in zip(
                X.to_delayed().ravel(), y.to_delayed(), sample_weight.to_delayed()
            )
        ]
        self._chunks = dask.persist(*chunks)
        # Also where a non-finite X is reported, from the worker that saw it.
        sums = dask.compute(
            *[dask.delayed(_chunk_weight_sum)(c) for c in self._chunks]
        )
        self.weight_sum = float(np.sum(sums))

    def _reduce(self, func, *args):
        """``func(chunk, *args)`` on every chunk, summed in a tree on the workers."""
        # One graph node per argument: each is sent to the workers once, not
        # once per chunk. Keys are random (not pure): a repeated evaluation at
        # the same point must not collide with the previous one's keys while
        # the scheduler still releases them.
        args = [dask.delayed(arg) for arg in args]
        task = dask.delayed(func)
        return dask.compute(_tree(_add, [task(c, *args) for c in self._chunks]))[0]

    def column_moments(self):
        """Weighted mean and variance of each column of ``X``, float64."""
        mean, mean_sq = self._reduce(_chunk_moments, self.weight_sum)
        return mean, np.maximum(mean_sq - mean**2, 0.0)

    def _penalized(self, value, grad, params):
        W, _ = self.unpack(params)
        grad_W, grad_b = self.unpack(grad)
        grad_W += self.l2_reg_strength * W
        if not self.fit_intercept:
            grad_b[...] = 0.0
        return value + 0.5 * self.l2_reg_strength * float(np.vdot(W, W)), grad

    def loss_gradient(self, params):
        """Objective value (float) and gradient (float64) at ``params``."""
        value, grad = self._reduce(_chunk_loss_gradient, params, self.weight_sum)
        return self._penalized(float(value), grad, params)

    def hessian_product(self, params):
        """Objective, gradient and a Hessian-vector product function at ``params``.

        Each chunk keeps its probabilities at ``params`` on its worker, so a
        product costs two passes over the data, as in memory.
        """
        value, grad = self._reduce(_chunk_hessian_product, params, self.weight_sum)
        params = params.copy()

        def hessp(direction):
            _, product = self._reduce(_chunk_hessp, params, direction, self.weight_sum)
            return self._penalized(0.0, product, direction)[1]

        return (*self._penalized(float(value), grad, params), hessp)

    def separates(self, W, b):
        """Whether ``(W, b)`` ranks every weighted sample's class first."""
        flags = [
            dask.delayed(_chunk_separates)(c, W, b) for c in self._chunks
        ]
        return bool(dask.compute(_tree(_all, flags))[0])


def _predict_block(block, estimator, method):
    return getattr(estimator, method)(block)


def predict_lazily(estimator, method, X):
    """``estimator.method`` mapped over the row chunks of ``X``, lazily."""
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-dimensional dask array for X, got {X.ndim} dimension(s)."
        )
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    n_classes = estimator.classes_.shape[0]
    dtype = np.float32 if X.dtype == np.float32 else np.float64
    if method == "predict":
        dtype = estimator.classes_.dtype
    if method == "predict" or (method == "decision_function" and n_classes == 2):
        return X.map_blocks(
            _predict_block, estimator, method, drop_axis=1, dtype=dtype,
            meta=np.empty((0,), dtype=dtype),
        )
    return X.map_blocks(
        _predict_block, estimator, method, chunks=(X.chunks[0], (n_classes,)),
        dtype=dtype, meta=np.empty((0, 0), dtype=dtype),
    )
