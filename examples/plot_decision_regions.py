"""
========================================
Decision regions and class probabilities
========================================

The wine data has 13 features and three classes. Projected on its first two
principal components, the classes are nearly separated by straight lines, and
a softmax regression in those two coordinates draws exactly such lines: the
boundary between classes :math:`j` and :math:`k` is where their logits are
equal, :math:`(w_j - w_k)^\\top x + b_j - b_k = 0`.

Each panel colours the plane by the predicted probabilities, mixing the three
class colours in proportion to them, so pale regions are where the model is
unsure. A small ``C`` (strong penalty) shrinks the coefficients: the
probabilities change slowly across the plane and the boundaries are wide
bands. A large ``C`` gives sharp transitions.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_wine
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxClassifier

wine = load_wine()
X2 = make_pipeline(StandardScaler(), PCA(n_components=2)).fit_transform(wine.data)
y = wine.target

class_colors = np.array([[0.89, 0.10, 0.11], [0.22, 0.49, 0.72], [0.30, 0.69, 0.29]])
margin = 0.8
xx, yy = np.meshgrid(
    np.linspace(X2[:, 0].min() - margin, X2[:, 0].max() + margin, 300),
    np.linspace(X2[:, 1].min() - margin, X2[:, 1].max() + margin, 300),
)
grid = np.column_stack([xx.ravel(), yy.ravel()])

Cs = [0.01, 0.1, 10.0]
fig, axes = plt.subplots(1, len(Cs), figsize=(13, 4.4), sharey=True)
for ax, C in zip(axes, Cs, strict=True):
    clf = SoftmaxClassifier(C=C).fit(X2, y)
    proba = clf.predict_proba(grid)
    # Probability-weighted mix of the class colours, faded towards white where
    # the most probable class is far from certain.
    certainty = (proba.max(axis=1, keepdims=True) - 1 / 3) * 1.5
    rgb = certainty * (proba @ class_colors) + (1 - certainty) * 1.0
    ax.imshow(
        rgb.reshape(*xx.shape, 3),
        origin="lower",
        extent=(xx.min(), xx.max(), yy.min(), yy.max()),
        aspect="auto",
    )
    # Class k's region ends where its logit stops being the largest.
    logits = clf.decision_function(grid)
    for k in range(3):
        lead = logits[:, k] - np.delete(logits, k, axis=1).max(axis=1)
        ax.contour(
            xx, yy, lead.reshape(xx.shape), levels=[0.0], colors="k", linewidths=0.8
        )
    for k, name in enumerate(wine.target_names):
        ax.scatter(
            *X2[y == k].T,
            color=class_colors[k],
            edgecolor="k",
            linewidth=0.5,
            s=22,
            label=name,
        )
    ax.set_title(f"C = {C:g}, training accuracy {clf.score(X2, y):.2f}")
    ax.set_xlabel("first principal component")
axes[0].set_ylabel("second principal component")
axes[0].legend(loc="lower left", fontsize="small")
fig.tight_layout()
plt.show()

# %%
# The coefficients of each class are one row of ``coef_``. With the penalty
# they sum to zero over the classes, so each row is that class's direction
# relative to the average class; in the last panel:
print(np.round(clf.coef_, 2))
print(f"largest column sum: {np.abs(clf.coef_.sum(axis=0)).max():.1e}")
