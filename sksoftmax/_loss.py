"""The penalized multinomial cross-entropy: value, gradient and probabilities.

This module is the math of DESIGN.md and nothing else: it knows no estimator
and no optimizer. Parameters travel as one flat float64 vector (what scipy's
optimizers want) laid out as ``[W.ravel(), b]`` with ``W`` of shape
``(n_features, n_classes)`` in C order and ``b`` of shape ``(n_classes,)``.

Evaluations run over blocks of rows. Each block's logits stay in cache
through the max-shift, exp, normalization and the scaling by the weights, so
those element-wise passes cost little beyond the two matrix products, and
only one block of scratch memory is needed. The logits are held class-major,
K x n_rows, so that reductions over classes run along the long, contiguous
axis: numpy is several times slower reducing rows of length K. Threads come
from the BLAS inside each block's matrix products: a thread pool over blocks,
tried too, was slower on 2 cores and was not kept.
"""

import numpy as np
from scipy import sparse

from ._separation import separates

# Bytes of one block of logits, well inside L2 caches: at 100k x 100 x 10,
# half or twice as much measured 5-15% slower in float32 and float64.
_BLOCK_BYTES = 1 << 18


def _row_slices(X, n_rows):
    """Views of consecutive row blocks of X (dense rows or CSR rows)."""
    n_samples = X.shape[0]
    blocks = []
    for start in range(0, n_samples, n_rows):
        stop = min(start + n_rows, n_samples)
        if sparse.issparse(X):
            indptr = X.indptr[start : stop + 1]
            lo, hi = indptr[0], indptr[-1]
            part = sparse.csr_matrix(
                (X.data[lo:hi], X.indices[lo:hi], indptr - lo),
                shape=(stop - start, X.shape[1]),
                copy=False,
            )
        else:
            part = X[start:stop]
        blocks.append((slice(start, stop), part))
    return blocks


class ParameterLayout:
    """The flat parameter vector ``[W.ravel(), b]`` every loss engine shares.

    Subclasses set ``n_features`` and ``n_classes``.
    """

    @property
    def n_params(self):
        return (self.n_features + 1) * self.n_classes

    def unpack(self, params):
        """Split a flat parameter vector into views ``W`` and ``b``."""
        d, k = self.n_features, self.n_classes
        return params[: d * k].reshape(d, k), params[d * k :]


class SoftmaxLoss(ParameterLayout):
    r"""Objective of softmax regression on fixed data.

    .. math::

        f(W, b) = \frac{1}{S}\sum_i s_i\,[\operatorname{logsumexp}(a_i) - a_{i,y_i}]
                  + \frac{\lambda}{2}\,\lVert W \rVert_F^2,
        \qquad a_i = W^\top x_i + b,

    with :math:`S = \sum_i s_i`. The gradient is
    :math:`\nabla_W = X^\top D (P - Y) + \lambda W`,
    :math:`\nabla_b = \mathbf{1}^\top D (P - Y)` with :math:`D = \operatorname{diag}(s)/S`.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        Training data, float32 or float64. Arithmetic happens in this dtype.
    y : ndarray of shape (n_samples,)
        Integer class codes in ``[0, n_classes)``.
    n_classes : int
        Number of classes K.
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights ``s_i`` (sample weight times class weight); their
        sum ``S`` must be positive.
    l2_reg_strength : float
        :math:`\lambda`, the coefficient of ``0.5 * ||W||^2``; scikit-learn's
        ``1 / (C * S)``.
    fit_intercept : bool
        Whether ``b`` is a free parameter. When False the flat vector still has
        room for it, but ``b`` is held at zero and its gradient is zero.
    """

    def __init__(self, X, y, n_classes, sample_weight, l2_reg_strength, fit_intercept):
        if sparse.issparse(X):
            X = X.tocsr()
        self.X = X
        self.y = np.asarray(y, dtype=np.intp)
        self.n_classes = n_classes
        self.l2_reg_strength = float(l2_reg_strength)
        self.fit_intercept = fit_intercept
        self.dtype = X.dtype
        n_samples, self.n_features = X.shape
        weight_sum = float(np.sum(sample_weight, dtype=np.float64))
        # Per-row weights s_i / S, the diagonal of D, in X's dtype: a float64
        # copy would cost a float32 fit a fifth of its n x K budget.
        self.weights = (np.asarray(sample_weight, dtype=np.float64) / weight_sum).astype(
            self.dtype, copy=False
        )
        # Many classes: at least 256 rows, or per-block overhead dominates.
        n_rows = max(256, _BLOCK_BYTES // (self.dtype.itemsize * n_classes))
        self._blocks = _row_slices(X, n_rows)
        # Position of each row's true-class logit in its flattened K x n_rows
        # block, so gather and scatter are one-dimensional takes.
        index_type = np.int32 if n_rows * n_classes < 2**31 else np.intp
        self._target = np.empty(n_samples, dtype=index_type)
        for rows, _ in self._blocks:
            self._target[rows] = self.y[rows] * (rows.stop - rows.start)
            self._target[rows] += np.arange(rows.stop - rows.start, dtype=index_type)
        n_max = self._blocks[0][0].stop
        self._logits = np.empty((n_classes, n_max), dtype=self.dtype)
        self._rowwise = np.empty((n_max, n_classes), dtype=self.dtype)
        self._proba = None

    def column_moments(self):
        """Weighted mean and variance of each column of ``X``.

        Returns
        -------
        mean, var : ndarray of shape (n_features,), float64
            Under the weights ``s_i / S``.
        """
        # Squares accumulate in float64: in float32 they overflow once
        # |x| > 1.8e19, a valid feature value.
        if sparse.issparse(self.X):
            mean = self.X.T @ self.weights
            mean_sq = self.X.power(2, dtype=np.float64).T @ self.weights
        else:
            mean = self.weights @ self.X
            mean_sq = np.einsum(
                "ij,ij,i->j", self.X, self.X, self.weights, dtype=np.float64
            )
        mean = np.asarray(mean, dtype=np.float64)
        var = np.maximum(np.asarray(mean_sq, dtype=np.float64) - mean**2, 0.0)
        return mean, var

    def separates(self, W, b):
        """Whether ``(W, b)`` puts every weighted sample strictly in its own class."""
        logits = self.X @ W.astype(self.dtype, copy=False)
        if self.fit_intercept:
            logits += b.astype(self.dtype, copy=False)
        return separates(np.asarray(logits), self.y, self.weights)

    def _buffers(self, n_rows):
        """Scratch for one block: K x n_rows logits, n_rows x K product."""
        # The last block is shorter; its logits view must stay contiguous.
        logits = self._logits.reshape(-1)[: self.n_classes * n_rows]
        return logits.reshape(self.n_classes, n_rows), self._rowwise[:n_rows]

    def _logits_into(self, X, W, b, n_rows):
        """The scratch K x n_rows block filled with ``(X W + b)^T``."""
        logits, rowwise = self._buffers(n_rows)
        if sparse.issparse(X):
            logits[...] = (X @ W).T
        elif self.dtype == np.float32:
            # OpenBLAS's sgemm is fastest writing n_rows x K and its dgemm
            # writing K x n_rows (benchmarks/evaluation.py, "layout").
            np.matmul(X, W, out=rowwise)
            logits[...] = rowwise.T
        else:
            np.matmul(W.T, X.T, out=logits)
        if self.fit_intercept:
            logits += b[:, None]
        return logits

    def _cast(self, params):
        W, b = self.unpack(params)
        return W.astype(self.dtype, copy=False), b.astype(self.dtype, copy=False)

    def _reduce(self, parts, extra_W):
        """Sum per-block (value, grad_W, grad_b) and add ``lambda * extra_W``."""
        grad = np.zeros(self.n_params, dtype=np.float64)
        grad_W, grad_b = self.unpack(grad)
        value = 0.0
        for part_value, part_W, part_b in parts:
            value += part_value
            grad_W += part_W
            grad_b += part_b
        if not self.fit_intercept:
            grad_b[...] = 0.0
        grad_W += self.l2_reg_strength * extra_W
        return value, grad

    def loss_gradient(self, params, *, keep_proba=False):
        """Objective value and its gradient at ``params``.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
        keep_proba : bool, default=False
            Also keep the probabilities P, which :meth:`hessian_product`
            needs: n_samples x K more memory.

        Returns
        -------
        value : float
        gradient : ndarray of shape (n_params,), float64
        """
        W, b = self._cast(params)
        if keep_proba and self._proba is None:
            self._proba = np.empty((self.n_classes, self.X.shape[0]), self.dtype)
        proba = self._proba if keep_proba else None

        def block_loss_gradient(block):
            rows, X = block
            logits = self._logits_into(X, W, b, rows.stop - rows.start)
            # log-sum-exp with the maximum subtracted: exp never overflows.
            logits -= logits.max(axis=0)
            flat = logits.reshape(-1)
            target = self._target[rows]
            true_logit = flat.take(target)
            np.exp(logits, out=logits)
            total = logits.sum(axis=0)
            # Accumulated in float64: the line search compares these values.
            value = float(
                np.dot(
                    self.weights[rows].astype(np.float64, copy=False),
                    (np.log(total) - true_logit).astype(np.float64, copy=False),
                )
            )
            if proba is not None:
                np.divide(logits, total, out=proba[:, rows])
            # logits <- (D (P - Y))^T: one scaling pass, one scatter.
            weights = self.weights[rows]
            logits *= weights / total
            flat[target] -= weights
            return value, X.T @ logits.T, logits.sum(axis=1, dtype=np.float64)

        W64, _ = self.unpack(params)
        value, grad = self._reduce(map(block_loss_gradient, self._blocks), W64)
        value += 0.5 * self.l2_reg_strength * float(np.vdot(W64, W64))
        return value, grad

    def hessian_product(self, params):
        """Objective, gradient and a Hessian-vector product at ``params``.

        For a direction ``(V, v_b)``: ``A = X V + v_b``,
        ``R = P * (A - rowsum(P * A))``, ``H V = X^T D R + lambda V`` and
        ``H v_b = 1^T D R``.

        Parameters
        ----------
        params : ndarray of shape (n_params,)

        Returns
        -------
        value : float
        gradient : ndarray of shape (n_params,), float64
        hessp : callable
            ``hessp(direction)`` maps a flat direction of shape (n_params,)
            to the flat product, float64. Valid until the next call of
            ``loss_gradient(..., keep_proba=True)`` or ``hessian_product``.
        """
        value, grad = self.loss_gradient(params, keep_proba=True)
        proba = self._proba

        def hessp(direction):
            V, v_b = self._cast(direction)

            def block_product(block):
                rows, X = block
                A = self._logits_into(X, V, v_b, rows.stop - rows.start)
                P = proba[:, rows]
                A -= np.einsum("ki,ki->i", P, A)
                A *= P
                A *= self.weights[rows]
                return 0.0, X.T @ A.T, A.sum(axis=1, dtype=np.float64)

            return self._reduce(map(block_product, self._blocks), self.unpack(direction)[0])[1]

        return value, grad, hessp
