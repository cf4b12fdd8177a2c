"""Elastic net: SoftmaxClassifier(l1_ratio) against LogisticRegression(saga).

scikit-learn has this penalty only with saga. Each solver is run at the same
nominal tol, timed (median of interleaved repeats), and its objective compared
with the best objective either reached at tol=1e-10: "gap" is relative, and
the exact zeros in coef_ are counted.

    python benchmarks/elastic_net.py [--repeats 3] [--tol 1e-6]
"""

import argparse

import numpy as np
from sklearn.datasets import load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxClassifier

from _common import dense_problem, environment, objective, timed_fit


def elastic_net_objective(X, y, model, C, l1_ratio):
    coef = model.coef_.astype(np.float64)
    penalty = (1 - l1_ratio) / 2 * np.sum(coef**2) + l1_ratio * np.sum(np.abs(coef))
    return objective(X, y, coef, model.intercept_, np.inf) + penalty / (C * X.shape[0])


def models(C, l1_ratio, tol):
    return {
        "ours": SoftmaxClassifier(C=C, l1_ratio=l1_ratio, tol=tol, max_iter=100_000),
        "saga": LogisticRegression(
            C=C, l1_ratio=l1_ratio, solver="saga", tol=tol, max_iter=100_000
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args()
    wine_X, wine_y = load_wine(return_X_y=True)
    digits_X, digits_y = load_digits(return_X_y=True)
    data = {
        "wine (standardized)": (StandardScaler().fit_transform(wine_X), wine_y),
        "digits / 16": (digits_X / 16, digits_y),
        "synthetic 20000x50, 5 classes": dense_problem(20_000, 50, 5),
    }
    print(environment())
    print(f"\nMedian of {args.repeats} interleaved fits at tol={args.tol:g}\n")
    print(
        "| data | l1_ratio | C | ours (s) | saga (s) | ratio | gap ours / saga "
        "| zeros ours / saga |\n|---|---|---|---|---|---|---|---|"
    )
    for name, (X, y) in data.items():
        for l1_ratio in [0.5, 1.0]:
            for C in [0.1, 1.0]:
                best = min(
                    elastic_net_objective(X, y, m.fit(X, y), C, l1_ratio)
                    for m in models(C, l1_ratio, 1e-10).values()
                )
                times = {"ours": [], "saga": []}
                for _ in range(args.repeats):
                    fitted = models(C, l1_ratio, args.tol)
                    for key, model in fitted.items():
                        times[key].append(timed_fit(model, X, y))
                t = {k: float(np.median(v)) for k, v in times.items()}
                gap = {
                    k: (elastic_net_objective(X, y, m, C, l1_ratio) - best) / best
                    for k, m in fitted.items()
                }
                zeros = {k: int(np.sum(m.coef_ == 0)) for k, m in fitted.items()}
                print(
                    f"| {name} | {l1_ratio:g} | {C:g} | {t['ours']:.3g} | "
                    f"{t['saga']:.3g} | **{t['ours'] / t['saga']:.2f}x** | "
                    f"{gap['ours']:.1e} / {gap['saga']:.1e} | "
                    f"{zeros['ours']} / {zeros['saga']} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
