"""Optimizers for :class:`~sksoftmax._loss.SoftmaxLoss`.

A solver takes a loss object and a starting point and returns a
:class:`SolverResult`. It knows nothing of scikit-learn.
"""

import functools
import os
import threading
from dataclasses import dataclass

import numpy as np
import scipy
from scipy.optimize import minimize
from threadpoolctl import ThreadpoolController


@dataclass
class SolverResult:
    """Outcome of one optimization.

    Attributes
    ----------
    params : ndarray
        The final flat parameter vector.
    value : float
        Objective at ``params``.
    grad_max : float
        Largest absolute gradient entry at ``params`` (the quantity ``tol``
        bounds).
    n_iter : int
        Iterations taken.
    converged : bool
        Whether the stopping rule on ``tol`` was met.
    message : str
        The optimizer's own account of why it stopped.
    """

    params: np.ndarray
    value: float
    grad_max: float
    n_iter: int
    converged: bool
    message: str


class _ScipyBlasSingleThreaded:
    """Context: the BLAS that scipy's wheel bundles apart from numpy's, 1 thread.

    L-BFGS-B's updates are BLAS-1/2 calls on vectors of n_params entries, too
    small to gain from threads. When numpy and scipy each ship an OpenBLAS,
    the two pools' spinning workers fight for the cores between the loss
    evaluation (numpy) and the L-BFGS-B step (scipy): on 2 cores that made a
    digits fit 10x slower, in scikit-learn's LogisticRegression too. Running
    scipy's pool single-threaded removes that and leaves numpy's BLAS, which
    does the heavy X @ W, untouched. Where both share one library nothing is
    selected.

    Thread limits are global to the process, so fits running concurrently
    share one limit: the first to enter sets it, the last to leave restores
    the original.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._limiter = None

    @functools.cached_property
    def _pools(self):
        scipy_libs = os.path.dirname(scipy.__file__) + ".libs"
        controller = ThreadpoolController()
        own = [
            lib.filepath
            for lib in controller.lib_controllers
            if lib.user_api == "blas" and lib.filepath.startswith(scipy_libs)
        ]
        return controller.select(filepath=own)

    def __enter__(self):
        with self._lock:
            if self._users == 0:
                self._limiter = self._pools.limit(limits=1)
            self._users += 1

    def __exit__(self, *exc_info):
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._limiter.restore_original_limits()


_scipy_blas_single_threaded = _ScipyBlasSingleThreaded()


# Typical curvature of the cross-entropy per unit of feature variance near a
# fit, p(1 - p) averaged over samples and classes; it sets how the penalty
# enters the preconditioner below. Chosen on digits, wine, iris and breast
# cancer, raw and rescaled: 1/64 took 5x fewer iterations than plain
# standardization and 1/4 or 1/256 were within 30% of it.
_CURVATURE = 1.0 / 64.0


class _StandardizedProblem:
    """The loss in preconditioned coordinates, remembering its last evaluation.

    With column means ``mu`` and scales ``sigma``, the change of variables
    ``W = W' / sigma`` (row-wise), ``b = b' - mu^T W`` gives
    ``X W + b = ((X - mu) / sigma) W' + b'``: the optimizer sees centred,
    scaled features, yet ``X`` is never copied (sparse input stays sparse).
    The objective is unchanged, penalty included, since it is evaluated on
    the original ``W``.

    ``sigma_j^2 = var_j + lambda / c`` makes the diagonal of the Hessian,
    about ``c * var_j + lambda`` for column j, the same ``c`` for every
    column: plain standardization would make the penalty ``lambda / var_j``
    stiff on nearly constant columns. Without an intercept there is nothing
    to absorb the centring, so the scale uses the raw second moment.
    """

    def __init__(self, loss, *, second_order=False):
        self.loss = loss
        self.second_order = second_order
        mean, var = loss.column_moments()
        if not loss.fit_intercept:
            var, mean = var + mean**2, np.zeros_like(mean)
        scale_sq = var + loss.l2_reg_strength / _CURVATURE
        self.mean = mean
        self.std = np.sqrt(np.where(scale_sq > 0.0, scale_sq, 1.0))
        self.params = None
        self.value = None
        self.grad = None
        self._hessp = None

    def to_original(self, params_std):
        """``M @ params_std``: standardized coordinates to W and b."""
        params = params_std.copy()
        W, b = self.loss.unpack(params)
        W /= self.std[:, None]
        b -= self.mean @ W
        return params

    def from_original(self, params):
        params_std = params.copy()
        W, b = self.loss.unpack(params_std)
        b += self.mean @ W
        W *= self.std[:, None]
        return params_std

    def _transpose_map(self, grad):
        """``M^T @ grad``: a gradient in W and b to standardized coordinates."""
        grad_std = grad.copy()
        grad_W, grad_b = self.loss.unpack(grad_std)
        grad_W -= np.outer(self.mean, grad_b)
        grad_W /= self.std[:, None]
        return grad_std

    def evaluate(self, params_std):
        """Evaluate at ``params_std`` unless that was the last point."""
        params = self.to_original(params_std)
        if self.params is None or not np.array_equal(params, self.params):
            self(params_std)

    def __call__(self, params_std):
        self.params = self.to_original(params_std)
        if self.second_order:
            self.value, self.grad, self._hessp = self.loss.hessian_product(self.params)
        else:
            self.value, self.grad = self.loss.loss_gradient(self.params)
        return self.value, self._transpose_map(self.grad)

    def hessp(self, params_std, direction_std):
        """``M^T H M direction`` with H the Hessian at ``params_std``."""
        self.evaluate(params_std)
        return self._transpose_map(self._hessp(self.to_original(direction_std)))

    @property
    def objective(self):
        """Objective at the last point, in original coordinates."""
        return self.value

    def stationarity(self):
        """Largest absolute gradient entry at the last point (what tol bounds)."""
        return float(np.max(np.abs(self.grad)))


class _L1Split:
    """Elastic net through the split ``W' = U - V`` with ``U, V >= 0``.

    On that orthant ``lambda_1 * ||W||_1`` is the linear ``lambda_1 * sum(U + V)``,
    so the objective stays smooth and L-BFGS-B handles the bounds. A
    coefficient is exactly zero when both halves sit on their bound, which is
    where L-BFGS-B leaves them when the smooth gradient is below the penalty:
    no thresholding. It wraps a ``_StandardizedProblem``, whose scaling keeps
    signs, so the bounds read the same in both coordinates; the L1 weight of
    row j becomes ``lambda_1 / sigma_j`` there.
    """

    second_order = False

    def __init__(self, problem, l1_reg_strength):
        self.problem = problem
        self.l1_reg_strength = l1_reg_strength
        loss = problem.loss
        self._n_coef = loss.n_features * loss.n_classes
        self._l1_std = np.repeat(l1_reg_strength / problem.std, loss.n_classes)
        self.bounds = [(0.0, None)] * (2 * self._n_coef) + [(None, None)] * loss.n_classes

    def _merge(self, x):
        n = self._n_coef
        return np.concatenate([x[:n] - x[n : 2 * n], x[2 * n :]])

    def from_original(self, params):
        params_std = self.problem.from_original(params)
        coef = params_std[: self._n_coef]
        return np.concatenate(
            [np.maximum(coef, 0.0), np.maximum(-coef, 0.0), params_std[self._n_coef :]]
        )

    def __call__(self, x):
        n = self._n_coef
        value, grad = self.problem(self._merge(x))
        value += np.dot(self._l1_std, x[:n]) + np.dot(self._l1_std, x[n : 2 * n])
        grad_coef = grad[:n]
        return value, np.concatenate(
            [grad_coef + self._l1_std, self._l1_std - grad_coef, grad[n:]]
        )

    def evaluate(self, x):
        self.problem.evaluate(self._merge(x))

    @property
    def params(self):
        return self.problem.params

    @property
    def objective(self):
        coef = self.params[: self._n_coef]
        return self.problem.value + self.l1_reg_strength * float(np.sum(np.abs(coef)))

    def stationarity(self):
        """Largest entry of the minimum-norm subgradient, in original coordinates."""
        grad = self.problem.grad.copy()
        coef, grad_coef = self.params[: self._n_coef], grad[: self._n_coef]
        l1 = self.l1_reg_strength
        grad_coef[...] = np.where(
            coef != 0.0,
            grad_coef + l1 * np.sign(coef),
            np.sign(grad_coef) * np.maximum(np.abs(grad_coef) - l1, 0.0),
        )
        return float(np.max(np.abs(grad)))


def _minimize(problem, params0, *, method, tol, max_iter, verbose, options):
    """Run scipy's ``method`` on ``problem``, stopping on the original gradient."""
    iteration = 0

    def callback(intermediate_result):
        nonlocal iteration
        iteration += 1
        problem.evaluate(intermediate_result.x)
        grad_max = problem.stationarity()
        if verbose:
            print(
                f"iter {iteration:5d}  objective {problem.objective:.12g}  "
                f"max|grad| {grad_max:.3e}",
                flush=True,
            )
        if grad_max <= tol:
            raise StopIteration

    with _scipy_blas_single_threaded:
        result = minimize(
            problem,
            problem.from_original(params0),
            method=method,
            jac=True,
            hessp=problem.hessp if problem.second_order else None,
            bounds=getattr(problem, "bounds", None),
            callback=callback,
            options={"maxiter": max_iter, **options},
        )
    problem.evaluate(result.x)
    grad_max = problem.stationarity()
    # Status 0 without a small gradient means no further decrease was
    # possible at float precision, where more iterations cannot help.
    converged = grad_max <= tol or result.status == 0
    return SolverResult(
        params=problem.params,
        value=problem.objective,
        grad_max=grad_max,
        n_iter=int(min(result.nit, max_iter)),
        converged=converged,
        message="gradient below tol" if grad_max <= tol else str(result.message),
    )


def lbfgs(loss, params0, *, tol, max_iter, verbose=0, l1_reg_strength=0.0):
    """Minimize ``loss`` with scipy's L-BFGS-B on one fused value+gradient call.

    The iterations run in standardized coordinates (see
    ``_StandardizedProblem``); the stopping rule is on the gradient in the
    original ones, scikit-learn's ``tol``. With an L1 term the coefficients
    are split into bounded halves (see ``_L1Split``).

    Parameters
    ----------
    loss : SoftmaxLoss
    params0 : ndarray of shape (loss.n_params,)
        Starting point.
    tol : float
        Stop once the largest absolute gradient entry is at most ``tol``;
        with an L1 term, the largest entry of the minimum-norm subgradient,
        i.e. of the projected gradient.
    max_iter : int
        Maximum number of iterations.
    verbose : int
        When positive, print one line per iteration.
    l1_reg_strength : float, default=0.0
        Coefficient of ``||W||_1`` added to the loss's objective.

    Returns
    -------
    SolverResult
    """
    problem = _StandardizedProblem(loss)
    if l1_reg_strength > 0.0:
        problem = _L1Split(problem, l1_reg_strength)
    return _minimize(
        problem,
        params0,
        method="L-BFGS-B",
        tol=tol,
        max_iter=max_iter,
        verbose=verbose,
        # gtol=0: the callback applies tol to the original gradient. ftol as
        # scikit-learn: stop on relative decrease only at float precision.
        options={"maxls": 50, "gtol": 0.0, "ftol": 64 * np.finfo(float).eps},
    )


def newton_cg(loss, params0, *, tol, max_iter, verbose=0):
    """Minimize ``loss`` with truncated Newton steps in a trust region.

    Each step solves the Newton system approximately by conjugate gradients
    on exact Hessian-vector products (two passes over X each), in the same
    standardized coordinates as :func:`lbfgs`. scipy's ``trust-ncg``: its
    line-search ``Newton-CG`` was up to 2x faster on digits but declared
    success with gradients far above a tight tol on breast cancer, and
    ``trust-krylov`` stopped early there too. Parameters and return value as
    for :func:`lbfgs`.
    """
    return _minimize(
        _StandardizedProblem(loss, second_order=True),
        params0,
        method="trust-ncg",
        tol=tol,
        max_iter=max_iter,
        verbose=verbose,
        # gtol=0: the callback applies tol to the original gradient.
        options={"gtol": 0.0},
    )
