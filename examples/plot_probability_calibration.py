"""
===================================================
Probabilities and calibration vs LogisticRegression
===================================================

:class:`~sksoftmax.SoftmaxClassifier` minimizes the same objective as
scikit-learn's ``LogisticRegression``, so at the same ``C`` both predict the
same probabilities, up to the solvers' tolerance. The left panel plots one
against the other for every test sample and class: the points lie on the
diagonal.

The other two panels are reliability diagrams. Each predicted probability
:math:`P(y = k \\mid x)` is treated as a forecast of the event
":math:`y = k`"; the forecasts of all classes are binned, and within each bin
the mean forecast is plotted against how often the event happened. A
well-calibrated model lies on the diagonal.

In both, the two libraries' curves coincide: calibration is a property of the
model and the data, not of the solver. In the middle panel they bend away from
the diagonal because ``make_classification`` draws each class from a Gaussian
cluster with its own covariance, so the true log-odds between classes are not
linear in :math:`x` and no linear model, however well fitted, is exactly
calibrated. In the right panel the labels are drawn from a softmax model, the
log-odds are linear, and the fit is calibrated up to sampling noise.
"""

import matplotlib.pyplot as plt
import numpy as np
from scipy.special import softmax
from sklearn.calibration import calibration_curve
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

from sksoftmax import SoftmaxClassifier

n_classes = 4
X, y = make_classification(
    n_samples=4000,
    n_features=20,
    n_informative=6,
    n_redundant=2,
    n_classes=n_classes,
    n_clusters_per_class=1,
    class_sep=0.8,
    random_state=0,
)

# Labels drawn from a softmax model with random coefficients.
rng = np.random.default_rng(0)
X_linear = rng.standard_normal((4000, 10))
true_proba = softmax(X_linear @ rng.normal(scale=0.8, size=(10, n_classes)), axis=1)
y_linear = (true_proba.cumsum(axis=1) < rng.uniform(size=(4000, 1))).sum(axis=1)


def fit_both(X, y):
    """Test labels and each library's test probabilities."""
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    models = {
        "SoftmaxClassifier": SoftmaxClassifier(C=1.0),
        "LogisticRegression": LogisticRegression(C=1.0),
    }
    return y_test, {
        name: model.fit(X_train, y_train).predict_proba(X_test)
        for name, model in models.items()
    }


def reliability(ax, y_test, proba, title):
    # One-vs-rest events of all classes, pooled: each entry of the probability
    # matrix forecasts whether the sample's class is that column's class.
    events = (y_test[:, None] == np.arange(n_classes)).ravel()
    for (name, p), marker in zip(proba.items(), ["o", "x"], strict=True):
        observed, predicted = calibration_curve(
            events, p.ravel(), n_bins=10, strategy="quantile"
        )
        ax.plot(predicted, observed, marker=marker, label=name)
    ax.plot(
        [0, 1],
        [0, 1],
        color="k",
        linewidth=0.8,
        linestyle="--",
        label="perfectly calibrated",
    )
    ax.set_xlabel("mean predicted probability (per bin)")
    ax.set_title(title)
    ax.set_aspect("equal")


y_test, proba = fit_both(X, y)
y_test_linear, proba_linear = fit_both(X_linear, y_linear)

for name, p in proba.items():
    print(f"{name:>20}: test log-loss {log_loss(y_test, p):.5f}")
gap = np.abs(proba["SoftmaxClassifier"] - proba["LogisticRegression"]).max()
print(f"largest difference between the two models' probabilities: {gap:.1e}")

fig, (ax_agree, ax_clusters, ax_linear) = plt.subplots(1, 3, figsize=(15, 5.2))

ax_agree.scatter(
    proba["LogisticRegression"].ravel(),
    proba["SoftmaxClassifier"].ravel(),
    s=4,
    alpha=0.3,
)
ax_agree.plot([0, 1], [0, 1], color="k", linewidth=0.8)
ax_agree.set_xlabel("LogisticRegression.predict_proba")
ax_agree.set_ylabel("SoftmaxClassifier.predict_proba")
ax_agree.set_title(f"Same probabilities (largest difference {gap:.0e})")
ax_agree.set_aspect("equal")

reliability(ax_clusters, y_test, proba, "make_classification: log-odds not linear")
reliability(
    ax_linear, y_test_linear, proba_linear, "softmax-model data: linear log-odds"
)
ax_clusters.set_ylabel("observed frequency")
ax_clusters.legend(loc="upper left")
fig.tight_layout()
plt.show()
