"""
======================================
Convergence: objective gap versus time
======================================

How fast does each solver approach the optimum? All solvers below minimize the
same objective (see :doc:`/math`),

.. math::

   f(W, b) = \\frac{1}{n} \\sum_i \\bigl[\\operatorname{logsumexp}(a_i)
             - a_{i, y_i}\\bigr] + \\frac{1}{2\\,C\\,n} \\lVert W \\rVert_F^2,

on the digits data (1797 images, 64 raw pixel features from 0 to 16, ten
classes), without scaling. Each solver is run with an iteration budget of 1, 2,
4, ... iterations and a tolerance too small to stop it earlier; each point is
one complete ``fit``, timed from start to end on a single thread, and its
objective is evaluated with the formula above. The gap to the best objective
found by any solver is plotted against the fit's time; gaps below
:math:`10^{-12}` are drawn at :math:`10^{-12}`.

The solvers of :class:`~sksoftmax.SoftmaxClassifier` are read from the
estimator itself, so every solver it accepts appears here. scikit-learn's
solvers are those of ``LogisticRegression`` that support the multinomial loss.
"""

import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import logsumexp
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.utils._param_validation import StrOptions
from threadpoolctl import threadpool_limits

from sksoftmax import SoftmaxClassifier

X, y = load_digits(return_X_y=True)
C = 1.0


def objective(model):
    """The objective above, evaluated at a fitted model's coefficients."""
    logits = X @ model.coef_.T + model.intercept_
    data = np.mean(logsumexp(logits, axis=1) - logits[np.arange(len(y)), y])
    return data + np.sum(model.coef_**2) / (2 * C * len(y))


def trajectory(estimator, budgets):
    """(seconds, objective) of one fit per iteration budget."""
    points = []
    # Stopping at the budget is the point here, not a problem.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # An untimed first fit, so that one-time costs (imports, caches) are
        # not charged to the smallest budget.
        clone(estimator).set_params(max_iter=1).fit(X, y)
        for max_iter in budgets:
            model = clone(estimator).set_params(max_iter=max_iter)
            times = []
            # Fits of a few milliseconds are timed three times, keeping the
            # fastest, so that a busy machine does not scramble their order.
            while not times or (len(times) < 3 and sum(times) < 0.1):
                start = time.perf_counter()
                model.fit(X, y)
                times.append(time.perf_counter() - start)
            points.append((min(times), objective(model)))
            if np.max(model.n_iter_) < max_iter:
                break  # stopped by itself: larger budgets change nothing
    return np.array(points)


ours = sorted(
    option
    for constraint in SoftmaxClassifier._parameter_constraints["solver"]
    if isinstance(constraint, StrOptions)
    for option in constraint.options - set(constraint.deprecated)
)
theirs = ["lbfgs", "newton-cg", "newton-cholesky", "sag", "saga"]
tiny_tol = 1e-14

# One thread for every solver: the timings then compare the algorithms, not
# how each library's thread pools share this machine's cores.
runs = {}
with threadpool_limits(limits=1):
    for solver in ours:
        runs[f"SoftmaxClassifier({solver})"] = trajectory(
            SoftmaxClassifier(C=C, solver=solver, tol=tiny_tol), 2 ** np.arange(10)
        )
    for solver in theirs:
        runs[f"LogisticRegression({solver})"] = trajectory(
            LogisticRegression(C=C, solver=solver, tol=tiny_tol), 2 ** np.arange(10)
        )

best = min(points[:, 1].min() for points in runs.values())
floor = 1e-12

fig, ax = plt.subplots(figsize=(9, 5.5))
for name, points in runs.items():
    style = "-" if name.startswith("SoftmaxClassifier") else "--"
    ax.plot(
        points[:, 0],
        np.maximum(points[:, 1] - best, floor),
        style,
        marker="o",
        markersize=3,
        label=name,
    )
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_ylim(bottom=floor / 2)
ax.set_xlabel("time of one fit [s]")
ax.set_ylabel(r"objective gap $f - f^\star$")
ax.set_title(f"Digits, raw pixels, C = {C:g}")
ax.grid(True, which="major", alpha=0.3)
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# Where each solver ended, after its largest budget:
for name, points in runs.items():
    seconds, value = points[-1]
    print(f"{name:>36}: gap {value - best:9.2e} after {seconds:6.3f} s")
