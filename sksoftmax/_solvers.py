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


class _LastEvaluation:
    """Wraps ``loss_gradient`` to remember its last call, for progress lines."""

    def __init__(self, fun):
        self._fun = fun
        self.params = None
        self.value = None
        self.grad = None

    def __call__(self, params):
        self.value, self.grad = self._fun(params)
        self.params = params.copy()
        return self.value, self.grad


def lbfgs(loss, params0, *, tol, max_iter, verbose=0):
    """Minimize ``loss`` with scipy's L-BFGS-B on one fused value+gradient call.

    Parameters
    ----------
    loss : SoftmaxLoss
    params0 : ndarray of shape (loss.n_params,)
        Starting point.
    tol : float
        Stop once the largest projected-gradient entry is at most ``tol``.
    max_iter : int
        Maximum number of L-BFGS iterations.
    verbose : int
        When positive, print one line per iteration.

    Returns
    -------
    SolverResult
    """
    evaluation = _LastEvaluation(loss.loss_gradient)
    callback = None
    if verbose:
        iteration = 0

        def callback(intermediate_result):
            nonlocal iteration
            iteration += 1
            # L-BFGS-B's accepted point is its last evaluation; fall back to a
            # fresh one if scipy ever changes that.
            if not np.array_equal(evaluation.params, intermediate_result.x):
                evaluation(intermediate_result.x)
            print(
                f"iter {iteration:5d}  objective {evaluation.value:.12g}  "
                f"max|grad| {np.max(np.abs(evaluation.grad)):.3e}",
                flush=True,
            )

    with _scipy_own_blas().limit(limits=1):
        result = minimize(
            evaluation,
            params0,
            method="L-BFGS-B",
            jac=True,
            callback=callback,
            options={
                "maxiter": max_iter,
                "maxls": 50,
                "gtol": tol,
                # As scikit-learn: stop on relative decrease only at float precision,
                # so that gtol is the rule that ends a healthy run.
                "ftol": 64 * np.finfo(float).eps,
            },
        )
    grad_max = float(np.max(np.abs(result.jac)))
    return SolverResult(
        params=result.x,
        value=float(result.fun),
        grad_max=grad_max,
        n_iter=int(min(result.nit, max_iter)),
        # Status 0 is gtol met, or no further decrease possible at float64
        # precision, where more iterations cannot help either.
        converged=result.status == 0 or grad_max <= tol,
        message=str(result.message),
    )
