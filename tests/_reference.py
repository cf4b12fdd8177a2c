"""Independent reference computations for the tests.

Written plainly from the formulas of docs/math.rst with scipy.special, sharing no code
with the package.
"""

import numpy as np
from scipy.special import logsumexp, softmax


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
        sw = (
            sw
            * compute_class_weight(
                class_weight, classes=classes, y=y, sample_weight=sw
            )[codes]
        )
    return codes, sw


def _contrast_logits(theta, X, reference, n_classes, fit_intercept):
    """Logits (n, K) of contrasts theta (K-1, q), rows [intercept, coef...]."""
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X, dtype=np.float64)
    design = np.column_stack([np.ones(len(X)), X]) if fit_intercept else X
    others = [k for k in range(n_classes) if k != reference]
    logits = np.zeros((len(X), n_classes))
    logits[:, others] = design @ np.asarray(theta).T
    return logits, design, others


def contrast_objective(
    theta, X, y_codes, sample_weight, C, reference, n_classes, fit_intercept=True
):
    """Summed negative log-likelihood plus the symmetric penalty, in contrasts.

    The penalty is that of the class-centred symmetric coefficients,
    ``||W - mean_k W||^2 / (2 C)`` with ``W`` the contrasts and a zero row
    for the reference class.
    """
    logits, _, _ = _contrast_logits(theta, X, reference, n_classes, fit_intercept)
    row_loss = logsumexp(logits, axis=1) - logits[np.arange(len(y_codes)), y_codes]
    value = np.dot(sample_weight, row_loss)
    if np.isfinite(C):
        beta = np.asarray(theta)[:, 1:] if fit_intercept else np.asarray(theta)
        W = np.vstack([np.zeros(beta.shape[1]), beta])
        value += np.sum((W - W.mean(axis=0)) ** 2) / (2 * C)
    return value


def contrast_gradient(
    theta, X, y_codes, sample_weight, C, reference, n_classes, fit_intercept=True
):
    """Gradient of ``contrast_objective`` with respect to theta (K-1, q)."""
    logits, design, others = _contrast_logits(
        theta, X, reference, n_classes, fit_intercept
    )
    proba = np.exp(logits - logsumexp(logits, axis=1, keepdims=True))
    onehot = np.eye(n_classes)[y_codes]
    grad = ((proba - onehot)[:, others] * sample_weight[:, None]).T @ design
    if np.isfinite(C):
        beta = np.asarray(theta)[:, 1:] if fit_intercept else np.asarray(theta)
        penalty_grad = (beta - beta.sum(axis=0) / n_classes) / C
        if fit_intercept:
            grad[:, 1:] += penalty_grad
        else:
            grad += penalty_grad
    return grad


def _plain_terms(X, y_codes, n_classes, sample_weight, params, fit_intercept):
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X, dtype=np.float64)
    n, d = X.shape
    coef = params.reshape(d + 1, n_classes)
    if not fit_intercept:
        coef = coef.copy()
        coef[d] = 0.0
    design = np.hstack([X, np.ones((n, 1))])
    logits = design @ coef
    w = np.asarray(sample_weight, dtype=np.float64) / np.sum(sample_weight)
    value = float(w @ (logsumexp(logits, axis=1) - logits[np.arange(n), y_codes]))
    return design, softmax(logits, axis=1), w, value


def data_term(X, y_codes, n_classes, sample_weight, params, fit_intercept):
    """The engines' unpenalized data term, computed plainly, at flat ``params``.

    ``params`` is ``[W.ravel(), b]`` with ``W`` of shape (n_features,
    n_classes). Returns the value, the gradient, the dense Hessian and the
    weighted sum of the per-sample scores' outer products, all under the
    weights ``s_i / S``; without an intercept, everything involving ``b`` is
    zero.
    """
    design, proba, w, value = _plain_terms(
        X, y_codes, n_classes, sample_weight, params, fit_intercept
    )
    n, d = design.shape[0], design.shape[1] - 1
    K = n_classes
    onehot = np.eye(K)[y_codes]
    scores = np.einsum("ij,ik->ijk", design, proba - onehot).reshape(n, -1)
    grad = w @ scores
    curvature = np.einsum("ik,kl->ikl", proba, np.eye(K)) - np.einsum(
        "ik,il->ikl", proba, proba
    )
    hessian = np.einsum("i,ia,ib,ikl->akbl", w, design, design, curvature).reshape(
        (d + 1) * K, (d + 1) * K
    )
    outer = np.einsum("i,ia,ib->ab", w, scores, scores)
    if not fit_intercept:
        grad[d * K :] = 0.0
        for square in (hessian, outer):
            square[d * K :, :] = 0.0
            square[:, d * K :] = 0.0
    return value, grad, hessian, outer


def data_term_product(
    X, y_codes, n_classes, sample_weight, params, direction, fit_intercept
):
    """The data term's value, gradient and Hessian times ``direction``, plainly.

    As :func:`data_term`, without forming the Hessian: for problems whose
    Hessian or per-sample outer products would not fit in memory.
    """
    design, proba, w, value = _plain_terms(
        X, y_codes, n_classes, sample_weight, params, fit_intercept
    )
    d = design.shape[1] - 1
    residual = proba.copy()
    residual[np.arange(len(y_codes)), y_codes] -= 1.0
    grad = design.T @ (w[:, None] * residual)
    V = direction.reshape(d + 1, n_classes).copy()
    if not fit_intercept:
        V[d] = 0.0
    moved = proba * (design @ V)
    product = design.T @ (w[:, None] * (moved - proba * moved.sum(1, keepdims=True)))
    if not fit_intercept:
        grad[d] = 0.0
        product[d] = 0.0
    return value, grad.ravel(), product.ravel()
