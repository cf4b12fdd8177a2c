r"""The contract every loss engine keeps, and the pieces they share.

An engine evaluates the unpenalized weighted mean cross-entropy of softmax
regression on fixed training data,

.. math::

    f(W, b) = \sum_i \frac{s_i}{S}
        \left[\operatorname{logsumexp}(a_i) - a_{i, y_i}\right],
    \qquad a_i = W^\top x_i + b, \quad S = \sum_i s_i,

and its derivatives, wherever the data live: in NumPy or scipy.sparse
arrays, on a device through the Array API, or in the row chunks of a Dask
array. It knows nothing of the penalty, the optimizer or scikit-learn.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


def dtype_name(dtype) -> str:
    """``"float32"`` or ``"float64"`` for an engine's dtype, of any array library."""
    return str(dtype).rsplit(".", 1)[-1]


def epsilon(dtype) -> float:
    """The machine epsilon of an engine's dtype, of any array library."""
    return float(np.finfo(dtype_name(dtype)).eps)


class LossEngine(Protocol):
    r"""The unpenalized weighted mean cross-entropy on fixed data.

    Parameters travel as one flat float64 NumPy vector on the host, laid out
    as ``[W.ravel(), b]`` with ``W`` of shape ``(n_features, n_classes)`` in C
    order: the ``(n_features + 1) x n_classes`` matrix of coefficients with
    the intercepts as its last row. Without an intercept ``b`` keeps its
    place but is held at zero: every derivative is zero there.

    With ``P`` the probabilities, ``Y`` the one-hot labels, ``D`` the diagonal
    of ``s_i / S`` and :math:`\tilde X = [X, 1]`, the gradient is
    :math:`\tilde X^\top D (P - Y)`, and the Hessian times a direction
    ``V`` (same layout) is :math:`\tilde X^\top D R` with
    :math:`A = \tilde X V`, :math:`R = P \odot (A - \operatorname{rowsum}(P \odot A))`.

    Attributes
    ----------
    n_features : int
        Number of columns of ``X``.
    n_classes : int
        Number of classes ``K``.
    fit_intercept : bool
        Whether ``b`` is a free parameter.
    dtype : dtype
        The dtype the arithmetic on the data runs in (that of ``X``).
    n_params : int
        ``(n_features + 1) * n_classes``.
    """

    n_features: int
    n_classes: int
    fit_intercept: bool
    dtype: Any

    @property
    def n_params(self) -> int: ...

    def unpack(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Views ``W`` (n_features, n_classes) and ``b`` (n_classes,) of ``params``."""

    def loss_gradient(self, params: np.ndarray) -> tuple[float, np.ndarray]:
        """Value and gradient (float64, shape ``(n_params,)``) at ``params``."""

    def hessian_product(
        self, params: np.ndarray
    ) -> tuple[float, np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Value, gradient, and a function mapping a direction to the Hessian times it.

        The function stays valid until the next call of ``hessian_product``.
        """

    def hessian(self, params: np.ndarray) -> np.ndarray:
        r"""The Hessian at ``params``, dense, of shape ``(n_params, n_params)``.

        :math:`\sum_i (s_i / S)\,(\tilde x_i \tilde x_i^\top) \otimes
        (\operatorname{diag}(p_i) - p_i p_i^\top)` in the flat layout.
        """

    def score_outer(self, params: np.ndarray) -> np.ndarray:
        r"""The weighted sum of outer products of the per-sample scores.

        With :math:`g_i = \tilde x_i \otimes (p_i - y_i)` the gradient of
        sample i's cross-entropy, :math:`\sum_i (s_i / S)\, g_i g_i^\top`,
        dense, of shape ``(n_params, n_params)``: the middle of a sandwich
        covariance.
        """

    def gram(self) -> np.ndarray:
        r""":math:`\tilde X^\top D \tilde X`, a square of side ``n_features + 1``.

        The last row and column belong to the column of ones, also without
        an intercept.
        """

    def column_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean and standard deviation of each column of ``X``, float64.

        For any finite feature values, 1e-300 and 1e300 included, where
        squares overflow or underflow: the preconditioner needs them for any
        data. The spread is exact to float64's rounding of the mean, not of
        the squares (a column of 1e9 plus unit noise keeps its spread), and a
        column whose weighted values are all equal gets a spread far below
        the rounding of its mean.
        """

    def separates(self, W: np.ndarray, b: np.ndarray) -> bool:
        """Whether ``(W, b)`` ranks every positively weighted sample's class first."""

    # Optional: ``curvature_sample(n_rows, fewest, mean, scale)``, an engine on a
    # standardized sample of rows for approximate Hessian products, or None
    # (see NumPyEngine). Solvers use exact products on an engine without it.
    # Optional: ``curvature_at(params)``, ``hessian_product``'s third result
    # without its value and gradient, where the engine makes it for less; and
    # ``ray_curvature(params)``, ``params^T H params`` of the data term without
    # a product.

    def row_sums(self, func: Callable, *args, rows=None) -> tuple:
        """Sums over blocks of rows of ``func(X, codes, weights[, rows], *args)``.

        For statistics that add up over the samples (inference's cluster
        scores, the overlap certificate) and must run where the data are.
        ``func`` gets a block of ``X`` as NumPy or scipy.sparse data, float64
        when ``X`` is, its class codes, its weights ``s_i`` (not divided by
        ``S``) and, when ``rows`` (an array of one entry per sample) is
        given, that array's part for the block; it returns a tuple of
        numbers or arrays, which are added element-wise over the blocks.
        """


class ParameterLayout:
    """The flat parameter vector ``[W.ravel(), b]`` that every engine shares.

    Subclasses set ``n_features``, ``n_classes`` and ``fit_intercept``.
    """

    n_features: int
    n_classes: int
    fit_intercept: bool

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        return (self.n_features + 1) * self.n_classes

    def column_moments(self) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean and standard deviation of each column of ``X``, float64.

        Computed once per engine by its ``_column_moments``: a fit asks for
        them several times (scale checks, preconditioner), and each asking
        is a pass over ``X``, on a cluster a round trip.
        """
        if getattr(self, "_moments", None) is None:
            self._moments = self._column_moments()
        return self._moments

    def unpack(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Split a flat parameter vector into views ``W`` and ``b``."""
        d, k = self.n_features, self.n_classes
        return params[: d * k].reshape(d, k), params[d * k :]

    def mask_intercept(self, flat: np.ndarray) -> np.ndarray:
        """Zero the intercept part of a gradient without an intercept, in place."""
        if not self.fit_intercept:
            flat[self.n_features * self.n_classes :] = 0.0
        return flat

    def mask_intercept_square(self, square: np.ndarray) -> np.ndarray:
        """Zero the intercept rows and columns of a square, without an intercept."""
        if not self.fit_intercept:
            start = self.n_features * self.n_classes
            square[start:, :] = 0.0
            square[:, start:] = 0.0
        return square

    def assemble(self, parts) -> tuple[float, np.ndarray]:
        """Sum per-block ``(value, X^T G, 1^T G)`` into a value and a flat gradient."""
        flat = np.zeros(self.n_params)
        grad_W, grad_b = self.unpack(flat)
        value = 0.0
        for part_value, part_W, part_b in parts:
            value += part_value
            grad_W += part_W
            grad_b += part_b
        return value, self.mask_intercept(flat)


@dataclass
class TrainingData:
    """An engine with the labels' bookkeeping that a fit needs.

    Attributes
    ----------
    engine : LossEngine
    classes : ndarray of shape (n_classes,)
        The sorted distinct labels.
    class_totals : ndarray of shape (n_classes,)
        Summed effective weight of each class.
    """

    engine: LossEngine
    classes: np.ndarray
    class_totals: np.ndarray

    @property
    def weight_sum(self) -> float:
        """``S``, the sum of the effective sample weights."""
        return float(np.sum(self.class_totals))

    def null_params(self) -> np.ndarray:
        """The intercept-only optimum: ``W = 0`` and ``b`` the centred log priors."""
        params = np.zeros(self.engine.n_params)
        if self.engine.fit_intercept:
            priors = self.class_totals / self.weight_sum
            log_priors = np.log(np.maximum(priors, np.finfo(np.float64).tiny))
            # Centred: the softmax ignores a common shift, and the unpenalized
            # intercept's gradient never changes the mean, so this is where
            # scikit-learn's zero start ends up too.
            _, b = self.engine.unpack(params)
            b[...] = log_priors - log_priors.mean()
        return params
