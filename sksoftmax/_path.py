"""Fitting along a grid of C: the one place where a fit is run.

:func:`fit_path` builds the penalty of each ``C``, runs the solver from the
previous solution and reports what did not converge. The estimator fits a
path of one ``C``; :func:`softmax_path` and cross-validation fit longer ones.
"""

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions, validate_params

from ._engines import TrainingData, dtype_name, training_data
from ._penalty import ElasticNet
from ._separation import PerfectSeparationWarning
from ._solvers import SOLVERS, SolverResult, check_solver, solve
from ._threads import blas_threads
from ._validation import validate_training_X


def fit_path(
    data: TrainingData,
    Cs,
    *,
    l1_ratio: float,
    solver: str,
    tol: float,
    max_iter: int,
    verbose: int = 0,
    start: np.ndarray | None = None,
    tag: str = "",
) -> list[SolverResult]:
    """Fit at every C of ``Cs``, warm-started in ascending C.

    Parameters
    ----------
    data : TrainingData
    Cs : sequence of float
        Positive inverse regularization strengths, in any order.
    l1_ratio : float
    solver : {"lbfgs", "newton-cg"}
    tol, max_iter, verbose
        As for the estimator.
    start : ndarray of shape (n_params,), default=None
        Where the first (smallest) C starts; ``None`` means the
        intercept-only fit.
    tag : str, default=""
        Printed before each line of the solver's verbose output.

    Returns
    -------
    results : list of SolverResult
        In the order of ``Cs``. A ConvergenceWarning names each C whose fit
        did not converge.
    """
    Cs = np.asarray(Cs, dtype=np.float64)
    penalties = [ElasticNet.from_C(C, l1_ratio, data.weight_sum) for C in Cs]
    for penalty in penalties:
        check_solver(solver, penalty)
    # The whole path is one fit for the BLAS's threads: its first pass over
    # the data (the column moments, which the float32 check asks for) already
    # sets the limits its evaluations need.
    with blas_threads:
        _check_float32_scale(data.engine)
        params = data.null_params() if start is None else start
        results = [None] * len(Cs)
        for i in np.argsort(Cs, kind="stable"):
            result = solve(
                data.engine,
                penalties[i],
                params,
                solver=solver,
                tol=tol,
                max_iter=max_iter,
                verbose=verbose,
                tag=tag,
            )
            if not np.all(np.isfinite(result.params)):
                raise ValueError(
                    f"The fit at C={Cs[i]:g} reached non-finite coefficients: the "
                    "features, sample weights or C are beyond what "
                    f"{dtype_name(data.engine.dtype)} arithmetic can fit. Rescale "
                    "the features or the weights."
                )
            if not result.converged:
                where = (
                    f"within tol={tol:g}, but {result.message}"
                    if result.grad_max <= tol
                    else f"above tol={tol:g} ({result.message})"
                )
                warnings.warn(
                    f"SoftmaxClassifier (solver={solver!r}, C={Cs[i]:g}) stopped after "
                    f"{result.n_iter} iteration{'s' * (result.n_iter != 1)} with a "
                    "largest gradient entry of "
                    f"{result.grad_max:.2e}, {where}. "
                    + _advice(result, solver, max_iter, tol, data.engine.dtype),
                    ConvergenceWarning,
                    stacklevel=4,
                )
            if np.isinf(Cs[i]):
                W, b = data.engine.unpack(result.params)
                _warn_if_separated(data.engine, W, b)
            results[i] = result
            params = result.params
        return results


# float32 features whose spread is below this need coefficients near the top
# of float32's range (3.4e38), which the data's logits cannot hold.
_FLOAT32_MIN_SCALE = 1e-36


def _check_float32_scale(engine):
    """Refuse float32 features too small for their coefficients to be float32."""
    if dtype_name(engine.dtype) != "float32":
        return
    _, std = engine.column_moments()
    tiny = np.flatnonzero((std > 0) & (std < _FLOAT32_MIN_SCALE))
    if tiny.size:
        raise ValueError(
            f"X is float32 and its column {tiny[0]} has a standard deviation of "
            f"{std[tiny[0]]:.3g}, below {_FLOAT32_MIN_SCALE:g}: the coefficients "
            "would exceed the float32 range. Convert X to float64 "
            "(X.astype(np.float64)) or rescale the features."
        )


def _advice(result, solver, max_iter, tol, dtype):
    """What can help a fit that did not converge."""
    if result.n_iter >= max_iter and result.grad_max <= tol:
        # Only the gap rule is unmet: near separation, where Newton steps
        # get there in far fewer iterations.
        if solver == "newton-cg":
            return "Increase max_iter."
        return "Increase max_iter, or use solver='newton-cg'."
    if result.n_iter >= max_iter:
        return (
            "Increase max_iter, scale the features (e.g. with StandardScaler), "
            "or loosen tol."
        )
    name = dtype_name(dtype)
    return (
        f"The objective stopped decreasing at {name} precision, so more "
        f"iterations cannot help: tol={tol:g} is below what this problem allows "
        "in its units. Scale the features (e.g. with StandardScaler), "
        + ("fit in float64, " if name == "float32" else "")
        + "or loosen tol."
    )


def _warn_if_separated(engine, W, b):
    """Issue a PerfectSeparationWarning when the unpenalized fit separates."""
    if engine.separates(W, b):
        warnings.warn(
            "The classes are perfectly separated: the fitted coefficients "
            "classify every training sample correctly, so with C=np.inf the "
            "maximum-likelihood estimate does not exist (the loss keeps "
            "falling as the coefficients grow). The coefficients returned are "
            "finite only because the solver stopped at tol; their size is "
            "arbitrary, though predictions are right. Use a finite C, e.g. "
            "C=1.0, for well-defined coefficients.",
            PerfectSeparationWarning,
            # Past this function, fit_path, fit and its validation wrapper.
            stacklevel=5,
        )


def check_Cs(Cs):
    """``Cs`` as a non-empty 1-d float64 array of positive numbers."""
    Cs = np.asarray(Cs, dtype=np.float64)
    if Cs.ndim != 1 or Cs.size == 0 or not np.all(Cs > 0) or np.any(np.isnan(Cs)):
        raise ValueError(
            f"Cs must be a non-empty 1-d sequence of positive numbers; got {Cs!r}."
        )
    return Cs


class _PathData(BaseEstimator):
    """Holder of the fitted width and names that scikit-learn's checks record."""


@validate_params(
    {
        "X": ["array-like", "sparse matrix"],
        "y": ["array-like"],
        "Cs": ["array-like"],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "sample_weight": ["array-like", None],
        "fit_intercept": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "solver": [StrOptions(set(SOLVERS))],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
    },
    prefer_skip_nested_validation=True,
)
def softmax_path(
    X,
    y,
    Cs,
    *,
    l1_ratio=0.0,
    sample_weight=None,
    fit_intercept=True,
    class_weight=None,
    solver="lbfgs",
    tol=1e-4,
    max_iter=1000,
):
    """Softmax regression fitted along a grid of C, each fit warm-starting the next.

    The fits run from the strongest penalty (smallest C) to the weakest, each
    starting from the previous solution, which takes far fewer iterations
    than fitting every C from scratch. Every fit minimizes the objective of
    :class:`SoftmaxClassifier` with the same parameters.

    Parameters
    ----------
    X : {array-like, sparse matrix} of shape (n_samples, n_features)
        Training data.
    y : array-like of shape (n_samples,)
        Class labels; at least two distinct classes.
    Cs : array-like of shape (n_Cs,)
        Positive inverse regularization strengths, in any order.
    l1_ratio : float, default=0.0
        Elastic-net mixing, as in :class:`SoftmaxClassifier`.
    sample_weight : array-like of shape (n_samples,), default=None
        Non-negative weight per sample.
    fit_intercept : bool, default=True
        As in :class:`SoftmaxClassifier`.
    class_weight : dict or "balanced", default=None
        As in :class:`SoftmaxClassifier`.
    solver : {"lbfgs", "newton-cg"}, default="lbfgs"
        As in :class:`SoftmaxClassifier`.
    tol : float, default=1e-4
        As in :class:`SoftmaxClassifier`.
    max_iter : int, default=1000
        As in :class:`SoftmaxClassifier`.

    Returns
    -------
    coefs : ndarray of shape (n_Cs, n_classes, n_features)
        ``coef_`` at each C, in the order of ``Cs``; rows follow the sorted
        labels, ``np.unique(y)``.
    intercepts : ndarray of shape (n_Cs, n_classes)
        ``intercept_`` at each C.
    n_iter : ndarray of shape (n_Cs,)
        Solver iterations at each C.

    See Also
    --------
    SoftmaxClassifierCV : Chooses C (and l1_ratio) by cross-validation.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sksoftmax import softmax_path
    >>> X, y = load_iris(return_X_y=True)
    >>> coefs, intercepts, n_iter = softmax_path(X, y, [0.01, 0.1, 1.0])
    >>> coefs.shape, intercepts.shape
    ((3, 3, 4), (3, 3))
    >>> bool(abs(coefs[0]).max() < abs(coefs[2]).max())
    True
    """
    Cs = check_Cs(Cs)
    X, y = validate_training_X(_PathData(), X, y)
    data = training_data(
        X, y, sample_weight, class_weight=class_weight, fit_intercept=fit_intercept
    )
    results = fit_path(
        data, Cs, l1_ratio=l1_ratio, solver=solver, tol=tol, max_iter=max_iter
    )
    return stack_path(data, results, X.dtype)


def stack_path(data: TrainingData, results, dtype):
    """Coefficients, intercepts and iterations of a path's results, stacked."""
    coefs, intercepts = [], []
    for result in results:
        W, b = data.engine.unpack(result.params)
        coefs.append(W.T)
        intercepts.append(b)
    return (
        np.asarray(coefs, dtype=dtype),
        np.asarray(intercepts, dtype=dtype),
        np.array([result.n_iter for result in results], dtype=np.int64),
    )
