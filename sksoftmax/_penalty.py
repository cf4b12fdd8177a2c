r"""The penalty on the coefficients: everything about it, in one place.

The objective is the engines' weighted mean cross-entropy plus

.. math::

    R(W) = \frac{\lambda_2}{2} \lVert W \rVert_F^2 + \lambda_1 \lVert W \rVert_1,
    \qquad \lambda_2 = \frac{1 - \rho}{C S}, \quad \lambda_1 = \frac{\rho}{C S},

with ``rho = l1_ratio`` and ``S`` the sum of the effective sample weights.
The intercepts are never penalized. The smooth part (value, gradient,
Hessian-vector product) is added to the engines' results by the solvers; the
L1 part is not differentiable at zero, so it comes with the bounded split
that turns it into a smooth problem on an orthant and with the minimum-norm
subgradient that measures stationarity.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ElasticNet:
    r"""``lambda_2 / 2 * ||W||^2 + lambda_1 * ||W||_1`` on the coefficients.

    Parameters
    ----------
    l2 : float
        :math:`\lambda_2`, the coefficient of ``0.5 * ||W||_F^2``.
    l1 : float
        :math:`\lambda_1`, the coefficient of ``||W||_1``.
    l1_ratio : float
        The mixing it was built from, for messages.
    """

    l2: float = 0.0
    l1: float = 0.0
    l1_ratio: float = 0.0

    @classmethod
    def from_C(cls, C: float, l1_ratio: float, weight_sum: float) -> "ElasticNet":
        """The penalty of scikit-learn's ``C`` and ``l1_ratio``.

        ``C = inf`` is no penalty. Raises ValueError when ``1 / (C S)``
        overflows.
        """
        if np.isinf(C):
            return cls(0.0, 0.0, l1_ratio)
        with np.errstate(over="ignore", divide="ignore"):
            strength = 1.0 / (C * weight_sum)
        if not np.isfinite(strength):
            raise ValueError(
                f"C={C:g} times the sum of the effective sample weights, "
                f"{weight_sum:g}, is too small for the penalty strength "
                "1 / (C * sum) to be a finite float; increase C or the weights."
            )
        return cls((1.0 - l1_ratio) * strength, l1_ratio * strength, l1_ratio)

    @property
    def smooth(self) -> bool:
        """Whether the penalty is differentiable (no L1 part)."""
        return self.l1 == 0.0

    def value(self, W: np.ndarray) -> float:
        """The penalty at coefficients ``W``."""
        value = 0.5 * self.l2 * float(np.vdot(W, W))
        if self.l1:
            value += self.l1 * float(np.sum(np.abs(W)))
        return value

    def add_smooth(self, W: np.ndarray, value: float, grad_W: np.ndarray) -> float:
        """Add the smooth part's value and gradient at ``W``; ``grad_W`` in place."""
        if self.l2:
            grad_W += self.l2 * W
            value += 0.5 * self.l2 * float(np.vdot(W, W))
        return value

    def add_smooth_hessp(self, V: np.ndarray, product_W: np.ndarray) -> None:
        """Add the smooth part's Hessian times direction ``V`` to ``product_W``."""
        if self.l2:
            product_W += self.l2 * V

    def min_norm_subgradient(self, W: np.ndarray, grad_W: np.ndarray) -> np.ndarray:
        """The smallest element of the subdifferential of the whole objective.

        ``grad_W`` is the gradient of the smooth part (data term plus L2).
        Where ``W`` is non-zero the L1 part adds ``lambda_1 sign(W)``; at zero
        it adds anything in ``[-lambda_1, lambda_1]``, so the smallest entry
        left is the gradient soft-thresholded by ``lambda_1``. It is zero
        exactly at a minimizer.
        """
        if self.smooth:
            return grad_W
        return np.where(
            W != 0.0,
            grad_W + self.l1 * np.sign(W),
            np.sign(grad_W) * np.maximum(np.abs(grad_W) - self.l1, 0.0),
        )

    def bounded_split(self, l1_weights: np.ndarray) -> "BoundedSplit":
        """The split ``W = U - V`` for coordinates of L1 weights ``l1_weights``."""
        return BoundedSplit(l1_weights)


class BoundedSplit:
    """The L1 term as a linear one on an orthant: ``W = U - V`` with ``U, V >= 0``.

    There ``sum_j w_j |W_j|`` is ``sum_j w_j (U_j + V_j)``, smooth, so a
    bound-constrained quasi-Newton method (L-BFGS-B) minimizes it. A
    coefficient is exactly zero when both halves sit on their bound, which is
    where L-BFGS-B leaves them when the smooth gradient is below the weight:
    no thresholding. The split vector is ``[U, V, rest]``, where ``rest``
    (the intercepts) is unbounded and unpenalized.

    Parameters
    ----------
    l1_weights : ndarray of shape (n_coef,)
        The L1 weight of each coefficient in the solver's coordinates.
    """

    def __init__(self, l1_weights: np.ndarray):
        self.weights = l1_weights
        self.n_coef = l1_weights.shape[0]

    def bounds(self, n_rest: int) -> list:
        """Bounds of the split vector, as scipy's ``minimize`` takes them."""
        return [(0.0, None)] * (2 * self.n_coef) + [(None, None)] * n_rest

    def merge(self, x: np.ndarray) -> np.ndarray:
        """The coefficients ``U - V`` followed by the rest."""
        n = self.n_coef
        return np.concatenate([x[:n] - x[n : 2 * n], x[2 * n :]])

    def split(self, params: np.ndarray) -> np.ndarray:
        """The split vector of smallest norm for ``params``."""
        coef = params[: self.n_coef]
        return np.concatenate(
            [np.maximum(coef, 0.0), np.maximum(-coef, 0.0), params[self.n_coef :]]
        )

    def value_gradient(self, x: np.ndarray, value: float, grad: np.ndarray):
        """Add the L1 term to a smooth ``(value, grad)`` taken at ``merge(x)``."""
        n = self.n_coef
        value += float(np.dot(self.weights, x[:n]) + np.dot(self.weights, x[n : 2 * n]))
        grad_coef = grad[:n]
        return value, np.concatenate(
            [grad_coef + self.weights, self.weights - grad_coef, grad[n:]]
        )


# The L2 penalty never zeroes a coefficient, so the strongest useful C of a
# pure L2 path is taken as that of l1_ratio = 1e-3, as glmnet does for ridge.
_MIN_L1_RATIO_FOR_GRID = 1e-3


def strongest_C(grad_W: np.ndarray, weight_sum: float, l1_ratio: float) -> float:
    """The largest penalty (smallest C) at which some coefficient is non-zero.

    At ``W = 0`` with the intercepts of the intercept-only fit, the gradient
    of the data term is ``grad_W = X^T D (P0 - Y)``; the L1 part,
    ``l1_ratio / (C S)`` per coefficient, holds all of ``W`` at zero as long
    as it exceeds ``max |grad_W|``. Hence ``C = l1_ratio / (S max |grad_W|)``,
    glmnet's ``lambda_max`` in scikit-learn's units.

    Parameters
    ----------
    grad_W : ndarray of shape (n_features, n_classes)
        Gradient of the data term with respect to the coefficients at the
        intercept-only fit.
    weight_sum : float
        ``S``.
    l1_ratio : float

    Returns
    -------
    C : float
    """
    grad_max = float(np.max(np.abs(grad_W), initial=0.0))
    if grad_max == 0.0:
        # No feature moves the loss: every C fits the same model.
        return 1.0
    return max(l1_ratio, _MIN_L1_RATIO_FOR_GRID) / (weight_sum * grad_max)
