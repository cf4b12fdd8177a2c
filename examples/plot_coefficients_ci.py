"""
=======================================
Coefficients with confidence intervals
=======================================

:meth:`~sksoftmax.SoftmaxClassifier.inference` turns a fitted model into
estimates, standard errors and confidence intervals. The softmax does not
change when the same vector is added to every class's coefficients, so the
parameters reported are contrasts against a reference class:
``coef[k] = W_k - W_ref``.

To see whether the intervals do their job, the data are drawn from a softmax
model whose coefficients we choose: 1500 samples, four features ``x0`` to
``x3`` in different units, three classes, with class 0 as the reference. Each
panel shows one contrast, its 95% intervals from two fits, and the true value:

* ``C=np.inf``: the maximum likelihood estimate, with the inverse observed
  information as covariance (the same numbers as statsmodels' ``MNLogit``);
* ``C=0.05``: the penalized estimate. Its covariance is the inverse of the
  penalized Hessian, the Laplace approximation of the posterior under the
  prior ``W ~ N(0, C)``. The prior pulls the estimates, and the intervals,
  towards zero. It does so on the raw coefficients, so most for ``x2``, the
  feature in the smallest units and with the largest raw coefficients.
"""

import matplotlib.pyplot as plt
import numpy as np

from sksoftmax import SoftmaxClassifier

rng = np.random.default_rng(0)
n_samples = 1500
X = rng.normal(size=(n_samples, 4)) * [10.0, 1.5, 0.3, 1.0] + [40.0, 3.0, 1.0, 0.0]
true_coef = np.array(
    [
        [0.03, 0.6, -2.0, 0.0],  # class 1 - class 0
        [-0.02, 0.0, 1.5, 0.8],  # class 2 - class 0
    ]
)
true_intercept = np.array([-1.5, 0.5])
logits = np.column_stack([np.zeros(n_samples), X @ true_coef.T + true_intercept])
# The index of the largest Gumbel-perturbed logit is a draw from the softmax.
y = np.argmax(logits + rng.gumbel(size=logits.shape), axis=1)

results = {
    "C=inf (maximum likelihood)": SoftmaxClassifier(C=np.inf).fit(X, y).inference(X, y),
    "C=0.05 (Laplace approximation)": SoftmaxClassifier(C=0.05)
    .fit(X, y)
    .inference(X, y),
}

# %%
# The text summary of the unpenalized fit, one table per contrast:

print(results["C=inf (maximum likelihood)"].summary())

# %%
# The figure: features scaled by their standard deviation, so that one axis
# fits all coefficients (a coefficient per standard deviation of its feature).

scale = X.std(axis=0)
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for k, ax in enumerate(axes):
    positions = np.arange(X.shape[1])
    for offset, (label, res) in zip([-0.12, 0.12], results.items(), strict=True):
        coef_ci, _ = res.conf_int(alpha=0.05)
        estimate = res.coef[k] * scale
        error = np.abs(coef_ci[k].T * scale - estimate)
        ax.errorbar(
            estimate,
            positions + offset,
            xerr=error,
            fmt="o",
            capsize=3,
            label=label,
        )
    ax.scatter(
        true_coef[k] * scale,
        positions,
        marker="x",
        color="black",
        zorder=3,
        label="true value",
    )
    ax.axvline(0.0, color="grey", linewidth=0.8)
    ax.set_yticks(positions, res.feature_names)
    ax.invert_yaxis()
    ax.set_title(f"class {res.classes[k]} vs class {res.reference_class}")
    ax.set_xlabel("coefficient per standard deviation, 95% interval")
handles, labels = axes[0].get_legend_handles_labels()
fig.legend(handles, labels, loc="upper center", ncol=3)
fig.tight_layout(rect=(0, 0, 1, 0.9))
plt.show()
