"""Fits running concurrently in threads against the same fits run one by one.

A thread pool of N workers fits N copies of a problem at once; "slowdown"
is the batch's wall time over N serial fits' time. Without coordination each
fit asks the BLAS for every core and the pools' spinning workers fight (the
slowdown was about 20x per fit on 2 cores); a slowdown of at most 1 means
that running concurrently costs no more than running one after another.
Medians of interleaved repeats.

    python benchmarks/threads.py [--repeats 5] [--workers 2 4]
"""

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.datasets import load_digits

from sksoftmax import SoftmaxClassifier

from _common import dense_problem, environment


def fit(problem):
    X, y = problem
    return SoftmaxClassifier().fit(X, y).n_iter_


def serial(problem, n):
    start = time.perf_counter()
    for _ in range(n):
        fit(problem)
    return time.perf_counter() - start


def concurrent(problem, n):
    with ThreadPoolExecutor(max_workers=n) as pool:
        start = time.perf_counter()
        list(pool.map(fit, [problem] * n))
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    args = parser.parse_args()
    print(environment())
    problems = {
        "digits 1797x64, 10 classes": load_digits(return_X_y=True),
        "dense 20000x50, 5 classes": dense_problem(20_000, 50, 5),
    }
    print("\n| problem | workers | serial (s) | concurrent (s) | slowdown |")
    print("|---|---|---|---|---|")
    for name, problem in problems.items():
        fit(problem)
        for n in args.workers:
            times = {"serial": [], "concurrent": []}
            for _ in range(args.repeats):
                times["serial"].append(serial(problem, n))
                times["concurrent"].append(concurrent(problem, n))
            s, c = np.median(times["serial"]), np.median(times["concurrent"])
            print(f"| {name} | {n} | {s:.3f} | {c:.3f} | {c / s:.2f}x |")


if __name__ == "__main__":
    main()
