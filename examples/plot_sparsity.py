"""
==================================================
Sparse coefficients: the L1 penalty as C decreases
==================================================

With ``l1_ratio > 0`` part of the penalty is :math:`\\lVert W\\rVert_1`, and
coefficients become exactly zero once the data's pull on them is weaker than
the penalty. On the standardized wine data (13 features, 3 classes) this plot
fits the lasso (``l1_ratio=1``) and an elastic net (``l1_ratio=0.5``) along a
grid of ``C``, each fit warm-started from the previous one.

The left panel counts the features still used by some class (a row of
``coef_`` that is not all zero). The right panel follows each coefficient of
the lasso along the grid: they leave zero one after another as the penalty
weakens, the familiar lasso path.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxClassifier

wine = load_wine()
X = StandardScaler().fit_transform(wine.data)
y = wine.target
Cs = np.logspace(-2.5, 1, 30)

paths = {}
for l1_ratio in [1.0, 0.5]:
    clf = SoftmaxClassifier(l1_ratio=l1_ratio, warm_start=True, tol=1e-6)
    paths[l1_ratio] = np.array([clf.set_params(C=C).fit(X, y).coef_ for C in Cs])

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
for l1_ratio, coefs in paths.items():
    used = np.any(coefs != 0, axis=1).sum(axis=1)
    left.step(Cs, used, where="post", label=f"l1_ratio={l1_ratio:g}")
left.set(
    xscale="log",
    xlabel="C",
    ylabel="features used (of 13)",
    title="Features with a non-zero coefficient",
)
left.legend()

lasso = paths[1.0]
for k, name in enumerate(wine.target_names):
    for j in range(X.shape[1]):
        right.plot(Cs, lasso[:, k, j], color=f"C{k}", lw=1, alpha=0.8)
    right.plot([], [], color=f"C{k}", label=name)
right.set(xscale="log", xlabel="C", ylabel="coefficient", title="Lasso path")
right.legend()
fig.tight_layout()
plt.show()
