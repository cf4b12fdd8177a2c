"""Optimizers for :class:`~sksoftmax._loss.SoftmaxLoss`.

A solver takes a loss object and a starting point and returns a
:class:`SolverResult`. It knows nothing of scikit-learn.
"""

import functools
import os
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


@functools.cache
def _scipy_own_blas():
    """Thread pools of the BLAS that scipy's wheel bundles apart from numpy's.

    L-BFGS-B's updates are BLAS-1/2 calls on vectors of n_params entries, too
    small to gain from threads. When numpy and scipy each ship an OpenBLAS,
    the two pools' spinning workers fight for the cores between the loss
    evaluation (numpy) and the L-BFGS-B step (scipy): on 2 cores that made a
    digits fit 10x slower, in scikit-learn's LogisticRegression too. Running
    scipy's pool single-threaded removes that and leaves numpy's BLAS, which
    does the heavy X @ W, untouched. Where both share one library nothing is
    selected.
    """
    scipy_libs = os.path.dirname(scipy.__file__) + ".libs"
    controller = ThreadpoolController()
    own = [
        lib.filepath
        for lib in controller.lib_controllers
        if lib.user_api == "blas" and lib.filepath.startswith(scipy_libs)
    ]
    return controller.select(filepath=own)


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

    def __init__(self, loss):
        self.loss = loss
        mean, var = loss.column_moments()
        if not loss.fit_intercept:
            var, mean = var + mean**2, np.zeros_like(mean)
        scale_sq = var + loss.l2_reg_strength / _CURVATURE
        self.mean = mean
        self.std = np.sqrt(np.where(scale_sq > 0.0, scale_sq, 1.0))
        self.params = None
        self.value = None
        self.grad = None

    def to_original(self, params_std):
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

    def __call__(self, params_std):
        self.params = self.to_original(params_std)
        self.value, self.grad = self.loss.loss_gradient(self.params)
        grad_std = self.grad.copy()
        grad_W, grad_b = self.loss.unpack(grad_std)
        grad_W -= np.outer(self.mean, grad_b)
        grad_W /= self.std[:, None]
        return self.value, grad_std


def lbfgs(loss, params0, *, tol, max_iter, verbose=0):
    """Minimize ``loss`` with scipy's L-BFGS-B on one fused value+gradient call.

    The iterations run in standardized coordinates (see
    ``_StandardizedProblem``); the stopping rule is on the gradient in the
    original ones, scikit-learn's ``tol``.

    Parameters
    ----------
    loss : SoftmaxLoss
    params0 : ndarray of shape (loss.n_params,)
        Starting point.
    tol : float
        Stop once the largest absolute gradient entry is at most ``tol``.
    max_iter : int
        Maximum number of L-BFGS iterations.
    verbose : int
        When positive, print one line per iteration.

    Returns
    -------
    SolverResult
    """
    problem = _StandardizedProblem(loss)
    iteration = 0

    def callback(intermediate_result):
        nonlocal iteration
        iteration += 1
        # L-BFGS-B's accepted point is its last evaluation; evaluate afresh
        # should scipy ever change that.
        if not np.array_equal(problem.params, problem.to_original(intermediate_result.x)):
            problem(intermediate_result.x)
        grad_max = np.max(np.abs(problem.grad))
        if verbose:
            print(
                f"iter {iteration:5d}  objective {problem.value:.12g}  "
                f"max|grad| {grad_max:.3e}",
                flush=True,
            )
        if grad_max <= tol:
            raise StopIteration

    with _scipy_own_blas().limit(limits=1):
        result = minimize(
            problem,
            problem.from_original(params0),
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={
                "maxiter": max_iter,
                "maxls": 50,
                # The callback applies tol to the original gradient.
                "gtol": 0.0,
                # As scikit-learn: stop on relative decrease only at float
                # precision, where more iterations cannot help.
                "ftol": 64 * np.finfo(float).eps,
            },
        )
    params = problem.to_original(result.x)
    if not np.array_equal(problem.params, params):
        problem(result.x)
    grad_max = float(np.max(np.abs(problem.grad)))
    converged = grad_max <= tol or result.status == 0
    return SolverResult(
        params=problem.params,
        value=problem.value,
        grad_max=grad_max,
        n_iter=int(min(result.nit, max_iter)),
        converged=converged,
        message="gradient below tol" if grad_max <= tol else str(result.message),
    )
