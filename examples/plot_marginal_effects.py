"""
Marginal effects with confidence intervals
==========================================

Coefficients of a multinomial model are contrasts on the log-odds scale;
what readers usually want is how each class's *probability* moves when a
feature does. :meth:`~sksoftmax.SoftmaxInferenceResults.marginal_effects`
gives the average marginal effect of every feature on every class's
probability (``at="overall"``, ``method="dydx"``: the derivative averaged over
the samples), with delta-method standard errors. The effects on the classes
of one feature sum to zero, since the probabilities sum to one.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxClassifier

X, y = load_wine(return_X_y=True, as_frame=True)
X = X[["alcohol", "malic_acid", "color_intensity", "hue", "proline"]]
X_scaled = StandardScaler().set_output(transform="pandas").fit_transform(X)

clf = SoftmaxClassifier(C=1.0).fit(X_scaled, y)
effects = clf.inference(X_scaled, y).marginal_effects(X_scaled)
ci = effects.conf_int(alpha=0.05)

fig, axes = plt.subplots(1, len(effects.classes), figsize=(12, 3.8), sharey=True)
positions = np.arange(len(effects.feature_names))
for k, ax in enumerate(axes):
    ax.axvline(0.0, color="0.7", linewidth=1)
    ax.errorbar(
        effects.effects[k],
        positions,
        xerr=[effects.effects[k] - ci[k, :, 0], ci[k, :, 1] - effects.effects[k]],
        fmt="o",
        capsize=3,
    )
    ax.set_title(f"P(class {effects.classes[k]})")
    ax.set_xlabel("change per standard deviation")
axes[0].set_yticks(positions, effects.feature_names)
fig.suptitle("Average marginal effects with 95% intervals (wine, C=1)")
fig.tight_layout()
plt.show()

# %%
# The same numbers as a table:
print(effects.summary())
