"""Command line: ``python -m sksoftmax demo`` (also the ``sksoftmax`` script)."""

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

from ._classifier import SoftmaxClassifier


def _fit_and_score(model, X_train, y_train, X_test, y_test, repeats=5):
    seconds = []
    for _ in range(repeats):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            start = time.perf_counter()
            model.fit(X_train, y_train)
            seconds.append(time.perf_counter() - start)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    proba = model.predict_proba(X_test)
    return {
        "test accuracy": f"{accuracy_score(y_test, model.predict(X_test)):.4f}",
        "test log loss": f"{log_loss(y_test, proba, labels=model.classes_):.4f}",
        "fit time (s)": f"{np.median(seconds):.3f}",
        "iterations": f"{int(np.max(model.n_iter_))}" + ("" if converged else " (no conv.)"),
    }


def demo():
    """Fit on scikit-learn's bundled digits; compare with LogisticRegression."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    print(
        f"digits: {X_train.shape[0]} training and {X_test.shape[0]} test samples, "
        f"{X.shape[1]} raw pixel features, {len(np.unique(y))} classes; "
        "default settings, C=1.0; fit time is the median of 5 fits\n"
    )
    rows = {
        "SoftmaxClassifier": _fit_and_score(
            SoftmaxClassifier(), X_train, y_train, X_test, y_test
        ),
        "LogisticRegression": _fit_and_score(
            LogisticRegression(), X_train, y_train, X_test, y_test
        ),
    }
    metrics = list(next(iter(rows.values())))
    width = max(map(len, metrics))
    print(f"{'':{width}}  " + "  ".join(f"{name:>18}" for name in rows))
    for metric in metrics:
        print(f"{metric:{width}}  " + "  ".join(f"{r[metric]:>18}" for r in rows.values()))


def main(argv=None):
    """Entry point of ``python -m sksoftmax`` and the ``sksoftmax`` script."""
    parser = argparse.ArgumentParser(
        prog="sksoftmax", description="Softmax regression, scikit-learn style."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="fit on the bundled digits data and compare")
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo()
    return 0
