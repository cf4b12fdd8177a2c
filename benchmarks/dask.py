"""Dask: one loss evaluation and a whole fit, on 1 and 2 workers and in memory.

A local cluster of processes (one thread each) holds the row chunks; every
evaluation sends the parameters out and a summed gradient back. The
per-iteration overhead is the dask evaluation's time minus the in-memory
evaluation's on the same data; the tiny problem isolates the fixed cost of
one round trip through the scheduler.

    python benchmarks/dask.py [--n 100000] [--d 50] [--k 10] [--chunks 8]
"""

import argparse
import os
import sys
import time
import warnings

# This file's own name would shadow the dask package.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]
import dask.array as da  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402

sys.path.append(_here)

import numpy as np  # noqa: E402

from sksoftmax import SoftmaxClassifier  # noqa: E402
from sksoftmax._engines._dask import DaskEngine  # noqa: E402
from sksoftmax._engines._numpy import NumPyEngine  # noqa: E402

from _common import dense_problem, environment  # noqa: E402


def per_evaluation(loss, repeats):
    params = np.random.default_rng(0).normal(size=loss.n_params) * 0.01
    loss.loss_gradient(params)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss.loss_gradient(params)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def to_solution(X, y, tol):
    clf = SoftmaxClassifier(tol=tol)
    start = time.perf_counter()
    clf.fit(X, y)
    return time.perf_counter() - start, clf


def in_memory_loss(X, y, k):
    return NumPyEngine(X, y, k, np.ones(X.shape[0]), True)


def dask_loss(X, y, k, chunks):
    rows = -(-X.shape[0] // chunks)
    X_dask = da.from_array(X, chunks=(rows, X.shape[1]))
    y_dask = da.from_array(y, chunks=rows)
    weights = da.ones(X.shape[0], chunks=rows)
    return X_dask, y_dask, DaskEngine(X_dask, y_dask, k, weights, True)


def main():
    # The benchmark's data start in memory and go to the workers once.
    warnings.filterwarnings("ignore", message=".*large graph.*")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args()
    print(environment())
    problems = {
        f"{args.n} x {args.d}, K={args.k}": dense_problem(args.n, args.d, args.k),
        "tiny 1000 x 5, K=3": dense_problem(1000, 5, 3),
    }
    print(
        f"{'problem':>24} {'engine':>10} {'eval ms':>9} {'overhead ms':>12} "
        f"{'fit s':>7} {'iters':>6} {'ms/iter':>8} {'max|coef diff|':>15}"
    )
    for name, (X, y) in problems.items():
        k = int(y.max()) + 1
        memory_eval = per_evaluation(in_memory_loss(X, y, k), args.repeats)
        memory_fit, reference = to_solution(X, y, args.tol)
        print(
            f"{name:>24} {'memory':>10} {1e3 * memory_eval:9.2f} {'':>12} "
            f"{memory_fit:7.2f} {reference.n_iter_:6d} "
            f"{1e3 * memory_fit / reference.n_iter_:8.2f}"
        )
        for workers in (1, 2):
            with (
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                ) as cluster,
                Client(cluster),
            ):
                X_dask, y_dask, loss = dask_loss(X, y, k, args.chunks)
                evaluation = per_evaluation(loss, args.repeats)
                fit_time, clf = to_solution(X_dask, y_dask, args.tol)
            diff = np.abs(clf.coef_ - reference.coef_).max()
            print(
                f"{name:>24} {f'{workers} worker':>10} {1e3 * evaluation:9.2f} "
                f"{1e3 * (evaluation - memory_eval):12.2f} {fit_time:7.2f} "
                f"{clf.n_iter_:6d} {1e3 * fit_time / clf.n_iter_:8.2f} {diff:15.2e}"
            )


if __name__ == "__main__":
    main()
