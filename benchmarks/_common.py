"""Shared pieces of the benchmarks: problems, the objective, the environment."""

import os
import platform
import time
import warnings

import numpy as np
from scipy import sparse
from scipy.special import logsumexp
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_info


def softmax_labels(X, n_classes, rng, signal=1.0):
    """Labels drawn from a softmax model with random coefficients (Gumbel max)."""
    W = rng.normal(size=(X.shape[1], n_classes)) * signal / np.sqrt(X.shape[1])
    logits = np.asarray(X @ W)
    return np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)


def dense_problem(n, d, k, dtype=np.float64, seed=0, column_scales=None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = softmax_labels(X, k, rng, signal=4.0)
    if column_scales is not None:
        X = X * column_scales(rng, d)
    return X.astype(dtype), y


def sparse_problem(n, d, k, density, seed=0):
    rng = np.random.default_rng(seed)
    X = sparse.random(n, d, density=density, format="csr", random_state=seed)
    X.data = rng.normal(size=X.data.shape)
    y = softmax_labels(X * np.sqrt(1 / density), k, rng, signal=4.0)
    return X, y


def objective(X, y, coef, intercept, C):
    """scikit-learn's multinomial objective (unit weights) at K x d coef, in float64."""
    classes, codes = np.unique(y, return_inverse=True)
    coef = np.asarray(coef, dtype=np.float64)
    intercept = np.asarray(intercept, dtype=np.float64)
    if coef.shape[0] == 1:  # binary LogisticRegression: one row v ~ rows (-v/2, v/2)
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    n = X.shape[0]
    value = 0.0
    for start in range(0, n, 8192):
        part = X[start : start + 8192]
        logits = (
            np.asarray(part @ coef.T.astype(part.dtype), dtype=np.float64) + intercept
        )
        rows = np.arange(logits.shape[0])
        value += np.sum(
            logsumexp(logits, axis=1) - logits[rows, codes[start : start + 8192]]
        )
    value /= n
    if np.isfinite(C):
        value += np.sum(coef**2) / (2 * C * n)
    return value


def environment():
    """One line on the machine, the BLAS and its threads."""
    blas = [
        f"{lib['internal_api']} {lib.get('version')} ({lib.get('architecture')}, "
        f"{lib['num_threads']} threads, {os.path.basename(lib['filepath'])})"
        for lib in threadpool_info()
        if lib["user_api"] == "blas"
    ]
    coretype = os.environ.get("OPENBLAS_CORETYPE", "unset")
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"numpy {np.__version__}; BLAS: {'; '.join(blas)}; OPENBLAS_CORETYPE={coretype}"
    )


# OpenBLAS's idle threads spin for about 0.1 s after each threaded call, and a
# fit started meanwhile shares the cores with them: digits fitted right after
# scikit-learn's lbfgs took 0.042 s, after a pause 0.022 s. Every timed fit
# first waits this long, to find the threads idle as a fit on its own would.
SETTLE_SECONDS = 0.25


def settle():
    """Let the BLAS threads of the last fit go idle before timing the next."""
    time.sleep(SETTLE_SECONDS)


def timed_fit(model, X, y):
    """Seconds to fit ``model``; convergence warnings are the table's business."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        settle()
        start = time.perf_counter()
        model.fit(X, y)
        return time.perf_counter() - start
