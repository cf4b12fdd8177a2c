"""
========================================================
Cross-validation curve: the score against C, with spread
========================================================

:class:`~sksoftmax.SoftmaxClassifierCV` with an integer ``Cs`` builds its grid
from the data: it starts at the strongest useful penalty (for the lasso, the
smallest ``C`` at which some coefficient leaves zero) and spans four decades.
Here it searches the L2 and the lasso penalty on the breast cancer data with
5-fold cross-validation and the log-loss. Each curve is the mean held-out
score, the band one standard deviation of the folds around it, both read
from ``cv_results_``; the dot is the chosen ``C``.
"""

import matplotlib.pyplot as plt
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxClassifierCV

X, y = load_breast_cancer(return_X_y=True)
X = StandardScaler().fit_transform(X)

search = SoftmaxClassifierCV(
    Cs=12, l1_ratios=[0.0, 1.0], cv=5, scoring="neg_log_loss"
).fit(X, y)
results = search.cv_results_

fig, ax = plt.subplots(figsize=(7, 4.2))
for l1_ratio, label in [(0.0, "L2"), (1.0, "lasso")]:
    rows = results["param_l1_ratio"] == l1_ratio
    Cs = results["param_C"][rows]
    mean = results["mean_test_score"][rows]
    std = results["std_test_score"][rows]
    (line,) = ax.plot(Cs, mean, label=label)
    ax.fill_between(Cs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
ax.plot(
    search.C_,
    search.best_score_,
    "ko",
    label=f"chosen: C = {search.C_:.3g}, l1_ratio = {search.l1_ratio_:g}",
)
ax.set(
    xscale="log",
    xlabel="C",
    ylabel="mean held-out log-likelihood",
    title="5-fold cross-validation",
)
ax.legend()
fig.tight_layout()
plt.show()
