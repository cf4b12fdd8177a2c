"""The HTML report of ``sksoftmax fit --report DIR``.

One page, ``index.html``, with the held-out metrics and four matplotlib
figures written beside it as PNG files: the confusion matrix, a reliability
(calibration) curve per class, the coefficients and the solver's convergence
trace. matplotlib is imported only here.
"""

import html
from pathlib import Path

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import ConfusionMatrixDisplay

FIGURES = {
    "confusion.png": "Confusion matrix (held-out part)",
    "calibration.png": "Reliability per class (held-out part)",
    "coefficients.png": "Coefficients (of the scaled and one-hot encoded features)",
    "convergence.png": "Convergence of the solver",
}


def write_report(folder, model, X_test, y_test, metrics, trace):
    """Write ``index.html`` and its figures into ``folder``.

    Parameters
    ----------
    folder : path
        Created if needed.
    model : Pipeline
        The fitted pipeline: feature steps, then the SoftmaxClassifier.
    X_test, y_test : held-out features and labels
    metrics : list of (str, str)
        The metric names and values exactly as printed.
    trace : list of (int, float, float)
        Iteration, objective and largest gradient entry of the final fit.

    Returns
    -------
    page : Path
        The written ``index.html``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    classifier = model[-1]
    proba = model.predict_proba(X_test)
    _confusion(plt, folder, y_test, model.predict(X_test), classifier.classes_)
    _calibration(plt, folder, y_test, proba, classifier.classes_)
    _coefficients(plt, folder, classifier, model[:-1].get_feature_names_out())
    _convergence(plt, folder, trace)

    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(value)}</td></tr>"
        for name, value in metrics
    )
    figures = "".join(
        f"<h2>{html.escape(title)}</h2><img src='{name}' alt='{html.escape(title)}'>"
        for name, title in FIGURES.items()
    )
    page = folder / "index.html"
    page.write_text(
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<title>sksoftmax fit report</title></head><body>"
        "<h1>sksoftmax fit report</h1>"
        f"<h2>Held-out metrics ({len(y_test)} rows)</h2>"
        f"<table><tr><th>metric</th><th>value</th></tr>{rows}</table>"
        f"{figures}</body></html>\n",
        encoding="utf-8",
    )
    return page


def _save(plt, figure, path):
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _confusion(plt, folder, y_true, y_pred, classes):
    figure, ax = plt.subplots(figsize=(5, 4.5))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=classes, ax=ax, colorbar=False
    )
    _save(plt, figure, folder / "confusion.png")


def _calibration(plt, folder, y_true, proba, classes):
    n = len(classes)
    figure, axes = plt.subplots(1, n, figsize=(3 * n, 3), squeeze=False)
    for k, (label, ax) in enumerate(zip(classes, axes[0], strict=True)):
        hits = np.asarray(y_true) == label
        bins = max(2, min(10, int(hits.size // 10)))
        observed, predicted = calibration_curve(hits, proba[:, k], n_bins=bins)
        ax.plot([0, 1], [0, 1], color="0.7", linewidth=1)
        ax.plot(predicted, observed, marker="o")
        ax.set(title=str(label), xlabel="predicted", xlim=(0, 1), ylim=(0, 1))
    axes[0][0].set_ylabel("observed frequency")
    _save(plt, figure, folder / "calibration.png")


def _coefficients(plt, folder, classifier, feature_names):
    coef = np.asarray(classifier.coef_)
    height = max(3.0, 0.25 * len(feature_names) + 1.0)
    figure, ax = plt.subplots(figsize=(1.2 * coef.shape[0] + 3, height))
    limit = float(np.max(np.abs(coef), initial=1e-12))
    image = ax.imshow(coef.T, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(coef.shape[0]), [str(c) for c in classifier.classes_])
    ax.set_yticks(range(len(feature_names)), list(feature_names))
    figure.colorbar(image, ax=ax)
    _save(plt, figure, folder / "coefficients.png")


def _convergence(plt, folder, trace):
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    if trace:
        iteration, objective, gradient = np.array(trace).T
        left.plot(iteration, objective, marker=".")
        right.semilogy(iteration, gradient, marker=".")
    left.set(xlabel="iteration", ylabel="objective")
    right.set(xlabel="iteration", ylabel="max |gradient|")
    _save(plt, figure, folder / "convergence.png")
