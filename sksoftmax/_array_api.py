"""The softmax loss evaluated where the data live: torch, CuPy, any Array API library.

:class:`ArrayAPISoftmaxLoss` is :class:`~sksoftmax._loss.SoftmaxLoss` for
arrays that are not NumPy's. It offers the solvers the same interface, so
L-BFGS-B keeps its state on the host with scipy while ``X`` and the labels
stay on their device: per evaluation only the ``(n_features + 1) x n_classes``
parameters travel to the device, and the gradient and the value come back
together in one transfer. The code uses only functions and operators of the
Array API standard, through array-api-compat, so one implementation serves
every library.

:func:`softmax_loss` picks the engine from the type of ``X``; NumPy arrays and
scipy.sparse matrices keep the blocked NumPy loss.
"""

import functools

import numpy as np
from scipy import sparse
from sklearn.utils._array_api import move_to

from ._loss import ParameterLayout, SoftmaxLoss
from ._separation import separates

# Bytes of X converted at a time when computing the column moments.
_MOMENT_BLOCK_BYTES = 1 << 26


def softmax_loss(X, y, n_classes, sample_weight, l2_reg_strength, fit_intercept):
    """The loss engine for ``X``: NumPy's for NumPy and sparse, else the Array API one.

    Parameters as for :class:`~sksoftmax._loss.SoftmaxLoss`; ``y`` and
    ``sample_weight`` are NumPy arrays on the host.
    """
    engine = (
        SoftmaxLoss
        if isinstance(X, np.ndarray) or sparse.issparse(X)
        else ArrayAPISoftmaxLoss
    )
    return engine(X, y, n_classes, sample_weight, l2_reg_strength, fit_intercept)


def _to_host(array):
    """A device array as a float64 NumPy array."""
    return np.asarray(move_to(array, xp=np, device="cpu"), dtype=np.float64)


class ArrayAPISoftmaxLoss(ParameterLayout):
    r"""Objective of softmax regression on data held by an Array API library.

    The same objective, gradient and Hessian-vector product as
    :class:`~sksoftmax._loss.SoftmaxLoss`, and the same flat float64
    parameter layout ``[W.ravel(), b]`` on the host. Arithmetic on the data
    happens on ``X``'s device in ``X``'s dtype; the penalty, which needs only
    the parameters, is added on the host in float64.

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
    l2_reg_strength : float
        :math:`\lambda`, the coefficient of ``0.5 * ||W||^2``.
    fit_intercept : bool
        Whether ``b`` is a free parameter.
    """

    def __init__(self, X, y, n_classes, sample_weight, l2_reg_strength, fit_intercept):
        # Imported here: array-api-compat is an optional dependency, needed
        # only once an array other than NumPy's arrives.
        import array_api_compat

        xp = array_api_compat.array_namespace(X)
        self._xp = xp
        self._device = array_api_compat.device(X)
        self.X = X
        self.dtype = X.dtype
        self.n_classes = n_classes
        self.l2_reg_strength = float(l2_reg_strength)
        self.fit_intercept = fit_intercept
        self.n_features = X.shape[1]
        weights = np.asarray(sample_weight, dtype=np.float64)
        # s_i / S on the host, as SoftmaxLoss.weights (the starting point
        # reads it), and as a column on the device.
        self.weights = weights / weights.sum()
        self.y = np.asarray(y)
        self._weights = self._to_device(self.weights[:, None])
        codes = xp.asarray(np.asarray(y, dtype=np.int64)[:, None], device=self._device)
        classes = xp.arange(n_classes, dtype=codes.dtype, device=self._device)
        # D Y: one-hot labels scaled by the weights, n_samples x K. It makes
        # the true-class logits and the gradient's "- D Y" dense element-wise
        # operations, which every library runs fast on its device.
        self._weighted_target = xp.astype(codes == classes, self.dtype) * self._weights
        self._proba = None

    def _to_device(self, array):
        return self._xp.asarray(array, dtype=self.dtype, device=self._device)

    @functools.cached_property
    def _accumulation_dtype(self):
        """float64 where the device has it (Apple's MPS does not), else float32."""
        xp = self._xp
        try:
            xp.zeros(1, dtype=xp.float64, device=self._device)
        except (TypeError, RuntimeError, ValueError):
            return xp.float32
        return xp.float64

    def column_moments(self):
        """Weighted mean and variance of each column of ``X``.

        Returns
        -------
        mean, var : ndarray of shape (n_features,), float64
            Under the weights ``s_i / S``, on the host.
        """
        xp = self._xp
        # Squares accumulate in float64 where possible: in float32 they
        # overflow once |x| > 1.8e19. Blocks bound the converted copy of X.
        dtype = self._accumulation_dtype
        weights = xp.astype(self._weights, dtype)
        n_samples = self.X.shape[0]
        n_rows = max(1, _MOMENT_BLOCK_BYTES // (8 * max(self.n_features, 1)))

        def blocks():
            for start in range(0, n_samples, n_rows):
                rows = slice(start, min(start + n_rows, n_samples))
                yield xp.astype(self.X[rows, :], dtype), weights[rows, :]

        mean = sum(xp.sum(X * w, axis=0) for X, w in blocks())
        var = sum(xp.sum(((X - mean) ** 2) * w, axis=0) for X, w in blocks())
        return _to_host(mean), _to_host(var)

    def separates(self, W, b):
        """Whether ``(W, b)`` puts every weighted sample strictly in its own class."""
        W, b = self._to_device(W), self._to_device(b)
        return separates(_to_host(self._logits(W, b)), self.y, self.weights)

    def _logits(self, W, b):
        logits = self.X @ W
        if self.fit_intercept:
            logits += b
        return logits

    def _gradient_to_host(self, residual, value=None):
        """``(X^T R, 1^T R)`` and the value, fetched in one transfer, float64."""
        xp = self._xp
        parts = [xp.reshape(self.X.T @ residual, (-1,)), xp.sum(residual, axis=0)]
        if value is not None:
            parts.append(xp.reshape(value, (1,)))
        flat = _to_host(xp.concat(parts))
        grad = flat[: self.n_params]
        if not self.fit_intercept:
            grad[-self.n_classes :] = 0.0
        return flat, grad

    def loss_gradient(self, params, *, keep_proba=False):
        """Objective value and its gradient at ``params``.

        Parameters
        ----------
        params : ndarray of shape (n_params,)
            On the host, float64.
        keep_proba : bool, default=False
            Also keep the probabilities P on the device, which
            :meth:`hessian_product` needs.

        Returns
        -------
        value : float
        gradient : ndarray of shape (n_params,), float64, on the host
        """
        xp = self._xp
        W64, b64 = self.unpack(params)
        logits = self._logits(self._to_device(W64), self._to_device(b64))
        # log-sum-exp with the row maximum subtracted: exp never overflows.
        logits -= xp.max(logits, axis=1, keepdims=True)
        proba = xp.exp(logits)
        total = xp.sum(proba, axis=1, keepdims=True)
        row_loss = self._weights * xp.log(total) - xp.sum(
            self._weighted_target * logits, axis=1, keepdims=True
        )
        # Summed in float64 where possible: a float32 total moves in steps
        # of 6e-8 relative, which L-BFGS-B takes for convergence too early.
        value = xp.sum(xp.astype(row_loss, self._accumulation_dtype))
        proba /= total
        if keep_proba:
            self._proba = proba
            residual = proba * self._weights - self._weighted_target
        else:
            # D (P - Y), overwriting P, which is not needed any more.
            proba *= self._weights
            proba -= self._weighted_target
            residual = proba
        flat, grad = self._gradient_to_host(residual, value)
        grad[: W64.size] += self.l2_reg_strength * W64.ravel()
        value = float(flat[-1]) + 0.5 * self.l2_reg_strength * float(np.vdot(W64, W64))
        return value, grad

    def hessian_product(self, params):
        """Objective, gradient and a Hessian-vector product at ``params``.

        For a direction ``(V, v_b)``: ``A = X V + v_b``,
        ``R = P * (A - rowsum(P * A))``, ``H V = X^T D R + lambda V`` and
        ``H v_b = 1^T D R``; see :meth:`SoftmaxLoss.hessian_product
        <sksoftmax._loss.SoftmaxLoss.hessian_product>`.

        Returns
        -------
        value : float
        gradient : ndarray of shape (n_params,), float64
        hessp : callable
            ``hessp(direction)`` maps a flat host direction to the flat
            product on the host, float64.
        """
        xp = self._xp
        value, grad = self.loss_gradient(params, keep_proba=True)
        proba = self._proba

        def hessp(direction):
            V64, v_b64 = self.unpack(direction)
            A = self._logits(self._to_device(V64), self._to_device(v_b64))
            A -= xp.sum(proba * A, axis=1, keepdims=True)
            A *= proba
            A *= self._weights
            _, product = self._gradient_to_host(A)
            product[: V64.size] += self.l2_reg_strength * V64.ravel()
            return product

        return value, grad, hessp
