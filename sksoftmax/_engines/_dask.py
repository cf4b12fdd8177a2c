"""The loss engine over the row chunks of Dask arrays.

A fit on Dask arrays runs the same solvers as a fit in memory: only the
evaluation of the loss differs. The training data are split into their row
chunks once, and each chunk becomes a
:class:`~sksoftmax._engines._numpy.NumPyEngine` held in the memory of a worker
(of the active ``distributed.Client``, else of dask's default scheduler). An
evaluation sends the flat parameter vector (``(n_features + 1) * n_classes``
floats) to every chunk and sums the chunks' values and gradients in a tree of
additions on the workers; the client receives one vector of ``n_params``
floats back and never the data.

Each chunk's engine is normalized by its own weight sum ``S_c``, so its
results are scaled by ``S_c / S`` before they add up to the mean over all
rows.
"""

import asyncio
import math
from collections.abc import Callable

import dask
import dask.array as da
import numpy as np
from scipy import sparse
from sklearn.utils import assert_all_finite
from sklearn.utils.multiclass import check_classification_targets

from .._validation import (
    canonical_sparse,
    check_class_totals,
    check_groups_given,
    check_inference_labels,
    check_label_values,
    check_two_classes,
    check_weight_sum,
    class_weight_factors,
    cluster_codes,
    cluster_ways,
    validate_training_X,
)
from ._array_api import ArrayAPIEngine
from ._base import ParameterLayout, TrainingData
from ._numpy import NumPyEngine

# Partial results added per task of the tree reduction.
_SPLIT_EVERY = 8


def _aligned(v, row_chunks, name):
    """v as a 1-d dask array chunked like the rows of X, ``row_chunks``."""
    n_rows = sum(row_chunks)
    if not isinstance(v, da.Array):
        v = np.asarray(v)
        if v.ndim == 2 and v.shape[1] == 1:
            v = v.ravel()
        if v.ndim != 1 or v.shape[0] != n_rows:
            raise ValueError(
                f"{name} must have shape ({n_rows},) like the rows of X, got {v.shape}."
            )
        return da.from_array(v, chunks=(row_chunks,))
    if v.ndim != 1:
        raise ValueError(f"{name} must be a 1-dimensional dask array, got {v.ndim}.")
    if any(np.isnan(size) for size in v.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first."
        )
    if v.shape[0] != n_rows:
        raise ValueError(f"{name} has {v.shape[0]} entries but X has {n_rows} rows.")
    if v.chunks[0] != row_chunks:
        v = v.rechunk((row_chunks,))
    return v


def _encode(labels, classes):
    return np.searchsorted(classes, labels).astype(np.intp)


def _per_sample(y_codes, per_class):
    return per_class[y_codes]


def _class_totals(y_codes, weights, n_classes):
    return np.bincount(y_codes, weights=weights, minlength=n_classes)[None, :]


def training_data(X, y, sample_weight, *, class_weight, fit_intercept):
    """Labels, weights and the engine of Dask training data.

    Computed here are only small summaries of ``y`` and ``sample_weight``: the
    distinct labels, the weight totals per class and the smallest weight.
    ``X`` itself is persisted on the workers by the engine, not computed.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
        Chunked by rows (see :func:`rows_chunked`).
    y, sample_weight : dask or NumPy arrays of shape (n_samples,)
    class_weight : dict, "balanced" or None
    fit_intercept : bool

    Returns
    -------
    TrainingData
    """
    y = _aligned(y, X.chunks[0], "y")
    if y.dtype.kind == "O":
        # Missing or mixed labels break the sort behind da.unique on a
        # worker; one column of labels is checked on the client instead.
        check_label_values(y.compute())
    classes = da.unique(y).compute()
    check_classification_targets(classes)
    check_two_classes(classes)
    y_codes = y.map_blocks(_encode, classes, dtype=np.intp)

    if sample_weight is None:
        sample_weight = da.ones(X.shape[0], chunks=(X.chunks[0],))
    elif np.ndim(sample_weight) == 0 and not isinstance(sample_weight, da.Array):
        sample_weight = da.full(X.shape[0], float(sample_weight), chunks=(X.chunks[0],))
    else:
        sample_weight = _aligned(sample_weight, X.chunks[0], "sample_weight").astype(
            np.float64
        )
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
    check_class_totals(totals, classes, "sample_weight")
    factors = class_weight_factors(class_weight, classes, totals)
    class_totals = totals * factors
    check_weight_sum(float(np.sum(class_totals)))
    check_class_totals(class_totals, classes, "sample_weight times class_weight")
    if class_weight is not None:
        sample_weight = sample_weight * y_codes.map_blocks(
            _per_sample, factors, dtype=np.float64
        )
    engine = DaskEngine(X, y_codes, n_classes, sample_weight, fit_intercept)
    return TrainingData(engine, classes, class_totals)


def inference_data(estimator, X, y, sample_weight, cov_type, groups):
    """The engine, class totals and clusters of a fitted model's Dask training data.

    As in memory, ``y`` must hold exactly the fitted classes and the
    arithmetic is float64; the chunks go to the workers once.

    Parameters
    ----------
    estimator : SoftmaxClassifier
        Fitted.
    X : dask array or DataFrame of shape (n_samples, n_features)
    y, sample_weight : dask or NumPy arrays of shape (n_samples,)
    cov_type : str
    groups : dask or NumPy array of shape (n_samples,) or (n_samples, 2), or None

    Returns
    -------
    engine : DaskEngine
    class_totals : ndarray of shape (n_classes,)
    clusters : list of (float, int, array) or None
        As :func:`~sksoftmax._inference.softmax_inference` takes them.
    """
    X, y = validate_training_X(estimator, X, y, reset=False)
    check_groups_given(groups, cov_type)
    row_chunks = X.chunks[0]
    clusters = None
    if isinstance(groups, da.Array):
        clusters = _cluster_ways(groups, row_chunks)
    elif groups is not None:
        clusters = cluster_ways(cluster_codes(groups, cov_type, X.shape[0]))
    data = training_data(
        X.astype(np.float64),
        y,
        sample_weight,
        class_weight=estimator.class_weight,
        fit_intercept=estimator.fit_intercept,
    )
    check_inference_labels(data.classes, estimator.classes_)
    return data.engine, data.class_totals, clusters


def _cluster_ways(groups, row_chunks):
    """The ways of clustering of dask cluster labels, coded on the workers."""
    if groups.ndim not in (1, 2) or (groups.ndim == 2 and groups.shape[1] > 2):
        raise ValueError(
            "groups must have shape (n_samples,) or (n_samples, 2), got "
            f"{groups.shape}."
        )
    columns = (
        [groups] if groups.ndim == 1 else [groups[:, j] for j in range(groups.shape[1])]
    )
    ways = []
    for column in columns:
        column = _aligned(column, row_chunks, "groups")
        labels = da.unique(column).compute()
        if labels.size < 2:
            raise ValueError("Cluster-robust covariance needs at least two clusters.")
        ways.append(
            (1.0, labels.size, column.map_blocks(_encode, labels, dtype=np.intp))
        )
    if len(ways) == 2:
        # The intersections: one code per pair of codes.
        pairs = ways[0][2] * ways[1][1] + ways[1][2]
        labels = da.unique(pairs).compute()
        ways.append(
            (-1.0, labels.size, pairs.map_blocks(_encode, labels, dtype=np.intp))
        )
    return ways


class _Chunk:
    """One row chunk's engine, living on a worker.

    It keeps the Hessian-vector product of its last ``hessian_product`` call,
    so that the products at one point reuse its probabilities. The cache is
    an optimization only: a chunk that lost it (copied to another worker)
    recomputes it.
    """

    def __init__(self, X, y_codes, weights, n_classes, fit_intercept):
        self.weight_sum = float(np.sum(weights))
        self.engine = None
        if sparse.issparse(X) or isinstance(X, np.ndarray):
            assert_all_finite(X, input_name="X")
            # Sparse chunks (e.g. from a vectorizer in map_blocks) stay sparse,
            # canonical as in memory.
            # A chunk need not have the dtype its array declares (a count
            # vectorizer gives integers): float64 unless float32.
            dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
            if sparse.issparse(X):
                X = canonical_sparse(sparse.csr_matrix(X, dtype=dtype))
            else:
                X = np.ascontiguousarray(X, dtype=dtype)
            engine = NumPyEngine
        else:
            # A chunk of a device library (CuPy, as dask-cuda workers hold
            # them): the Array API engine runs on the chunk's device.
            import array_api_compat

            xp = array_api_compat.array_namespace(X)
            if X.dtype not in (xp.float32, xp.float64):
                X = xp.astype(X, xp.float64)
            if not bool(xp.all(xp.isfinite(X))):
                raise ValueError("Input X contains NaN or infinity.")
            engine = ArrayAPIEngine
        if self.weight_sum > 0:
            self.engine = engine(X, y_codes, n_classes, weights, fit_intercept)
        self._hessp_at = None
        self._hessp = None

    def __reduce__(self):
        # Rebuilt from its data where it lands (spilled to disk, copied): the
        # engine's row blocks are views of X, which pickle would copy one by
        # one, doubling the chunk. An empty chunk keeps only its weight sum.
        engine = self.engine
        if engine is None:
            return _empty_chunk, (self.weight_sum,)
        weights = _raw_weights(engine)
        return _Chunk, (
            engine.X,
            engine.y,
            weights,
            engine.n_classes,
            engine.fit_intercept,
        )

    def __sizeof__(self):
        # What dask's scheduler and memory manager count: without it a chunk
        # looks a few bytes large, and copying it to an idle worker free.
        engine = self.engine
        if engine is None:
            return object.__sizeof__(self)
        X = engine.X
        if sparse.issparse(X):
            size = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
        else:
            # Device arrays of some libraries have no nbytes: 8 bytes an entry
            # bounds it.
            size = getattr(X, "nbytes", None) or 8 * math.prod(X.shape)
        return size + sum(
            part.nbytes
            for part in vars(engine).values()
            if isinstance(part, np.ndarray) and part is not X
        )

    def hessian_product(self, params):
        value, grad, self._hessp = self.engine.hessian_product(params)
        self._hessp_at = params.copy()
        return value, grad


def _raw_weights(engine):
    """A chunk engine's sample weights ``s_i``, which it holds divided by its sum."""
    return engine.weights.astype(np.float64) * engine.weight_sum


def _empty_chunk(weight_sum):
    chunk = _Chunk.__new__(_Chunk)
    chunk.weight_sum, chunk.engine = weight_sum, None
    chunk._hessp_at = chunk._hessp = None
    return chunk


def _recoded(chunk, codes, n_classes, fit_intercept):
    """``chunk`` with its class codes mapped through ``codes``, sharing its X."""
    if chunk.engine is None:
        return chunk
    engine = chunk.engine
    weights = _raw_weights(engine)
    return _Chunk(engine.X, codes[engine.y], weights, n_classes, fit_intercept)


def _chunk_class_totals(chunk, n_classes):
    if chunk.engine is None:
        return np.zeros(n_classes)
    engine = chunk.engine
    weights = _raw_weights(engine)
    return np.bincount(engine.y, weights=weights, minlength=n_classes)


def _chunk_weight_sum(chunk):
    return chunk.weight_sum


def _scaled(chunk, weight_sum, *parts):
    scale = chunk.weight_sum / weight_sum
    return tuple(part * scale for part in parts)


def _chunk_hessian_product(chunk, params, weight_sum):
    if chunk.engine is None:
        return None
    return _scaled(chunk, weight_sum, *chunk.hessian_product(params))


def _chunk_hessp(chunk, params, direction, weight_sum):
    if chunk.engine is None:
        return None
    if chunk._hessp_at is None or not np.array_equal(chunk._hessp_at, params):
        chunk.hessian_product(params)
    return _scaled(chunk, weight_sum, chunk._hessp(direction))


def _chunk_call(chunk, name, weight_sum, *args):
    """``chunk.engine.name(*args)``, each result scaled to the mean over all rows."""
    if chunk.engine is None:
        return None
    result = getattr(chunk.engine, name)(*args)
    return _scaled(
        chunk, weight_sum, *(result if isinstance(result, tuple) else (result,))
    )


def _chunk_moments(chunk):
    if chunk.engine is None:
        return None
    return (chunk.weight_sum, *chunk.engine.column_moments())


def _chunk_row_sums(chunk, func, *args, rows=None):
    if chunk.engine is None:
        return None
    return chunk.engine.row_sums(func, *args, rows=rows)


def _chunk_separates(chunk, W, b):
    if chunk.engine is None:
        return True
    return chunk.engine.separates(W, b)


def _add(*parts):
    parts = [part for part in parts if part is not None]
    if not parts:
        return None
    return tuple(sum(terms[1:], terms[0]) for terms in zip(*parts, strict=True))


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


def _client():
    """The active ``distributed.Client``, or None."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _homes(chunks):
    """The worker that holds each persisted chunk, or None without a cluster."""
    client = _client()
    if client is None:
        return None
    from distributed import wait

    wait(list(chunks))
    holders = client.who_has(list(chunks))
    return [next(iter(holders.get(chunk.key) or ()), None) for chunk in chunks]


def _moved(chunk):
    return chunk


def _moves(homes, sizes, workers):
    """Which chunks to move where so that every worker holds about as many bytes.

    While the worker holding the most bytes has a chunk smaller than its lead
    over the worker holding the fewest, the chunk nearest half that lead goes
    to the latter (each such move lowers the larger of the two). A chunk
    moves at most once. Chunks of one size end up within one chunk per worker
    of each other.

    Parameters
    ----------
    homes : list of str
        The worker of each chunk.
    sizes : list of int
        The bytes of each chunk.
    workers : list of str
        All workers, also those that hold no chunk.

    Returns
    -------
    dict
        The new worker of each chunk to move, by its position.
    """
    load = dict.fromkeys(workers, 0)
    movable = {worker: [] for worker in workers}
    for i, (home, size) in enumerate(zip(homes, sizes, strict=True)):
        load[home] += size
        movable[home].append(i)
    moves = {}
    while True:
        heavy = max(load, key=load.get)
        light = min(load, key=load.get)
        lead = load[heavy] - load[light]
        fits = [i for i in movable[heavy] if 0 < sizes[i] < lead]
        if not fits:
            return moves
        i = min(fits, key=lambda i: abs(2 * sizes[i] - lead))
        movable[heavy].remove(i)
        load[heavy] -= sizes[i]
        load[light] += sizes[i]
        moves[i] = light


def _balanced(chunks):
    """The persisted chunks, some moved so that the workers hold about as many bytes.

    A chunk is built where its rows were computed, wherever the scheduler ran
    their tasks: one worker may build half as many chunks again as another
    (19 and 12 of 60 from Parquet files on four workers) and run past its
    memory thresholds while the others have room. The fewest chunks that
    even the running workers' bytes out (:func:`_moves`) are moved, each as a
    new key returned by a task restricted to its new worker that takes the
    chunk as argument; the old keys are released with their futures. The
    restriction is strict: a loosely restricted task is stolen back by the
    idle worker that holds its argument. The chunks are returned as they are
    without a cluster, with one worker, when a chunk failed or was lost (its
    error is raised by the next computation), or when a worker that chunks
    were moving to leaves the cluster before they arrive.

    distributed's ``Client.rebalance`` balances process memory, not the
    chunks: by default it takes nothing from a worker below 30% of its
    memory limit nor gives to one above 60%
    (``distributed.worker.memory.rebalance``), so it moves nothing when the
    chunks are small or when the workers' shares are large.
    """
    client = _client()
    if client is None:
        return chunks
    from distributed import futures_of, wait

    if len(futures_of(list(chunks))) < len(chunks):
        return chunks
    homes = _homes(chunks)
    workers = [
        address
        for address, info in client.scheduler_info()["workers"].items()
        if info.get("status", "running") == "running"
    ]
    if len(workers) < 2 or not set(homes) <= set(workers):
        return chunks
    sizes = client.nbytes([chunk.key for chunk in chunks], summary=False)
    moves = _moves(homes, [sizes[chunk.key] for chunk in chunks], workers)
    if not moves:
        return chunks
    moved = []
    for i, worker in moves.items():
        with dask.annotate(workers=[worker], allow_other_workers=False):
            moved.append(dask.delayed(_moved)(chunks[i]))
    moved = dask.persist(*moved)
    # A task restricted to a worker that left waits for it for ever.
    while True:
        try:
            wait(list(moved), timeout=1)
            break
        except asyncio.TimeoutError:
            if not set(moves.values()) <= set(client.ncores()):
                return chunks
    chunks = list(chunks)
    for i, chunk in zip(moves, moved, strict=True):
        chunks[i] = chunk
    return tuple(chunks)


def _on_homes(func, chunks, homes, *args, rows=None):
    """Delayed ``func(chunk, *args)`` for each chunk, on the worker that holds it.

    Left free, the scheduler sends a task to whichever worker is idle and
    copies the chunk there: every worker would end up holding copies of
    other workers' chunks. The placement is a preference
    (``allow_other_workers``): a chunk recomputed elsewhere after its
    worker died is still found. ``rows`` gives each call a part, as the
    keyword ``rows``.
    """
    task = dask.delayed(func)
    parts = [None] * len(chunks) if rows is None else rows
    calls = []
    for chunk, home, part in zip(
        chunks, homes or [None] * len(chunks), parts, strict=True
    ):
        where = {} if home is None else {"workers": [home], "allow_other_workers": True}
        keywords = {} if rows is None else {"rows": part}
        with dask.annotate(**where):
            calls.append(task(chunk, *args, **keywords))
    return calls


class DaskEngine(ParameterLayout):
    """The unpenalized weighted cross-entropy over the row chunks of Dask arrays.

    Keeps the contract of :class:`~sksoftmax._engines._base.LossEngine`.
    Construction computes each chunk once and keeps it in the workers' memory
    (``dask.persist``), moving a few so that the workers hold about as many
    bytes each (:func:`_balanced`).

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
        float32 or float64, one chunk across the columns, known row chunks.
    y : dask array of shape (n_samples,)
        Integer class codes, chunked like the rows of X.
    n_classes : int
    sample_weight : dask array of shape (n_samples,)
        Non-negative weights with a positive sum, chunked like the rows of X.
    fit_intercept : bool
    """

    def __init__(self, X, y, n_classes, sample_weight, fit_intercept):
        build = dask.delayed(_Chunk)
        chunks = [
            build(X_part, y_part, w_part, n_classes, fit_intercept)
            for X_part, y_part, w_part in zip(
                X.to_delayed().ravel(),
                y.to_delayed(),
                sample_weight.to_delayed(),
                strict=True,
            )
        ]
        self._adopt(
            _balanced(dask.persist(*chunks)),
            X.chunks[0],
            n_classes,
            fit_intercept,
            X.dtype,
            X.shape[1],
        )

    def _adopt(self, chunks, row_chunks, n_classes, fit_intercept, dtype, n_features):
        self.n_classes = n_classes
        self.fit_intercept = fit_intercept
        self.dtype = dtype
        self.n_features = n_features
        self._chunks = chunks
        self._row_chunks = tuple(row_chunks)
        self._homes = _homes(chunks)
        # Also where a non-finite X is reported, from the worker that saw it.
        sums = dask.compute(*self._calls(_chunk_weight_sum))
        self.weight_sum = float(np.sum(sums))

    def subset(self, indices, present=None):
        """The engine of some of the chunks, which stay where they are.

        Parameters
        ----------
        indices : sequence of int
            Positions of the chunks.
        present : ndarray of shape (n_classes,), bool, default=None
            The classes with positive weight in those chunks; when some are
            absent, the chunks' class codes are renumbered over the present
            ones on their workers (a chunk's ``X`` is shared, not copied).

        Returns
        -------
        DaskEngine
        """
        chunks = [self._chunks[i] for i in indices]
        n_classes = self.n_classes
        if present is not None and not np.all(present):
            n_classes = int(np.count_nonzero(present))
            # Rows of an absent class have weight zero; any code does.
            codes = np.maximum(np.cumsum(present) - 1, 0)
            homes = None if self._homes is None else [self._homes[i] for i in indices]
            chunks = dask.persist(
                *_on_homes(
                    _recoded, chunks, homes, codes, n_classes, self.fit_intercept
                )
            )
        engine = DaskEngine.__new__(DaskEngine)
        engine._adopt(
            chunks,
            [self._row_chunks[i] for i in indices],
            n_classes,
            self.fit_intercept,
            self.dtype,
            self.n_features,
        )
        return engine

    def class_totals_by_chunk(self) -> np.ndarray:
        """The weight of each class in each chunk, shape ``(n_chunks, n_classes)``."""
        totals = dask.compute(*self._calls(_chunk_class_totals, self.n_classes))
        return np.array(totals).reshape(len(self._chunks), self.n_classes)

    def _calls(self, func, *args, rows=None):
        """Delayed ``func(chunk, *args)`` for every chunk, where the chunk is."""
        return _on_homes(func, self._chunks, self._homes, *args, rows=rows)

    def _reduce(self, func, *args):
        """``func(chunk, *args)`` on every chunk, summed in a tree on the workers."""
        # One graph node per argument: each is sent to the workers once, not
        # once per chunk. Keys are random (not pure): a repeated evaluation at
        # the same point must not collide with the previous one's keys while
        # the scheduler still releases them.
        args = [dask.delayed(arg) for arg in args]
        return dask.compute(_tree(_add, self._calls(func, *args)))[0]

    def _column_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean and standard deviation of each column of ``X``, float64.

        The chunks' moments (``n_features`` floats each) are pooled on the
        client, on the scale of the largest deviation so that no square
        overflows or underflows. Chunk means are pooled as deviations from
        the heaviest chunk's (see NumPyEngine._heaviest_row): where every
        chunk gives a column the same mean, the pool keeps it, with a spread
        of zero.
        """
        moments = [
            part
            for part in dask.compute(*self._calls(_chunk_moments))
            if part is not None
        ]
        fractions = np.array([part[0] for part in moments])
        fractions /= fractions.sum()
        means = np.array([part[1] for part in moments])
        stds = np.array([part[2] for part in moments])
        origin = means[np.argmax(fractions)]
        with np.errstate(over="ignore", invalid="ignore"):
            mean = origin + fractions @ (means - origin)
        # Means of opposite signs near the float limit overflow apart.
        mean = np.where(np.isfinite(mean), mean, fractions @ means)
        spread = np.maximum(stds.max(axis=0), np.abs(means - mean).max(axis=0))
        spread = np.where(spread > 0, spread, 1.0)
        pooled = fractions @ ((stds / spread) ** 2 + ((means - mean) / spread) ** 2)
        return mean, np.sqrt(pooled) * spread

    def loss_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective value (float) and gradient (float64) at ``params``."""
        value, grad = self._reduce(
            _chunk_call, "loss_gradient", self.weight_sum, params
        )
        return float(value), self.mask_intercept(grad)

    def hessian_product(
        self, params: np.ndarray
    ) -> tuple[float, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Objective, gradient and a Hessian-vector product function at ``params``.

        Each chunk keeps its probabilities at ``params`` on its worker, so a
        product costs two passes over the data, as in memory.
        """
        value, grad = self._reduce(_chunk_hessian_product, params, self.weight_sum)
        params = params.copy()

        def hessp(direction):
            (product,) = self._reduce(_chunk_hessp, params, direction, self.weight_sum)
            return self.mask_intercept(product)

        return float(value), self.mask_intercept(grad), hessp

    def hessian(self, params: np.ndarray) -> np.ndarray:
        """The dense Hessian at ``params``, summed over the chunks on the workers."""
        return self._reduce(_chunk_call, "hessian", self.weight_sum, params)[0]

    def score_outer(self, params: np.ndarray) -> np.ndarray:
        """Weighted sum of the per-sample scores' outer products, over the chunks."""
        return self._reduce(_chunk_call, "score_outer", self.weight_sum, params)[0]

    def gram(self) -> np.ndarray:
        """``[X, 1]^T D [X, 1]``, summed over the chunks."""
        return self._reduce(_chunk_call, "gram", self.weight_sum)[0]

    def row_sums(self, func: Callable, *args, rows=None) -> tuple:
        """``func`` on every chunk, its results summed in a tree on the workers.

        ``rows``, a NumPy or dask array with one entry per sample, goes to
        the chunks in parts aligned with their rows.
        """
        args = [dask.delayed(arg) for arg in args]
        if rows is not None:
            rows = list(_aligned(rows, self._row_chunks, "rows").to_delayed())
        parts = self._calls(_chunk_row_sums, func, *args, rows=rows)
        return dask.compute(_tree(_add, parts))[0]

    def separates(self, W: np.ndarray, b: np.ndarray) -> bool:
        """Whether ``(W, b)`` ranks every weighted sample's class first."""
        flags = self._calls(_chunk_separates, W, b)
        return bool(dask.compute(_tree(_all, flags))[0])


class ChunkFolds:
    """Cross-validation folds of whole row chunks of Dask training data.

    The chunks go to the workers once; a fold's fit and its held-out scores
    run on the chunks it selects, where they are. Fold ``k`` of ``n_folds``
    holds out the ``k``-th of ``n_folds`` consecutive runs of chunks, as
    :class:`~sklearn.model_selection.KFold` does with rows.

    Parameters
    ----------
    X : dask array of shape (n_samples, n_features)
        Validated, with known row chunks.
    y, sample_weight : dask or NumPy arrays of shape (n_samples,)
    class_weight : dict, "balanced" or None
    fit_intercept : bool
    n_folds : int
    """

    def __init__(self, X, y, sample_weight, *, class_weight, fit_intercept, n_folds):
        n_chunks = X.numblocks[0]
        if n_chunks < n_folds:
            raise ValueError(
                f"Cross-validation on a dask array holds out whole row chunks, and "
                f"X has {n_chunks} row chunk(s) for {n_folds} folds; rechunk X "
                f"into at least {n_folds} row chunks (e.g. X.rechunk({{0: "
                f"{-(-X.shape[0] // n_folds)}}})) or pass fewer folds."
            )
        self.data = training_data(
            X, y, sample_weight, class_weight=class_weight, fit_intercept=fit_intercept
        )
        self.classes = self.data.classes
        self.n_features = X.shape[1]
        self.dtype = X.dtype
        self._row_chunks = X.chunks[0]
        self._totals = self.data.engine.class_totals_by_chunk()
        bounds = np.linspace(0, n_chunks, n_folds + 1).round().astype(int)
        chunks = np.arange(n_chunks)
        self.folds = [
            (np.setdiff1d(chunks, chunks[lo:hi]), chunks[lo:hi])
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    @property
    def weight_sum(self):
        return self.data.weight_sum

    def all_data(self):
        """The training data of every chunk."""
        return self.data

    def training(self, train):
        """Training data of the chunks ``train``, over the classes they have.

        Returns
        -------
        data : TrainingData or None
            ``None`` when fewer than two classes are present.
        present : ndarray of shape (n_classes,), bool
        """
        totals = self._totals[train].sum(axis=0)
        present = totals > 0
        if np.count_nonzero(present) < 2:
            return None, present
        engine = self.data.engine.subset(train, present)
        return TrainingData(engine, self.classes[present], totals[present]), present

    def held_out(self, test, metric, score_params):
        """A function from a model over all classes to its score on chunks ``test``.

        Parameters
        ----------
        test : ndarray of int
            Positions of the held-out chunks.
        metric : {"accuracy", "neg_log_loss"}
            Computed on the workers.
        score_params : dict
            ``sample_weight`` (dask or NumPy, of the whole data) weighs the
            scores when given.

        Returns
        -------
        callable
        """
        engine = self.data.engine.subset(test)
        weights = score_params.get("sample_weight")
        if weights is None:
            weights = da.ones(sum(self._row_chunks), chunks=(self._row_chunks,))
        weights = _aligned(weights, self._row_chunks, "sample_weight").blocks[test]

        def score(model):
            total, weight = engine.row_sums(_held_out_sums, model, metric, rows=weights)
            return total / weight

        return score


def _held_out_sums(X, codes, _, weights, model, metric):
    """The weighted sum of a block's scores (accuracy or negative log loss)."""
    if metric == "accuracy":
        scores = model.predict(X) == model.classes_[codes]
    else:
        # scikit-learn's log loss clips the probabilities to [eps, 1 - eps].
        proba = model.predict_proba(X)
        eps = np.finfo(proba.dtype).eps
        scores = np.log(np.clip(proba[np.arange(X.shape[0]), codes], eps, 1 - eps))
    return float(weights @ scores), float(np.sum(weights))


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
            _predict_block,
            estimator,
            method,
            drop_axis=1,
            dtype=dtype,
            meta=np.empty((0,), dtype=dtype),
        )
    return X.map_blocks(
        _predict_block,
        estimator,
        method,
        chunks=(X.chunks[0], (n_classes,)),
        dtype=dtype,
        meta=np.empty((0, 0), dtype=dtype),
    )
