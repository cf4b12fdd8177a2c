"""
======================================
Regularization path: coefficients vs C
======================================

:func:`~sksoftmax.softmax_path` fits one model per ``C``, from the strongest
penalty to the weakest, each fit starting from the previous solution. On the
standardized wine data (13 features, 3 classes) this plots every coefficient
of each class along the grid: strongly penalized models sit near zero (the
intercepts carry the class priors) and the coefficients grow as ``C`` rises.
The dashed line marks the ``C`` that :class:`~sksoftmax.SoftmaxClassifierCV`
chooses on the same grid.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxClassifierCV, softmax_path

wine = load_wine()
X = StandardScaler().fit_transform(wine.data)
y = wine.target
Cs = np.logspace(-3, 2, 20)

coefs, intercepts, n_iter = softmax_path(X, y, Cs)
best_C = SoftmaxClassifierCV(Cs=Cs).fit(X, y).C_

fig, ax = plt.subplots(figsize=(7, 4.2))
for k, name in enumerate(wine.target_names):
    ax.plot(Cs, coefs[:, k, :], color=f"C{k}", lw=1, alpha=0.8)
    ax.plot([], [], color=f"C{k}", label=f"class {name}")
ax.axvline(best_C, color="k", ls="--", lw=1, label=f"chosen C = {best_C:.3g}")
ax.set(xscale="log", xlabel="C", ylabel="coefficient", title="Softmax path (L2)")
ax.legend()
fig.tight_layout()
plt.show()

print(f"{n_iter.sum()} solver iterations for {len(Cs)} fits")
