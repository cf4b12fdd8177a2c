"""Where default fits stop near separation: the relative gap to the optimum.

Random problems whose classes are far apart (logits of scale 30), the kind on
which the objective keeps falling along flat directions long after the
gradient is small. For each C and solver, prints how many default fits
(tol=1e-4) ended above a relative gap of 3e-4 without a ConvergenceWarning,
and the largest gap. The optimum f* is the lower of scikit-learn's
newton-cholesky and our newton-cg, both at tol=1e-10 (the objectives are the
same for three classes or more; binary problems are left out, since
scikit-learn's binary objective penalizes one row of coefficients).

    python benchmarks/stopping.py [--problems 80]
"""

import argparse
import warnings

import numpy as np
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression

from sksoftmax import SoftmaxClassifier

from _common import objective

SILENT_GAP = 3e-4


def problem(seed):
    rng = np.random.default_rng(seed)
    n, d = int(rng.integers(300, 2500)), int(rng.integers(5, 25))
    n_classes = int(rng.integers(2, 6))
    X = rng.standard_normal((n, d))
    W = 30 * rng.standard_normal((n_classes, d)) / np.sqrt(d)
    y = np.array([rng.choice(n_classes, p=p) for p in softmax(X @ W.T, axis=1)])
    return X, np.unique(y, return_inverse=True)[1]


def optimum(X, y, C):
    with warnings.catch_warnings():
        # newton-cholesky's line search gives up near separation and says so.
        warnings.simplefilter("ignore")
        theirs = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-10)
        theirs.fit(X, y)
    ours = SoftmaxClassifier(C=C, solver="newton-cg", tol=1e-10, max_iter=10_000)
    ours.fit(X, y)
    return min(
        objective(X, y, model.coef_, model.intercept_, C) for model in (theirs, ours)
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=80, help="seeds tried")
    args = parser.parse_args()
    problems = [problem(seed) for seed in range(args.problems)]
    problems = [(X, y) for X, y in problems if np.unique(y).size >= 3]
    print(f"{len(problems)} problems of 3 classes or more, default tol=1e-4")
    print("| C | solver | worst relative gap | silent above 3e-4 | median iterations |")
    print("|---|---|---|---|---|")
    for C in [1e2, 1e4, 1e6]:
        stars = [optimum(X, y, C) for X, y in problems]
        for solver in ["lbfgs", "newton-cg"]:
            gaps, silent, n_iter = [], 0, []
            for (X, y), f_star in zip(problems, stars, strict=True):
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    model = SoftmaxClassifier(C=C, solver=solver).fit(X, y)
                value = objective(X, y, model.coef_, model.intercept_, C)
                gap = (value - f_star) / f_star
                gaps.append(gap)
                silent += gap > SILENT_GAP and not caught
                n_iter.append(model.n_iter_)
            print(
                f"| {C:g} | {solver} | {max(gaps):.1e} | {silent} | "
                f"{np.median(n_iter):.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
