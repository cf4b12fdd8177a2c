"""Optimizers: an engine and a penalty in, a :class:`SolverResult` out.

A solver minimizes the engine's data term plus the penalty, starting from a
given point. It knows nothing of scikit-learn. Each solver declares whether
it handles the L1 part of a penalty; :func:`solve` refuses the others with
that declaration's message.
"""

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy
from scipy.optimize import minimize
from threadpoolctl import ThreadpoolController

from ._engines import LossEngine
from ._penalty import ElasticNet


@dataclass
class SolverResult:
    """Outcome of one optimization.

    Attributes
    ----------
    params : ndarray
        The final flat parameter vector.
    value : float
        Objective at ``params``, penalty included.
    grad_max : float
        Largest absolute entry of the (minimum-norm sub)gradient at
        ``params``: the quantity ``tol`` bounds.
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


class _Preconditioned:
    """Data term plus penalty in preconditioned coordinates, remembering its last point.

    With column means ``mu`` and scales ``sigma``, the change of variables
    ``W = W' / sigma`` (row-wise), ``b = b' - mu^T W`` gives
    ``X W + b = ((X - mu) / sigma) W' + b'``: the optimizer sees centred,
    scaled features, yet ``X`` is never copied (sparse input stays sparse).
    The objective is unchanged, penalty included, since it is evaluated on
    the original ``W``.

    ``sigma_j^2 = var_j + lambda_2 / c`` makes the diagonal of the Hessian,
    about ``c * var_j + lambda_2`` for column j, the same ``c`` for every
    column: plain standardization would make the penalty ``lambda_2 / var_j``
    stiff on nearly constant columns. Without an intercept there is nothing
    to absorb the centring, so the scale uses the raw second moment.

    The L1 part of the penalty is not in the value returned to the
    optimizer (see :class:`_Split`), but it is in :attr:`objective` and
    :meth:`stationarity`.
    """

    second_order = False

    def __init__(self, engine: LossEngine, penalty: ElasticNet, *, second_order=False):
        self.engine = engine
        self.penalty = penalty
        self.second_order = second_order
        mean, var = engine.column_moments()
        if not engine.fit_intercept:
            var, mean = var + mean**2, np.zeros_like(mean)
        scale_sq = var + penalty.l2 / _CURVATURE
        self.mean = mean
        self.std = np.sqrt(np.where(scale_sq > 0.0, scale_sq, 1.0))
        self.params = None
        self.data_value = None
        self.grad = None
        self._hessp = None

    def to_original(self, params_std):
        """``M @ params_std``: standardized coordinates to W and b."""
        params = params_std.copy()
        W, b = self.engine.unpack(params)
        W /= self.std[:, None]
        b -= self.mean @ W
        return params

    def from_original(self, params):
        """The inverse of :meth:`to_original`."""
        params_std = params.copy()
        W, b = self.engine.unpack(params_std)
        b += self.mean @ W
        W *= self.std[:, None]
        return params_std

    def _transpose_map(self, grad):
        """``M^T @ grad``: a gradient in W and b to standardized coordinates."""
        grad_std = grad.copy()
        grad_W, grad_b = self.engine.unpack(grad_std)
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
            value, grad, self._hessp = self.engine.hessian_product(self.params)
        else:
            value, grad = self.engine.loss_gradient(self.params)
        self.data_value = value
        W, _ = self.engine.unpack(self.params)
        value = self.penalty.add_smooth(W, value, self.engine.unpack(grad)[0])
        self.grad = grad
        return value, self._transpose_map(grad)

    def hessp(self, params_std, direction_std):
        """``M^T H M direction`` with H the Hessian at ``params_std``."""
        self.evaluate(params_std)
        direction = self.to_original(direction_std)
        product = self._hessp(direction)
        self.penalty.add_smooth_hessp(
            self.engine.unpack(direction)[0], self.engine.unpack(product)[0]
        )
        return self._transpose_map(product)

    @property
    def objective(self):
        """Objective at the last point, penalty included, in original coordinates."""
        return self.data_value + self.penalty.value(self.engine.unpack(self.params)[0])

    def stationarity(self):
        """Largest entry of the minimum-norm subgradient at the last point.

        This is what ``tol`` bounds.
        """
        grad = self.grad.copy()
        grad_W, _ = self.engine.unpack(grad)
        W, _ = self.engine.unpack(self.params)
        grad_W[...] = self.penalty.min_norm_subgradient(W, grad_W)
        return float(np.max(np.abs(grad)))


class _Split:
    """The L1 part of the penalty through its bounded split, for L-BFGS-B.

    Wraps a :class:`_Preconditioned` problem, whose scaling keeps signs, so
    the bounds read the same in both coordinates; the L1 weight of row j
    becomes ``lambda_1 / sigma_j`` there.
    """

    second_order = False

    def __init__(self, problem: _Preconditioned):
        self.problem = problem
        n_classes = problem.engine.n_classes
        self._split = problem.penalty.bounded_split(
            np.repeat(problem.penalty.l1 / problem.std, n_classes)
        )
        self.bounds = self._split.bounds(n_classes)

    def from_original(self, params):
        return self._split.split(self.problem.from_original(params))

    def __call__(self, x):
        return self._split.value_gradient(x, *self.problem(self._split.merge(x)))

    def evaluate(self, x):
        self.problem.evaluate(self._split.merge(x))

    @property
    def params(self):
        return self.problem.params

    @property
    def objective(self):
        return self.problem.objective

    def stationarity(self):
        return self.problem.stationarity()


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


def lbfgs(
    engine: LossEngine,
    penalty: ElasticNet,
    params0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    verbose: int = 0,
) -> SolverResult:
    """Minimize with scipy's L-BFGS-B on one fused value+gradient call.

    The iterations run in preconditioned coordinates (see
    :class:`_Preconditioned`); the stopping rule is on the gradient in the
    original ones, scikit-learn's ``tol``. With an L1 part the coefficients
    are split into bounded halves (see :class:`_Split`).

    Parameters
    ----------
    engine : LossEngine
    penalty : ElasticNet
    params0 : ndarray of shape (engine.n_params,)
        Starting point.
    tol : float
        Stop once the largest absolute gradient entry is at most ``tol``;
        with an L1 part, the largest entry of the minimum-norm subgradient.
    max_iter : int
        Maximum number of iterations.
    verbose : int
        When positive, print one line per iteration.

    Returns
    -------
    SolverResult
    """
    problem = _Preconditioned(engine, penalty)
    if not penalty.smooth:
        problem = _Split(problem)
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


def newton_cg(
    engine: LossEngine,
    penalty: ElasticNet,
    params0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    verbose: int = 0,
) -> SolverResult:
    """Minimize with truncated Newton steps in a trust region.

    Each step solves the Newton system approximately by conjugate gradients
    on exact Hessian-vector products (two passes over X each), in the same
    preconditioned coordinates as :func:`lbfgs`. scipy's ``trust-ncg``: its
    line-search ``Newton-CG`` was up to 2x faster on digits but declared
    success with gradients far above a tight tol on breast cancer, and
    ``trust-krylov`` stopped early there too. Parameters and return value as
    for :func:`lbfgs`; the penalty must be smooth.
    """
    return _minimize(
        _Preconditioned(engine, penalty, second_order=True),
        params0,
        method="trust-ncg",
        tol=tol,
        max_iter=max_iter,
        verbose=verbose,
        # gtol=0: the callback applies tol to the original gradient.
        options={"gtol": 0.0},
    )


@dataclass(frozen=True)
class Solver:
    """A minimizer and what it can handle.

    Attributes
    ----------
    name : str
        The name the estimators' ``solver`` parameter takes.
    minimize : callable
        ``minimize(engine, penalty, params0, *, tol, max_iter, verbose)``
        returning a :class:`SolverResult`.
    handles_l1 : bool
        Whether it minimizes penalties with an L1 part.
    """

    name: str
    minimize: Callable[..., SolverResult]
    handles_l1: bool


SOLVERS = {
    "lbfgs": Solver("lbfgs", lbfgs, handles_l1=True),
    "newton-cg": Solver("newton-cg", newton_cg, handles_l1=False),
}


def check_solver(name: str, penalty: ElasticNet) -> Solver:
    """The solver called ``name``, refusing a penalty it does not handle."""
    solver = SOLVERS[name]
    if not penalty.smooth and not solver.handles_l1:
        able = " or ".join(repr(s.name) for s in SOLVERS.values() if s.handles_l1)
        raise ValueError(
            f"l1_ratio={penalty.l1_ratio:g} needs solver={able}; "
            f"solver={name!r} supports only the L2 penalty (l1_ratio=0)."
        )
    return solver


def solve(
    engine: LossEngine,
    penalty: ElasticNet,
    params0: np.ndarray,
    *,
    solver: str,
    tol: float,
    max_iter: int,
    verbose: int = 0,
) -> SolverResult:
    """Minimize the engine's data term plus ``penalty`` from ``params0``.

    Parameters
    ----------
    engine : LossEngine
    penalty : ElasticNet
    params0 : ndarray of shape (engine.n_params,)
    solver : {"lbfgs", "newton-cg"}
    tol, max_iter, verbose
        As for :func:`lbfgs`.

    Returns
    -------
    SolverResult
    """
    return check_solver(solver, penalty).minimize(
        engine, penalty, params0, tol=tol, max_iter=max_iter, verbose=verbose
    )


@dataclass
class NewtonResult:
    """Where :func:`newton` stopped.

    Attributes
    ----------
    x : ndarray
        The last point.
    n_steps : int
        Steps taken.
    converged : bool
        Whether the last step was negligible by the caller's rule.
    step : Any
        What ``step`` returned at ``x``: the caller's account of the
        curvature there.
    """

    x: np.ndarray
    n_steps: int
    converged: bool
    step: Any


def newton(
    value: Callable[[np.ndarray], float],
    derivatives: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]],
    x0: np.ndarray,
    *,
    step: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, bool, Any]],
    max_steps: int,
) -> NewtonResult:
    """Damped Newton's method with backtracking, for a convex smooth function.

    Each step moves by ``-t d`` where ``d`` is what ``step(grad, hessian)``
    returns (the Newton direction, possibly on a subspace the caller
    chooses) and ``t`` halves from 1 until the Armijo condition holds.

    Parameters
    ----------
    value : callable
        ``value(x)``, the function.
    derivatives : callable
        ``derivatives(x) -> (value, gradient, hessian)``.
    x0 : ndarray
        Starting point.
    step : callable
        ``step(gradient, hessian) -> (d, negligible, info)``; stops when
        ``negligible``.
    max_steps : int
        Steps allowed.

    Returns
    -------
    NewtonResult
        Also when the line search finds no decrease (then not converged).
    """
    x, n_steps = x0, 0
    while True:
        current, grad, hessian = derivatives(x)
        direction, negligible, info = step(grad, hessian)
        if negligible or n_steps == max_steps:
            break
        slope = float(grad @ direction)
        t = 1.0
        while t > 1e-10:
            trial = x - t * direction
            if value(trial) <= current - 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break
        x = trial
        n_steps += 1
    return NewtonResult(x, n_steps, negligible, info)
