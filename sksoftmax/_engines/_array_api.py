"""The loss engine for torch, CuPy and any other Array API library.

L-BFGS-B keeps its state on the host with scipy while ``X`` and the labels
stay on their device: per evaluation only the ``(n_features + 1) x n_classes``
parameters travel to the device, and the gradient and the value come back
together in one transfer. The code uses only functions and operators of the
Array API standard, through array-api-compat, so one implementation serves
every library.
"""

import functools
from collections.abc import Callable

import numpy as np
from sklearn.utils._array_api import move_to

from .._separation import separates
from ._base import ParameterLayout

# Bytes of X converted at a time when computing the column moments, and of
# the per-sample scores formed at a time for the dense Hessian.
_BLOCK_BYTES = 1 << 26


def _to_host(array):
    """A device array as a float64 NumPy array."""
    return np.asarray(move_to(array, xp=np, device="cpu"), dtype=np.float64)


class ArrayAPIEngine(ParameterLayout):
    """The unpenalized weighted cross-entropy on data of an Array API library.

    Keeps the contract of :class:`~sksoftmax._engines._base.LossEngine`.
    Arithmetic on the data happens on ``X``'s device in ``X``'s dtype; the
    parameters and the results live on the host in float64.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Training data of an Array API library (torch, CuPy, array-api-strict),
        float32 or float64. It is not copied.
    y : ndarray of shape (n_samples,)
        Integer class codes in ``[0, n_classes)``, on the host.
    n_classes : int
        Number of classes K.
    sample_weight : ndarray of shape (n_samples,)
        Non-negative weights ``s_i`` on the host; their sum must be positive.
    fit_intercept : bool
        Whether ``b`` is a free parameter.
    """

    def __init__(self, X, y, n_classes, sample_weight, fit_intercept):
        # Imported here: array-api-compat is an optional dependency, needed
        # only once an array other than NumPy's arrives.
        import array_api_compat

        xp = array_api_compat.array_namespace(X)
        self._xp = xp
        self._device = array_api_compat.device(X)
        self.X = X
        self.dtype = X.dtype
        self.n_classes = n_classes
        self.fit_intercept = fit_intercept
        self.n_features = X.shape[1]
        weights = np.asarray(sample_weight, dtype=np.float64)
        # s_i / S on the host, and as a column on the device.
        self.weight_sum = float(weights.sum())
        self.weights = weights / self.weight_sum
        self.y = np.asarray(y)
        self._weights = self._to_device(self.weights[:, None])
        # The same weights as a row, for the K x n evaluations (a view).
        self._weights_row = self._weights.T
        codes = np.asarray(y, dtype=np.int64)
        # Where each sample's own logit sits in the flattened K x n logits:
        # one gather per evaluation instead of a one-hot pass over all K.
        self._true_index = xp.asarray(
            codes * codes.shape[0] + np.arange(codes.shape[0], dtype=np.int64),
            device=self._device,
        )
        # Which entry of the K x n logits is each sample's own class: a
        # quarter of a float32 n x K array, for the selections of the
        # evaluations (the standard has no scatter).
        self._own = xp.asarray(
            codes[None, :] == np.arange(n_classes)[:, None], device=self._device
        )
        self._proba = None

    def _to_device(self, array, dtype=None):
        return self._xp.asarray(
            array, dtype=self.dtype if dtype is None else dtype, device=self._device
        )

    @functools.cached_property
    def _accumulation_dtype(self):
        """float64 where the device has it (Apple's MPS does not), else float32."""
        xp = self._xp
        try:
            xp.zeros(1, dtype=xp.float64, device=self._device)
        except (TypeError, RuntimeError, ValueError):
            return xp.float32
        return xp.float64

    def _row_blocks(self, width):
        """Row slices with about ``_BLOCK_BYTES`` of ``width`` float64 columns each."""
        n_samples = self.X.shape[0]
        n_rows = max(1, _BLOCK_BYTES // (8 * max(width, 1)))
        for start in range(0, n_samples, n_rows):
            yield slice(start, min(start + n_rows, n_samples))

    def _column_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean and standard deviation of each column of ``X``.

        Returns
        -------
        mean, std : ndarray of shape (n_features,), float64
            Under the weights ``s_i / S``, on the host.
        """
        xp = self._xp
        # float64 where possible, and on columns divided by their largest
        # magnitude, so that squares neither overflow nor underflow. Blocks
        # bound the converted copy of X.
        dtype = self._accumulation_dtype
        weights = xp.astype(self._weights, dtype)

        def blocks():
            for rows in self._row_blocks(self.n_features):
                yield xp.astype(self.X[rows, :], dtype), weights[rows, :]

        magnitude = xp.zeros(self.n_features, dtype=dtype, device=self._device)
        for X, _ in blocks():
            magnitude = xp.maximum(magnitude, xp.max(xp.abs(X), axis=0))
        magnitude = xp.where(magnitude > 0, magnitude, xp.ones_like(magnitude))
        # The weights add up to one only within their dtype's rounding.
        total = xp.sum(weights)
        mean = sum(xp.sum(X / magnitude * w, axis=0) for X, w in blocks()) / total
        # The deviations' own sum corrects the mean's rounding (the corrected
        # two-pass formula): a column whose values are all equal gets a
        # spread far below the rounding of its mean.
        squares, deviations = 0.0, 0.0
        for X, w in blocks():
            deviation = X / magnitude - mean
            squares = squares + xp.sum(deviation**2 * w, axis=0)
            deviations = deviations + xp.sum(deviation * w, axis=0)
        var = xp.maximum(squares - deviations**2 / total, xp.zeros_like(squares))
        var = var / total
        mean = mean + deviations / total
        return _to_host(mean * magnitude), _to_host(xp.sqrt(var) * magnitude)

    def separates(self, W: np.ndarray, b: np.ndarray) -> bool:
        """Whether ``(W, b)`` puts every weighted sample strictly in its own class."""
        W, b = self._to_device(W), self._to_device(b)
        return separates(_to_host(self._logits(W, b)), self.y, self.weights)

    def _parameters(self, params):
        """``W`` and ``b`` on the device from one transfer of ``params``."""
        # The flat layout is W's rows followed by b: a (d + 1) x K matrix.
        stacked = self._to_device(params.reshape(self.n_features + 1, self.n_classes))
        return stacked[: self.n_features, :], stacked[self.n_features, :]

    def _logits(self, W, b, X=None):
        logits = (self.X if X is None else X) @ W
        if self.fit_intercept:
            logits += b
        return logits

    def _class_logits(self, W, b):
        """The logits transposed, K x n.

        In this layout every reduction over the classes runs across rows of
        length n, which GPUs do at memory speed; along rows of length K they
        ran at a fifth of it (measured on an H200 with torch).
        """
        logits = W.T @ self.X.T
        if self.fit_intercept:
            logits += b[:, None]
        return logits

    def _sums_to_host(self, residual, value=None):
        """``(X^T R, 1^T R)`` of a K x n ``R^T`` and the value, in one transfer."""
        xp = self._xp
        parts = [xp.reshape((residual @ self.X).T, (-1,)), xp.sum(residual, axis=1)]
        if value is not None:
            parts.append(xp.reshape(value, (1,)))
        return _to_host(xp.concat(parts))

    def loss_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective value and its gradient at ``params``.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            On the host, float64.

        Returns
        -------
        value : float
        gradient : ndarray of shape (n_params,), float64, on the host
        """
        return self._loss_gradient(params, keep_proba=False)

    def _loss_gradient(self, params, keep_proba):
        """Value and gradient; with ``keep_proba``, keep P on the device.

        The other classes' share of each sample's exp is summed without its
        own class's term: near separation it is far below the rounding of
        the total (float32: 6e-8 of it), and both the loss, log1p(share)
        where the own class leads, and the own class's entry of ``P - Y``,
        ``-share / total``, are proportional to it.
        """
        xp = self._xp
        logits = self._class_logits(*self._parameters(params))
        # log-sum-exp with each sample's largest logit subtracted: exp never
        # overflows.
        logits -= xp.max(logits, axis=0, keepdims=True)
        true_logits = xp.take(xp.reshape(logits, (-1,)), self._true_index)
        exps = xp.exp(logits)
        del logits  # at most two n x K arrays live at once (three to keep P)
        true_exps = xp.take(xp.reshape(exps, (-1,)), self._true_index)
        zero = xp.zeros((), dtype=self.dtype, device=self._device)
        exps = xp.where(self._own, zero, exps)
        others = xp.sum(exps, axis=0)
        total = others + true_exps
        sample_loss = xp.log1p((true_exps - 1) + others) - true_logits
        # Weighted and summed in float64 where possible: a float32 loss near
        # its smallest normal (a margin of 80) times 1/n would lose digits to
        # subnormals, and a float32 total moves in steps of 6e-8 relative,
        # which L-BFGS-B takes for convergence too early.
        dtype = self._accumulation_dtype
        value = xp.sum(
            xp.astype(sample_loss, dtype) * xp.astype(self._weights_row[0, :], dtype)
        )
        if keep_proba:
            self._proba = xp.where(self._own, true_exps / total, exps / total)
        # D (P - Y), the own class's entry from the others' share. The
        # weights and the normalization in one pass over the n x K entries.
        scale = self._weights_row / total
        exps *= scale
        residual = xp.where(self._own, -scale * others, exps)
        del exps
        flat = self._sums_to_host(residual, value)
        return float(flat[-1]), self.mask_intercept(flat[: self.n_params])

    def hessian_product(
        self, params: np.ndarray
    ) -> tuple[float, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Objective, gradient and a Hessian-vector product at ``params``.

        For a direction ``(V, v_b)``: ``A = X V + v_b``,
        ``R = P * (A - rowsum(P * A))``, ``H V = X^T D R`` and
        ``H v_b = 1^T D R``.

        Returns
        -------
        value : float
        gradient : ndarray of shape (n_params,), float64
        hessp : callable
            ``hessp(direction)`` maps a flat host direction to the flat
            product on the host, float64.
        """
        xp = self._xp
        value, grad = self._loss_gradient(params, keep_proba=True)
        proba = self._proba
        likelier = xp.take(xp.reshape(proba, (-1,)), self._true_index) >= 0.5

        def hessp(direction):
            A = self._class_logits(*self._parameters(direction))
            # Less the own class's entry where it is the likelier, as in the
            # NumPy engine.
            own = xp.take(xp.reshape(A, (-1,)), self._true_index)
            A -= xp.where(likelier, own, xp.zeros_like(own))
            A -= xp.sum(proba * A, axis=0, keepdims=True)
            A *= proba
            A *= self._weights_row
            return self.mask_intercept(self._sums_to_host(A))

        return value, grad, hessp

    def _second_order_blocks(self, params):
        """Per block of rows: ``[X, 1]``, the probabilities and the weights, float64."""
        xp = self._xp
        dtype = self._accumulation_dtype
        W64, b64 = self.unpack(params)
        W, b = self._to_device(W64, dtype), self._to_device(b64, dtype)
        weights = xp.astype(self._weights, dtype)
        for rows in self._row_blocks((self.n_features + 1) * self.n_classes):
            X = xp.astype(self.X[rows, :], dtype)
            logits = self._logits(W, b, X)
            logits -= xp.max(logits, axis=1, keepdims=True)
            proba = xp.exp(logits)
            proba /= xp.sum(proba, axis=1, keepdims=True)
            ones = xp.ones((X.shape[0], 1), dtype=dtype, device=self._device)
            yield rows, xp.concat([X, ones], axis=1), proba, weights[rows, :]

    def _kron_rows(self, design, factors):
        xp = self._xp
        n_rows = design.shape[0]
        return xp.reshape(design[:, :, None] * factors[:, None, :], (n_rows, -1))

    def hessian(self, params: np.ndarray) -> np.ndarray:
        """The dense Hessian at ``params``, float64 on the host."""
        xp = self._xp
        K, q = self.n_classes, self.n_features + 1
        hessian, by_class = 0.0, 0.0
        for _, design, proba, weights in self._second_order_blocks(params):
            kron = self._kron_rows(design, proba)
            hessian = hessian - xp.matrix_transpose(kron) @ (kron * weights)
            by_class = by_class + xp.matrix_transpose(design) @ (kron * weights)
        hessian = _to_host(hessian)
        square = hessian.reshape(q, K, q, K)
        by_class = _to_host(by_class).reshape(q, q, K)
        for k in range(K):
            square[:, k, :, k] += by_class[:, :, k]
        return self.mask_intercept_square(hessian)

    def score_outer(self, params: np.ndarray) -> np.ndarray:
        """Weighted sum of the per-sample scores' outer products, float64."""
        xp = self._xp
        dtype = self._accumulation_dtype
        classes = xp.arange(self.n_classes, device=self._device)
        outer = 0.0
        for rows, design, proba, weights in self._second_order_blocks(params):
            codes = xp.asarray(self.y[rows][:, None], device=self._device)
            residual = proba - xp.astype(codes == classes, dtype)
            kron = self._kron_rows(design, residual)
            outer = outer + xp.matrix_transpose(kron) @ (kron * weights)
        return self.mask_intercept_square(_to_host(outer))

    def row_sums(self, func: Callable, *args, rows=None) -> tuple:
        """``func`` on a float64 copy of the data on the host, one block of rows.

        Its users (inference's statistics) run on the host anyway.
        """
        extra = () if rows is None else (rows,)
        return func(
            _to_host(self.X), self.y, self.weights * self.weight_sum, *extra, *args
        )

    def gram(self) -> np.ndarray:
        """``[X, 1]^T D [X, 1]``, float64 on the host."""
        xp = self._xp
        gram = 0.0
        params = np.zeros(self.n_params)
        for _, design, _, weights in self._second_order_blocks(params):
            gram = gram + xp.matrix_transpose(design) @ (design * weights)
        return _to_host(gram)
