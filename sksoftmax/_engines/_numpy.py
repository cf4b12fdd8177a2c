"""The loss engine for NumPy arrays and scipy.sparse matrices.

Evaluations run over blocks of rows. Each block's logits stay in cache
through the max-shift, exp, normalization and the scaling by the weights, so
those element-wise passes cost little beyond the two matrix products, and
only one block of scratch memory is needed. The logits are held class-major,
K x n_rows, so that reductions over classes run along the long, contiguous
axis: numpy is several times slower reducing rows of length K.

A large evaluation inside a fit runs its blocks in threads, each block's
matrix products single-threaded (see :mod:`sksoftmax._threads`): numpy's
exp and element-wise passes run on one core, and with many classes they cost
more than the products (``benchmarks/evaluation.py``, 2 cores, float64: at
15000 x 40 with 300 classes one evaluation took 9.7 ms in a fit against
15.4 ms with the BLAS's threads alone; at 100000 x 100 with 10 classes,
9.3 ms against 12.9 ms).
"""

import os
from collections.abc import Callable

import numpy as np
from scipy import sparse

from .._separation import separates
from .._symmetric import add_gram, empty_square, mirror_upper
from .._threads import blas_threads
from .._validation import canonical_sparse
from ._base import ParameterLayout

# Bytes of one block of logits, well inside L2 caches: at 100k x 100 x 10,
# half or twice as much measured 5-15% slower in float32 and float64.
_BLOCK_BYTES = 1 << 18
# Row blocks per group that a thread may sum apart (see _sum_over_blocks).
_BLOCKS_PER_GROUP = 8
# A curvature sample is used only on data with this many times its rows.
_SAMPLE_SHARE = 4
# Bytes of one block of per-sample scores, rows x (n_features + 1) K, when the
# dense Hessian or the score products are formed.
_SECOND_ORDER_BLOCK_BYTES = 1 << 26
# Bytes of one block of float64 rows when the column moments are computed: at
# 100k x 100, a quarter as much took 1.5x as long. Smaller (down to a quarter)
# where a quarter of the n x K logits is less (see _copy_rows).
_MOMENTS_BLOCK_BYTES = 1 << 19
# Columns with a smaller weighted standard deviation have their moments
# recomputed on scaled values (see _column_moments).
_LEAST_SPREAD = 1e-140
# Exact Hessian products keep the n x K probabilities of their point only
# where these are small next to what a fit holds anyway; elsewhere each
# product recomputes its blocks' probabilities (one more matrix product and
# exp), so that a fit holds no n x K array, at 1.3 (10 classes) to 1.5 (300
# classes) times a product's time with them kept (benchmarks/evaluation.py,
# "products"). Small means at most _KEPT_PROBA_BYTES, less than a default
# fit on digits holds besides its scratch (1.8 MB; recomputing made its
# newton-cg fit 1.35 times slower), or at most _KEPT_PROBA_VECTORS float64
# vectors of the parameters, as many as L-BFGS's memory holds: on sparse
# data with many features (50000 x 20000, 20 classes) a fit peaked at 23
# units of n K itemsize, and recomputing made newton-cg 1.5 times slower.
_KEPT_PROBA_BYTES = 1 << 20
_KEPT_PROBA_VECTORS = 20
# Shifted float64 logits are raised to this before exp in a pass whose first
# _FLOOR_PROBE rows have one below it (see NumPyEngine._needs_floor).
_EXP_FLOOR = np.log(np.finfo(np.float64).tiny) + 1.0
_FLOOR_PROBE = 16
# Magnitudes whose squares, and sums of them, stay well inside float64.
_SAFE_LOW, _SAFE_HIGH = 1e-150, 1e150


def _block_rows(dtype, n_classes):
    """Rows per block of an evaluation: about ``_BLOCK_BYTES`` of logits."""
    # Many classes: at least 256 rows, or per-block overhead dominates.
    return max(256, _BLOCK_BYTES // (np.dtype(dtype).itemsize * n_classes))


def _times_rows(G, X):
    """``X^T G^T`` for a block's K x n_rows ``G`` and its dense or CSR rows ``X``.

    Formed as ``(G X)^T`` for dense C-ordered rows: in float32 with 20
    features or more, in float64 with OpenBLAS's AVX-512 kernels, 50
    features or more and fewer classes than features. There one thread took
    0.42 to 1.01 times as long in float32 with the AVX-512 (SkylakeX)
    kernels and 0.73 to 1.18 times with the Haswell ones; in float64 0.45
    to 0.90 times with the AVX-512 kernels, but 0.93 to 1.54 with the
    Haswell ones. In float64 with the AVX-512 kernels an evaluation in a fit
    took 0.83 times as long at 100000 x 100 with 10 classes, 0.67 at 50000 x
    1000 with 3 and 1.00 at 50000 x 100 with 50, with the same results bit
    for bit at those sizes (at 3000 x 60 with 5, 6e-16 apart).
    Narrower rows change most between kernels and widths
    (``benchmarks/evaluation.py``, "gradient product").
    """
    if sparse.issparse(X) or not X.flags.c_contiguous:
        return X.T @ G.T
    n_classes, n_features = G.shape[0], X.shape[1]
    if X.dtype == np.float32:
        transposed = n_features >= 20
    else:
        # The kernels last: the first look builds threadpoolctl's view of
        # the process's libraries.
        transposed = (
            n_features >= 50 and n_classes < n_features and blas_threads.avx512_kernels
        )
    return (G @ X).T if transposed else X.T @ G.T


def _row_slices(X, n_rows):
    """Views of consecutive row blocks of X (dense rows or CSR rows)."""
    n_samples = X.shape[0]
    blocks = []
    for start in range(0, n_samples, n_rows):
        stop = min(start + n_rows, n_samples)
        if sparse.issparse(X):
            indptr = X.indptr[start : stop + 1]
            lo, hi = indptr[0], indptr[-1]
            # Set after construction: the constructor copies arrays that
            # view less than half of theirs, which would hold a second copy
            # of X for the whole fit.
            part = sparse.csr_matrix((stop - start, X.shape[1]), dtype=X.dtype)
            part.data, part.indices = X.data[lo:hi], X.indices[lo:hi]
            part.indptr = (indptr - lo).astype(X.indices.dtype, copy=False)
        else:
            part = X[start:stop]
        blocks.append((slice(start, stop), part))
    return blocks


def _design(X):
    """``[X, 1]`` in float64, dense or CSR like ``X``."""
    ones = np.ones((X.shape[0], 1))
    if sparse.issparse(X):
        return sparse.hstack([X, ones], format="csr", dtype=np.float64)
    return np.hstack([X.astype(np.float64, copy=False), ones])


def _kron_rows(design, factors):
    """Rows ``design_i (x) factors_i``, of shape (n_rows, n_columns * K).

    Entry ``(i, j * K + k)`` is ``design[i, j] * factors[i, k]``: the flat
    layout of the parameters, so ``B^T diag(w) B`` is a matrix over it.
    """
    n_rows, n_classes = factors.shape
    if not sparse.issparse(design):
        return (design[:, :, None] * factors[:, None, :]).reshape(n_rows, -1)
    row_of_entry = np.repeat(np.arange(n_rows), np.diff(design.indptr))
    data = design.data[:, None] * factors[row_of_entry]
    indices = design.indices[:, None] * n_classes + np.arange(n_classes)
    return sparse.csr_matrix(
        (data.ravel(), indices.ravel(), design.indptr * n_classes),
        shape=(n_rows, design.shape[1] * n_classes),
    )


def _exp_shifted(logits, floor):
    """``exp``, in place, of shifted logits; with ``floor``, raised to ``_EXP_FLOOR``.

    See NumPyEngine._needs_floor.
    """
    if floor:
        np.maximum(logits, _EXP_FLOOR, out=logits)
    np.exp(logits, out=logits)


def _range_scale(magnitude):
    """Divisors for columns of largest magnitude ``magnitude``.

    The magnitude itself where the squares would leave the float range, 1
    elsewhere (all-zero columns included).
    """
    inside = (magnitude > _SAFE_LOW) & (magnitude < _SAFE_HIGH)
    return np.where(inside | (magnitude == 0.0), 1.0, magnitude)


def _scaled_float64(block, scale, rescale):
    """Dense ``block`` in float64, its columns divided by ``scale`` when ``rescale``."""
    if rescale:
        return block / scale
    return block.astype(np.float64, copy=False)


def _weighted_product(left, right, weights):
    """``left^T diag(weights) right`` as a dense float64 array."""
    if sparse.issparse(right):
        product = left.T @ (sparse.diags(weights) @ right)
        return product.toarray() if sparse.issparse(product) else np.asarray(product)
    return np.asarray(left.T @ (right * weights[:, None]))


class NumPyEngine(ParameterLayout):
    """The unpenalized weighted cross-entropy on NumPy or scipy.sparse data.

    Keeps the contract of :class:`~sksoftmax._engines._base.LossEngine`.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Training data, float32 or float64. Arithmetic happens in this dtype.
    y : ndarray of shape (n_samples,)
        Integer class codes in ``[0, n_classes)``.
    n_classes : int
        Number of classes K.
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights ``s_i``; their sum ``S`` must be positive.
    fit_intercept : bool
        Whether ``b`` is a free parameter.
    """

    def __init__(self, X, y, n_classes, sample_weight, fit_intercept):
        if sparse.issparse(X):
            X = X.tocsr()
        self.X = X
        # Kept in its integer dtype, the smallest that holds the codes (see
        # encode_labels): as intp they would cost a fifth of the n x K budget.
        self.y = np.asarray(y)
        if self.y.dtype.kind not in "iu":
            self.y = self.y.astype(np.intp)
        self.n_classes = n_classes
        self.fit_intercept = fit_intercept
        self.dtype = X.dtype
        n_samples, self.n_features = X.shape
        self.weight_sum = weight_sum = float(np.sum(sample_weight, dtype=np.float64))
        # Per-row weights s_i / S, the diagonal of D, in X's dtype: a float64
        # copy would cost a float32 fit a fifth of its n x K budget.
        weights = (np.asarray(sample_weight, dtype=np.float64) / weight_sum).astype(
            self.dtype, copy=False
        )
        if weights.min() == weights.max():
            # Equal weights (no sample or class weights) are one value seen
            # n times, read-only: stored, they take a float32 fit with 10
            # classes a tenth of its n x K budget (near separation, newton-cg
            # peaks at 0.97 units without them, 1.07 to 1.08 with unequal
            # weights).
            weights = np.broadcast_to(weights[:1].copy(), (n_samples,))
        self.weights = weights
        n_rows = _block_rows(self.dtype, n_classes)
        self._blocks = _row_slices(X, n_rows)
        # A row's true-class logit sits at y * n_rows + (its offset in the
        # block) of the flattened K x n_rows block, so gather and scatter are
        # one-dimensional takes. Made per block: for all rows at once they
        # would cost a float32 fit a tenth of its n x K budget.
        index_type = np.int32 if n_rows * n_classes < 2**31 else np.intp
        self._offsets = np.arange(self._blocks[0][0].stop, dtype=index_type)
        # Groups of blocks that threads may sum apart: one per core, with
        # enough blocks each that the threads' scratch (two blocks each)
        # stays within a quarter of the n x K logits' size.
        self._n_groups = max(
            1, min(os.cpu_count() or 1, len(self._blocks) // _BLOCKS_PER_GROUP)
        )
        # Scratch for one block per thread, made when an evaluation first
        # runs in that many threads.
        self._scratch = []
        self._proba = self._likelier = None
        # Counts the evaluations that kept their probabilities (see _products).
        self._proba_generation = 0
        self.keeps_proba = n_samples * n_classes * self.dtype.itemsize <= max(
            _KEPT_PROBA_BYTES, _KEPT_PROBA_VECTORS * 8 * self.n_params
        )

    def _copy_rows(self, n_columns):
        """Rows per block of float64 copies of ``n_columns`` columns of X.

        A few such copies must stay small next to the n x K logits of any
        fit: on small data (digits) the largest blocks were 3.6 times them.
        """
        logits = self.X.shape[0] * self.n_classes * self.dtype.itemsize
        block = min(_MOMENTS_BLOCK_BYTES, max(_MOMENTS_BLOCK_BYTES // 4, logits // 4))
        return max(1, block // (8 * max(n_columns, 1)))

    def _column_moments(self):
        # A fit's first pass over X: from here on, in a fit that will sum its
        # blocks in threads, every BLAS is single-threaded, so that no idle
        # BLAS thread spins through those evaluations (see
        # BlasThreads.block_workers).
        blas_threads.block_workers(self._n_groups)
        if sparse.issparse(self.X):
            return self._sparse_moments()
        mean, std = self._centred_moments()
        # Squares of deviations beyond 1e154 overflow and those below 1e-154
        # underflow; a spread of _LEAST_SPREAD or more makes the latter
        # negligible. Other columns (exactly constant ones among them) are
        # redone on values divided by their largest magnitude.
        spread_ok = np.isfinite(std) & (std >= _LEAST_SPREAD)
        redo = np.flatnonzero(~(np.isfinite(mean) & spread_ok))
        if redo.size:
            mean[redo], std[redo] = self._scaled_moments(redo)
        return mean, std

    def _heaviest_row(self):
        """The row of dense X with the largest weight.

        As the origin of the moments: a row with a weight of 1 / n or more
        lies within sqrt(n) spreads of the mean, so centring on it rounds
        as centring on the mean would. A row of negligible weight may lie
        anywhere (1e17 among unit values), and values centred on it lose
        their spread to its rounding.
        """
        return self.X[int(np.argmax(self.weights))]

    def _centred_moments(self):
        """Moments of dense X in one pass: each block centred on its own mean.

        The blocks' sums of squared deviations are merged exactly (the
        pairwise update of Chan, Golub and LeVeque), so a column far from
        zero keeps its spread without a second pass over X, which costs a
        third of an evaluation. The values are first shifted by the
        heaviest row: the block means are then of the order of the spread,
        and so is their rounding, however large the offset; and a column
        whose weighted values are all equal gets exactly that value as its
        mean and a spread of zero.
        """
        d = self.n_features
        n_rows = self._copy_rows(d)
        total, mean, squares = 0.0, np.zeros(d), np.zeros(d)
        origin = self._heaviest_row().astype(np.float64)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            for rows, block in _row_slices(self.X, n_rows):
                weights = self.weights[rows].astype(np.float64)
                block_total = weights.sum()
                if block_total <= 0.0:
                    continue
                centred = np.subtract(block, origin, dtype=np.float64)
                block_mean = (weights @ centred) / block_total
                centred -= block_mean
                np.square(centred, out=centred)
                shift = block_mean - mean
                merged = total + block_total
                squares += weights @ centred + shift**2 * (total * block_total / merged)
                mean += shift * (block_total / merged)
                total = merged
            return origin + mean, np.sqrt(squares / total)

    def _sparse_moments(self):
        """Moments of sparse X from its stored entries, in two passes.

        ``E[x^2] - mean^2`` would lose the spread of a column far from zero
        to cancellation: a stored column of ones came out with a spread of
        1e-8 of its mean, a column of 1e9 plus unit noise with none. Here
        each stored entry is centred on the first pass's mean, the implicit
        zeros add ``(0 - mean)`` each, and the sum of all the deviations
        corrects the mean's own rounding (the corrected two-pass formula), so
        a column whose values are all equal gets a spread far below the
        rounding of its mean. The sums are products with a matrix of X's
        pattern whose one float64 array of entries is rewritten in place for
        each: at 50000 x 20000 with 0.2% stored, 19 ms against 33 ms for
        the old single pass.
        """
        X = canonical_sparse(self.X)
        entries = sparse.csr_matrix(
            (X.data.astype(np.float64), X.indices, X.indptr), shape=X.shape
        )
        values, columns = entries.data, entries.indices
        scale = np.ones(self.n_features)
        magnitudes = np.abs(values)
        smallest = np.min(magnitudes, where=magnitudes > 0.0, initial=np.inf)
        if magnitudes.size and not (
            smallest > _SAFE_LOW and magnitudes.max() < _SAFE_HIGH
        ):
            # Columns near the float limits are divided by their largest
            # magnitude, so that squares neither overflow nor underflow.
            magnitude = abs(X).max(axis=0).toarray().ravel().astype(np.float64)
            scale = _range_scale(magnitude)
            values /= scale[columns]
        del magnitudes
        weights = self.weights.astype(np.float64)
        total = weights.sum()

        def column_sums(row_weights=weights):
            return entries.T @ row_weights

        mean = column_sums() / total
        values -= mean[columns]
        deviations = column_sums()
        np.square(values, out=values)
        squares = column_sums()
        values[:] = 1.0
        stored_weight = column_sums()
        stored_rows = column_sums((weights > 0.0).astype(np.float64))
        # A column stored in every weighted row has no implicit zeros: its
        # weight total - stored_weight is rounding, not weight.
        zero_weight = np.where(
            stored_rows == np.count_nonzero(weights > 0.0),
            0.0,
            np.maximum(total - stored_weight, 0.0),
        )
        squares += zero_weight * mean**2
        deviations -= zero_weight * mean
        var = np.maximum(squares - deviations**2 / total, 0.0) / total
        return (mean + deviations / total) * scale, np.sqrt(var) * scale

    def _scaled_moments(self, columns):
        """Moments of the dense ``X[:, columns]`` on scaled values.

        Three passes: each column's largest magnitude, then the mean and the
        centred squares of the columns divided by it where their squares
        would leave the float range.
        """
        X = self.X
        # Small blocks, made as each pass needs them: each is a float64
        # copy, and a fit's peak memory is bounded by its n x K logits.
        n_rows = self._copy_rows(columns.size)

        def blocks():
            for rows, block in _row_slices(X, n_rows):
                yield rows, block[:, columns]

        magnitude = np.zeros(columns.size, dtype=X.dtype)
        for _, block in blocks():
            np.maximum(magnitude, abs(block).max(axis=0), out=magnitude)
        magnitude = magnitude.astype(np.float64)
        scale = _range_scale(magnitude)
        rescale = bool(np.any(scale != 1.0))
        # Values are shifted by the heaviest row, so that a constant column's
        # spread is exactly zero; and divided by the weights' float64 sum: in
        # float32 they add up to one only within its rounding.
        total, mean = 0.0, np.zeros(magnitude.size)
        origin = self._heaviest_row()[columns] / scale
        for rows, block in blocks():
            weights = self.weights[rows].astype(np.float64)
            scaled = _scaled_float64(block, scale, rescale) - origin
            mean += scaled.T @ weights
            total += weights.sum()
        mean = origin + mean / total
        # Centred in a second pass, so that a column far from zero (or
        # constant) keeps its spread.
        var = np.zeros(magnitude.size)
        for rows, block in blocks():
            weights = self.weights[rows].astype(np.float64)
            centred = _scaled_float64(block, scale, rescale) - mean
            var += np.einsum("ij,ij,i->j", centred, centred, weights)
        std = np.sqrt(np.maximum(var / total, 0.0))
        return mean * scale, std * scale

    def curvature_sample(self, n_rows, fewest, mean, scale):
        """An engine on a sample of rows, for approximate Hessian products.

        Each row with positive weight is kept with a probability set by its
        class: the same for every class, but high enough that a class keeps
        about ``2 (n_features + 1)`` rows (or all it has); the draws use a fixed
        seed. The kept weights are scaled so that every class keeps its
        total weight. The rows are the standardized ``(x - mean) / scale``
        in float32: values of order one, whatever the scale of ``X``, in
        half the memory of float64. Every pass runs over blocks of rows, so
        that nothing of the size of ``n_samples`` is made.

        Parameters
        ----------
        n_rows : int
            Rows wanted; fewer when the sample would take more than half
            the memory of the n x K logits.
        fewest : int
            Rows below which no sample is made.
        mean, scale : ndarray of shape (n_features,)
            The standardization.

        Returns
        -------
        NumPyEngine or None
            None when the memory allows fewer than ``fewest`` rows, or when
            the data have fewer than ``_SAMPLE_SHARE`` times as many rows with
            positive weight as the sample: products on all rows then cost
            little more.
        """
        d, K = self.n_features, self.n_classes
        # Each sampled row costs its float32 features and logits.
        budget = self.X.shape[0] * K * self.dtype.itemsize // (2 * 4 * (d + K))
        n_rows = min(n_rows, budget)
        blocks = [rows for rows, _ in self._blocks]
        counts, totals = np.zeros(K), np.zeros(K)
        for rows in blocks:
            y, weights = self.y[rows], self.weights[rows]
            positive = weights > 0
            counts += np.bincount(y[positive], minlength=K)
            totals += np.bincount(y, weights=weights, minlength=K)
        if n_rows < fewest or counts.sum() < _SAMPLE_SHARE * n_rows:
            return None
        with np.errstate(divide="ignore"):
            # A class's block of the Hessian is a square of side d + 1.
            least = 2 * (d + 1) / counts
            keep = np.minimum(1.0, np.maximum(n_rows / counts.sum(), least))
        rng = np.random.default_rng(0)
        chosen = []
        for rows in blocks:
            y, weights = self.y[rows], self.weights[rows]
            draw = rng.random(y.size) < keep[y]
            chosen.append(rows.start + np.flatnonzero(draw & (weights > 0)))
        rows = np.concatenate(chosen)
        missed = np.flatnonzero(
            (counts > 0) & (np.bincount(self.y[rows], minlength=K) == 0)
        )
        if missed.size:
            # A class the draw missed keeps its first row with weight, which
            # carries the class's total: the sample's curvature then has every
            # class, and its objective at W = 0 is the whole data's.
            first = [
                np.flatnonzero((self.y == k) & (self.weights > 0))[0] for k in missed
            ]
            rows = np.sort(np.concatenate([rows, first]))
        y = self.y[rows]
        weights = self.weights[rows].astype(np.float64)
        kept = np.bincount(y, weights=weights, minlength=K)
        with np.errstate(divide="ignore", invalid="ignore"):
            weights *= (totals / kept)[y]
        sample = np.empty((rows.size, d), dtype=np.float32)
        # Divided before centring: x - mean could overflow near the float
        # maximum. In small blocks, so that no float64 copy of the sample
        # is ever whole.
        shift = mean / scale
        step = self._copy_rows(d)
        for start in range(0, rows.size, step):
            block = self.X[rows[start : start + step]]
            block = block.toarray() if sparse.issparse(block) else block
            sample[start : start + step] = block / scale - shift
        engine = NumPyEngine(sample, y, K, weights, self.fit_intercept)
        # Its probabilities are within the sample's share of the budget above.
        engine.keeps_proba = True
        engine._spread(self._n_groups)
        self._lend_scratch(engine)
        return engine

    def _spread(self, n_groups):
        """Cut the rows anew into up to ``n_groups`` groups of equal blocks.

        For the curvature sample, a block or two: by the rule for whole data
        one group, whose products ran on one core. As many groups as it has
        blocks, at most ``n_groups``, and no block larger than before: at
        100000 x 100 with 10 classes the float64 fit's sample (two blocks)
        took 8.0 ms for its value and ten products in one group and 6.3 ms
        in two, on two cores; the float32 fit's (one block of 4465 rows)
        took 3.8 ms in one and 4.0 ms cut in two. Its scratch is lent (see
        :meth:`_lend_scratch`).
        """
        n_groups = min(n_groups, len(self._blocks))
        per_group = -(-len(self._blocks) // n_groups)
        n_rows = -(-self.X.shape[0] // (per_group * n_groups))
        self._blocks = _row_slices(self.X, n_rows)
        self._n_groups = n_groups

    def separates(self, W: np.ndarray, b: np.ndarray) -> bool:
        """Whether ``(W, b)`` puts every weighted sample strictly in its own class."""
        logits = self.X @ W.astype(self.dtype, copy=False)
        if self.fit_intercept:
            logits += b.astype(self.dtype, copy=False)
        return separates(np.asarray(logits), self.y, self.weights)

    def _target(self, rows):
        """Positions of the rows' true-class logits in their flattened block."""
        target = self.y[rows].astype(self._offsets.dtype)
        target *= rows.stop - rows.start
        target += self._offsets[: rows.stop - rows.start]
        return target

    def _block_size(self):
        """Entries of the largest block's K x n_rows logits."""
        return self._blocks[0][0].stop * self.n_classes

    def _new_scratch(self):
        """Flat buffers for one block's K x n_rows logits and n_rows x K product."""
        size = self._block_size()
        return np.empty(size, dtype=self.dtype), np.empty(size, dtype=self.dtype)

    def _buffers(self, worker, n_rows):
        """Scratch of thread ``worker``: K x n_rows logits, n_rows x K product."""
        logits, rowwise = self._scratch[worker]
        # Flat, so that a shorter last block's views stay contiguous.
        size = self.n_classes * n_rows
        return (
            logits[:size].reshape(self.n_classes, n_rows),
            rowwise[:size].reshape(n_rows, self.n_classes),
        )

    def _lend_scratch(self, engine):
        """Let ``engine`` use this engine's idle scratch as its own.

        For the curvature sample, whose products never run during this
        engine's evaluations; its own scratch would add a tenth of a float32
        fit's n x K budget. Only where this engine's buffers are large enough.
        """
        needed = engine._block_size() * engine.dtype.itemsize
        if self._block_size() * self.dtype.itemsize < needed:
            return
        # One per group of the sample, which has at most this engine's groups:
        # as many as this engine's own evaluations make when they run in
        # threads.
        while len(self._scratch) < engine._n_groups:
            self._scratch.append(self._new_scratch())
        engine._scratch = [
            tuple(buffer.view(engine.dtype) for buffer in scratch)
            for scratch in self._scratch[: engine._n_groups]
        ]

    def _needs_floor(self, W, b):
        """Whether a pass at ``(W, b)`` floors its shifted logits before exp.

        Below the log of the smallest normal float, exp is subnormal or zero,
        and numpy's float64 exp takes a slow path there: 54 times as long per
        entry for subnormal results, 8 times for zeros (numpy 2.4, AVX-512, AMD
        EPYC), and 3.5 times for a block of logits spread down to -1000
        (``benchmarks/evaluation.py``, "exp"); its float32 exp does not. Near
        separation most logits lie that far below their row's maximum: 84% at
        the optimum of 100000 x 100 with 10 classes and logits of scale 30
        (``C=1e6``), where raising them to ``e`` times the smallest normal float
        first made lbfgs and newton-cg fits 0.83 to 0.86 and 0.87 times as long
        (two runs). That costs a pass, 3% to 9% of an evaluation on ordinary
        logits, so the first ``_FLOOR_PROBE`` rows decide, before the pass, for
        all its blocks: the same whichever threads run them. The change is at
        most 6e-308 in a probability and, since the weights sum to 1, at most
        that times the largest feature in a gradient entry.
        """
        if self.dtype != np.float64:
            return False
        logits = np.asarray(self.X[:_FLOOR_PROBE] @ W)
        if self.fit_intercept:
            logits = logits + b
        return bool(np.any(logits < logits.max(axis=1, keepdims=True) + _EXP_FLOOR))

    def _logits_into(self, X, W, b, n_rows, worker, logits=None):
        """``(X W + b)^T`` in ``logits``, by default ``worker``'s K x n_rows scratch."""
        scratch, rowwise = self._buffers(worker, n_rows)
        if logits is None:
            logits = scratch
        if sparse.issparse(X):
            logits[...] = (X @ W).T
        elif (
            self.dtype == np.float32
            and self.n_classes < self.n_features
            and blas_threads.avx512_kernels
        ):
            # OpenBLAS's AVX-512 sgemm wrote n_rows x K faster where K is
            # below d, K x n_rows where K is d or more (an evaluation at
            # 15000 x 40 with 300 classes took 0.87 to 0.95 times as long
            # written K x n_rows than n_rows x K). Its Haswell sgemm and
            # every dgemm measured wrote K x n_rows faster almost everywhere
            # (with Haswell's, an evaluation in a fit at 50000 x 1000 with 3
            # classes 0.85 to 0.87 times as long, at 100000 x 100 with 10
            # 1.01 to 1.04 times; benchmarks/evaluation.py, "layout").
            np.matmul(X, W, out=rowwise)
            logits[...] = rowwise.T
        else:
            np.matmul(W.T, X.T, out=logits)
        if self.fit_intercept:
            logits += b[:, None]
        return logits

    def _sum_over_blocks(self, block_sums):
        """Value and flat gradient summed from ``block_sums(block, worker)``.

        Each call returns ``(value, X^T G, 1^T G)`` for one row block, using
        the scratch of thread ``worker``. The blocks are dealt out to a fixed
        number of groups in turn, each group summed in order and the groups'
        sums added in order: the result is the same whether the groups run
        in threads or one after another (concurrent fits, a limited BLAS).
        """
        n_groups = self._n_groups
        workers = blas_threads.block_workers(n_groups)
        while len(self._scratch) < workers:
            self._scratch.append(self._new_scratch())

        def group_sum(group, worker):
            blocks = self._blocks[group::n_groups]
            return self.assemble(block_sums(block, worker) for block in blocks)

        def share(worker):
            groups = range(worker, n_groups, workers)
            return [group_sum(group, worker) for group in groups]

        if workers == 1:
            sums = (group_sum(group, 0) for group in range(n_groups))
        else:
            shares = blas_threads.map(share, list(range(workers)))
            sums = (shares[g % workers][g // workers] for g in range(n_groups))
        value, flat = next(sums)
        for group_value, group_flat in sums:
            value += group_value
            flat += group_flat
        return value, flat

    def _cast(self, params):
        W, b = self.unpack(params)
        return W.astype(self.dtype, copy=False), b.astype(self.dtype, copy=False)

    def loss_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective value and its gradient at ``params``.

        Parameters
        ----------
        params : ndarray of shape (n_params,)

        Returns
        -------
        value : float
        gradient : ndarray of shape (n_params,), float64
        """
        return self._loss_gradient(params, keep_proba=False)

    def _loss_gradient(self, params, keep_proba):
        """Value and gradient; with ``keep_proba``, keep P for Hessian products."""
        W, b = self._cast(params)
        floor = self._needs_floor(W, b)
        if keep_proba and self._proba is None:
            self._proba = np.empty((self.n_classes, self.X.shape[0]), self.dtype)
            # Whether each row's own class is the likelier (see _curvature_times),
            # kept since a block of the kept P is a strided view, which a flat
            # take would copy whole.
            self._likelier = np.empty(self.X.shape[0], dtype=bool)
        if keep_proba:
            self._proba_generation += 1
        proba = self._proba if keep_proba else None

        def block_loss_gradient(block, worker):
            rows, X = block
            logits = self._logits_into(X, W, b, rows.stop - rows.start, worker)
            value = self._residual(logits, rows, floor, proba)
            return value, _times_rows(logits, X), logits.sum(axis=1, dtype=np.float64)

        return self._sum_over_blocks(block_loss_gradient)

    def _residual(self, logits, rows, floor, proba):
        """Turn a block's K x n_rows logits into ``(D (P - Y))^T``; its loss.

        Each per-row array is dropped once used: every thread's count
        against the n x K budget. With ``proba``, the block's probabilities
        are kept there.
        """
        # log-sum-exp with the maximum subtracted: exp never overflows.
        logits -= logits.max(axis=0)
        flat = logits.reshape(-1)
        target = self._target(rows)
        true_logit = flat.take(target)
        _exp_shifted(logits, floor)
        # The other classes' share, summed without the own class's term:
        # near separation it is far below the rounding of 1 + share
        # (float32: 6e-8), and both the loss, log1p(share) where the own
        # class has the largest logit, and its gradient entry, p - 1 =
        # -share / total, are proportional to it (see docs/math.rst).
        true_exp = flat.take(target)
        flat[target] = 0
        others = logits.sum(axis=0)
        # In float64 from the start: weighted in float32, a loss near its
        # smallest normal (a margin of 80) times 1/n would lose digits to
        # subnormals, and a float32 loss cast later would sit beside its copy.
        loss = np.subtract(true_exp, 1, dtype=np.float64)
        loss += others
        np.log1p(loss, out=loss)
        loss -= true_logit
        del true_logit
        loss *= self.weights[rows]
        # Summed in float64: the line search compares these values.
        value = float(loss.sum())
        del loss
        total = others + true_exp
        if proba is not None:
            flat[target] = true_exp
            np.divide(logits, total, out=proba[:, rows])
            np.greater_equal(true_exp, 0.5 * total, out=self._likelier[rows])
        del true_exp
        # One scaling pass, one scatter.
        scale = np.divide(self.weights[rows], total, out=total)
        logits *= scale
        others *= scale
        flat[target] = np.negative(others, out=others)
        return value

    def hessian_product(
        self, params: np.ndarray
    ) -> tuple[float, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Objective, gradient and a Hessian-vector product at ``params``.

        For a direction ``(V, v_b)``: ``A = X V + v_b``,
        ``R = P * (A - rowsum(P * A))``, ``H V = X^T D R`` and
        ``H v_b = 1^T D R``. The probabilities ``P`` are kept from the
        evaluation at ``params`` where ``keeps_proba`` (small data, a
        curvature sample), and recomputed per block of rows in each product
        otherwise (see ``_KEPT_PROBA_BYTES``).

        Parameters
        ----------
        params : ndarray of shape (n_params,)

        Returns
        -------
        value : float
        gradient : ndarray of shape (n_params,), float64
        hessp : callable
            ``hessp(direction)`` maps a flat direction of shape (n_params,)
            to the flat product, float64, at ``params`` whatever the engine
            evaluates after.
        """
        value, grad = self._loss_gradient(params, keep_proba=self.keeps_proba)
        return value, grad, self._products(params)

    def curvature_at(self, params: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """The Hessian-vector product at ``params``, without value and gradient.

        For a solver that has evaluated ``params`` already and wants
        products there. Free where the products recompute the
        probabilities; otherwise one pass over the data computes them.

        Parameters
        ----------
        params : ndarray of shape (n_params,)

        Returns
        -------
        hessp : callable
            As ``hessian_product``'s.
        """
        if self.keeps_proba:
            return self.hessian_product(params)[2]
        return self._products(params)

    def ray_curvature(self, params: np.ndarray) -> float:
        """``theta^T H theta``, the data term's curvature along ``theta = params``.

        Along that ray every logit scales alike, and the curvature is the
        weighted sum over rows of the variance of each row's logits under
        its own probabilities: one forward pass, without the product's
        second matrix product and transposed one.

        Parameters
        ----------
        params : ndarray of shape (n_params,)

        Returns
        -------
        float
        """
        W, b = self._cast(params)
        floor = self._needs_floor(W, b)

        def block_variance(block, worker):
            rows, X = block
            n_rows = rows.stop - rows.start
            logits = self._logits_into(X, W, b, n_rows, worker)
            logits -= logits.max(axis=0)
            shifted = self._buffers(worker, n_rows)[1].reshape(logits.shape)
            shifted[...] = logits
            _exp_shifted(logits, floor)
            total = logits.sum(axis=0)
            mean = np.einsum("ki,ki->i", logits, shifted) / total
            # Logits past 1e154 square to inf: the curvature is then inf, and
            # the bound it would give is not used.
            with np.errstate(over="ignore", invalid="ignore"):
                shifted *= shifted
                variance = np.einsum("ki,ki->i", logits, shifted) / total - mean * mean
            weights = self.weights[rows].astype(np.float64, copy=False)
            value = float(np.dot(weights, np.maximum(variance, 0.0)))
            return value, 0.0, 0.0

        return self._sum_over_blocks(block_variance)[0]

    def _products(self, params):
        """``hessp`` at ``params``: on the kept probabilities while they are its own.

        They are kept by the last evaluation with ``keep_proba``; a later
        one, at another point, overwrites them, and the products then
        recompute them.
        """
        W, b = self._cast(params)
        floor = self._needs_floor(W, b)
        generation = self._proba_generation
        # Per thread, one more block for A while the scratch holds P;
        # dropped with the products.
        spares = {}

        def on_kept(block, worker, V, v_b):
            rows, X = block
            A = self._logits_into(X, V, v_b, rows.stop - rows.start, worker)
            target = self._target(rows)
            return self._curvature_times(
                rows, X, self._proba[:, rows], A, target, self._likelier[rows]
            )

        def recomputed(block, worker, V, v_b):
            rows, X = block
            n_rows = rows.stop - rows.start
            P = self._logits_into(X, W, b, n_rows, worker)
            P -= P.max(axis=0)
            _exp_shifted(P, floor)
            P /= P.sum(axis=0)
            spare = spares.get(worker)
            if spare is None:
                spare = spares[worker] = np.empty(self._block_size(), self.dtype)
            A = spare[: P.size].reshape(P.shape)
            self._logits_into(X, V, v_b, n_rows, worker, logits=A)
            target = self._target(rows)
            likelier = P.reshape(-1).take(target) >= 0.5
            return self._curvature_times(rows, X, P, A, target, likelier)

        def hessp(direction):
            V, v_b = self._cast(direction)
            kept = self.keeps_proba and self._proba_generation == generation
            block_product = on_kept if kept else recomputed
            return self._sum_over_blocks(
                lambda block, worker: block_product(block, worker, V, v_b)
            )[1]

        return hessp

    def _curvature_times(self, rows, X, P, A, target, likelier):
        """A block's share of a Hessian product; overwrites ``A``, its ``X V + v_b``.

        ``target`` holds the rows' own-class positions in the flattened
        block (see ``_target``), and ``likelier`` says, per row, whether
        that class has probability at least one half.
        """
        # R = P * (A - rowsum(P * A)) is the same for A less any per-row
        # constant. Less the own class's entry in rows where that class is
        # the likelier, its entry of R is -p * (the others' share of P * A):
        # it keeps its digits where p rounds to 1 (see docs/math.rst).
        # Elsewhere the shift would cost digits: rounding grows with the
        # entries' distance from the own class's.
        own = A.reshape(-1).take(target)
        own *= likelier
        A -= own
        A -= np.einsum("ki,ki->i", P, A)
        A *= P
        A *= self.weights[rows]
        return 0.0, _times_rows(A, X), A.sum(axis=1, dtype=np.float64)

    def _second_order_blocks(self, params):
        """Per block of rows: ``[X, 1]``, the probabilities and the weights, float64."""
        W, b = self.unpack(params)
        width = (self.n_features + 1) * self.n_classes
        n_rows = max(1, _SECOND_ORDER_BLOCK_BYTES // (8 * width))
        for rows, X in _row_slices(self.X, n_rows):
            proba = self._block_probabilities(X, W, b)
            yield rows, _design(X), proba, self.weights[rows].astype(np.float64)

    def _block_probabilities(self, X, W, b):
        """Probabilities of the rows ``X``, float64, of shape (n_rows, n_classes)."""
        logits = np.asarray(X @ W) + (b if self.fit_intercept else 0.0)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def hessian(self, params: np.ndarray) -> np.ndarray:
        """The dense Hessian at ``params``, float64, of shape (n_params, n_params).

        The block of classes ``(k, l)`` is ``Z^T diag(s p_k (d_kl - p_l)) Z``
        with ``Z = [X, 1]``: symmetric, and its weights of one sign, so each
        is a rank-k update of half of a ``(q, q)`` square. Summing per block
        takes half the work of one product over the ``q K`` columns of all
        classes, and the probabilities are formed once.
        """
        K, q = self.n_classes, self.n_features + 1
        W, b = self.unpack(params)
        row_blocks = _row_slices(self.X, max(1, _SECOND_ORDER_BLOCK_BYTES // (8 * q)))
        proba = np.concatenate(
            [self._block_probabilities(X, W, b) for _, X in row_blocks]
        )
        weights = self.weights.astype(np.float64)
        hessian = np.empty((q, K, q, K))
        for k in range(K):
            for j in range(k, K):
                block = empty_square(q)
                for rows, X in row_blocks:
                    share = proba[rows, j] if j != k else proba[rows, j] - 1.0
                    # s p_k (d_kl - p_l) = -s p_k share, of one sign per block.
                    add_gram(
                        block,
                        _design(X),
                        weights[rows] * proba[rows, k] * np.abs(share),
                        sign=-1.0 if j != k else 1.0,
                    )
                hessian[:, k, :, j] = hessian[:, j, :, k] = mirror_upper(block)
        hessian = hessian.reshape(self.n_params, self.n_params)
        return self.mask_intercept_square(hessian)

    def score_outer(self, params: np.ndarray) -> np.ndarray:
        """Weighted sum of the per-sample scores' outer products, float64."""
        upper = empty_square(self.n_params)
        for rows, design, proba, weights in self._second_order_blocks(params):
            proba[np.arange(proba.shape[0]), self.y[rows]] -= 1.0
            add_gram(upper, _kron_rows(design, proba), weights)
        return self.mask_intercept_square(mirror_upper(upper).T)

    def row_sums(self, func: Callable, *args, rows=None) -> tuple:
        """``func`` on the whole data: it is one block of rows."""
        weights = self.weights.astype(np.float64) * self.weight_sum
        extra = () if rows is None else (rows,)
        return func(self.X, self.y, weights, *extra, *args)

    def gram(self) -> np.ndarray:
        """``[X, 1]^T D [X, 1]``, float64."""
        q = self.n_features + 1
        gram = np.zeros((q, q))
        n_rows = max(1, _SECOND_ORDER_BLOCK_BYTES // (8 * q))
        for rows, X in _row_slices(self.X, n_rows):
            design = _design(X)
            gram += _weighted_product(
                design, design, self.weights[rows].astype(np.float64)
            )
        return gram
