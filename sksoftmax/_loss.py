"""The penalized multinomial cross-entropy: value, gradient and probabilities.

This module is the math of DESIGN.md and nothing else: it knows no estimator
and no optimizer. Parameters travel as one flat float64 vector (what scipy's
optimizers want) laid out as ``[W.ravel(), b]`` with ``W`` of shape
``(n_features, n_classes)`` in C order and ``b`` of shape ``(n_classes,)``.
"""

import numpy as np
from scipy import sparse


class SoftmaxLoss:
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
        self.X = X
        self.y = np.asarray(y, dtype=np.intp)
        self.n_classes = n_classes
        self.l2_reg_strength = float(l2_reg_strength)
        self.fit_intercept = fit_intercept
        self.dtype = X.dtype
        n_samples, self.n_features = X.shape
        weight_sum = float(np.sum(sample_weight, dtype=np.float64))
        # Per-row weights s_i / S, the diagonal of D.
        self.weights = np.asarray(sample_weight, dtype=np.float64) / weight_sum
        self._weights_x = self.weights.astype(self.dtype)
        self._rows = np.arange(n_samples)
        # The n x K block reused by every evaluation: logits, then probabilities,
        # then D (P - Y).
        self._block = np.empty((n_samples, n_classes), dtype=self.dtype)

    @property
    def n_params(self):
        return (self.n_features + 1) * self.n_classes

    def unpack(self, params):
        """Split a flat parameter vector into views ``W`` and ``b``."""
        d, k = self.n_features, self.n_classes
        return params[: d * k].reshape(d, k), params[d * k :]

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
            mean = self.X.T @ self._weights_x
            mean_sq = self.X.power(2, dtype=np.float64).T @ self.weights
        else:
            mean = self._weights_x @ self.X
            mean_sq = np.einsum(
                "ij,ij,i->j", self.X, self.X, self.weights, dtype=np.float64
            )
        mean = np.asarray(mean, dtype=np.float64)
        var = np.maximum(np.asarray(mean_sq, dtype=np.float64) - mean**2, 0.0)
        return mean, var

    def _logits(self, W, b):
        block = self._block
        if sparse.issparse(self.X):
            block[...] = self.X @ W
        else:
            np.matmul(self.X, W, out=block)
        if self.fit_intercept:
            block += b
        return block

    def loss_gradient(self, params):
        """Objective value and its gradient at ``params``.

        Parameters
        ----------
        params : ndarray of shape (n_params,)

        Returns
        -------
        value : float
        gradient : ndarray of shape (n_params,), float64
        """
        W64, b64 = self.unpack(params)
        W = W64.astype(self.dtype, copy=False)
        b = b64.astype(self.dtype, copy=False)
        block = self._logits(W, b)

        # log-sum-exp with the row maximum subtracted, so exp never overflows.
        row_max = block.max(axis=1)
        block -= row_max[:, None]
        true_logit = block[self._rows, self.y]
        np.exp(block, out=block)
        row_sum = block.sum(axis=1)
        row_loss = np.log(row_sum) - true_logit
        value = float(np.dot(self.weights, row_loss.astype(np.float64, copy=False)))

        # block <- D (P - Y): scale each row by s_i / (S * rowsum) in one pass.
        block *= (self._weights_x / row_sum)[:, None]
        block[self._rows, self.y] -= self._weights_x

        grad = np.empty(self.n_params, dtype=np.float64)
        grad_W, grad_b = self.unpack(grad)
        grad_W[...] = self.X.T @ block
        if self.fit_intercept:
            block.sum(axis=0, out=grad_b, dtype=np.float64)
        else:
            grad_b[...] = 0.0
        if self.l2_reg_strength:
            value += 0.5 * self.l2_reg_strength * float(np.vdot(W64, W64))
            grad_W += self.l2_reg_strength * W64
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
            to the flat product, float64.
        """
        W, b = self.unpack(params)
        proba = self._logits(W.astype(self.dtype), b.astype(self.dtype)).copy()
        proba -= proba.max(axis=1, keepdims=True)
        np.exp(proba, out=proba)
        proba /= proba.sum(axis=1, keepdims=True)
        value, grad = self.loss_gradient(params)
        weights = self._weights_x[:, None]

        def hessp(direction):
            V, v_b = self.unpack(direction)
            A = self._logits(V.astype(self.dtype), v_b.astype(self.dtype))
            A -= np.sum(proba * A, axis=1, keepdims=True)
            A *= proba
            A *= weights
            out = np.empty(self.n_params, dtype=np.float64)
            out_W, out_b = self.unpack(out)
            out_W[...] = self.X.T @ A
            if self.fit_intercept:
                A.sum(axis=0, out=out_b, dtype=np.float64)
            else:
                out_b[...] = 0.0
            out_W += self.l2_reg_strength * V
            return out

        return value, grad, hessp

