"""Independent reference computations for the tests.

Written plainly from DESIGN.md's formulas with scipy.special, sharing no code
with the package.
"""

import numpy as np
from scipy.special import logsumexp


def objective(X, y_codes, coef, intercept, sample_weight, C):
    """scikit-learn's multinomial objective at coef (K, d), intercept (K,)."""
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    X = X.astype(np.float64)
    coef = np.asarray(coef, dtype=np.float64)
    logits = X @ coef.T + np.asarray(intercept, dtype=np.float64)
    row_loss = logsumexp(logits, axis=1) - logits[np.arange(len(y_codes)), y_codes]
    weight_sum = np.sum(sample_weight)
    value = np.dot(sample_weight, row_loss) / weight_sum
    if np.isfinite(C):
        value += np.sum(coef**2) / (2 * C * weight_sum)
    return value


def symmetric_from_sklearn(lr):
    """(coef, intercept) of a fitted LogisticRegression in K-row form.

    A binary LogisticRegression has one row v; the softmax with rows
    (-v/2, v/2) gives the same probabilities with the smallest penalty.
    """
    coef, intercept = lr.coef_, lr.intercept_
    if coef.shape[0] == 1:
        coef = np.vstack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return coef, intercept


def effective_weights(y, sample_weight=None, class_weight=None):
    """sample_weight times class_weight, as scikit-learn documents it."""
    from sklearn.utils.class_weight import compute_class_weight

    classes, codes = np.unique(y, return_inverse=True)
    sw = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
    if class_weight is not None:
        sw = sw * compute_class_weight(
            class_weight, classes=classes, y=y, sample_weight=sw
        )[codes]
    return codes, sw
