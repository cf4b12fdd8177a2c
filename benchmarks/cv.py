"""Cross-validating C: SoftmaxClassifierCV against scikit-learn's searches.

8 values of C, 5 stratified folds, digits scaled to [0, 1], accuracy. Each
search is timed in the same process, interleaved, and the median of the
repeats is reported with its ratio to SoftmaxClassifierCV; the chosen C and
best score show the searches agree.

    python benchmarks/cv.py [--repeats 3]
"""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from sksoftmax import SoftmaxClassifierCV

from _common import environment


def searches(Cs, cv):
    return {
        "SoftmaxClassifierCV": SoftmaxClassifierCV(Cs=Cs, cv=cv),
        "LogisticRegressionCV": LogisticRegressionCV(
            Cs=Cs,
            cv=cv,
            l1_ratios=(0.0,),
            scoring="accuracy",
            max_iter=1000,
            use_legacy_attributes=False,
        ),
        "GridSearchCV(LogisticRegression)": GridSearchCV(
            LogisticRegression(max_iter=1000), {"C": Cs}, cv=cv
        ),
    }


def chosen(search):
    if hasattr(search, "best_params_"):
        return search.best_params_["C"], search.best_score_
    if hasattr(search, "scores_"):
        return search.C_, search.scores_.mean(axis=0).max()
    return search.C_, search.best_score_


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    X, y = load_digits(return_X_y=True)
    X = X / 16
    Cs = np.logspace(-3, 2, 8)
    cv = StratifiedKFold(5)
    print(environment())
    times = {name: [] for name in searches(Cs, cv)}
    fitted = {}
    for _ in range(args.repeats):
        for name, search in searches(Cs, cv).items():
            fitted[name] = search
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                start = time.perf_counter()
                search.fit(X, y)
                times[name].append(time.perf_counter() - start)
    ours = np.median(times["SoftmaxClassifierCV"])
    print(f"{'search':34s} {'median s':>9s} {'ours / it':>10s}")
    for name, measured in times.items():
        median = np.median(measured)
        print(f"{name:34s} {median:9.3f} {ours / median:10.3f}")
    for name, search in fitted.items():
        best_C, best_score = chosen(search)
        print(f"{name:34s} C = {best_C:.4g}, best mean accuracy = {best_score:.4f}")


if __name__ == "__main__":
    main()
