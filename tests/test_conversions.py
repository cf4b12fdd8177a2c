"""The parameter conversions stated on the docs' math page, checked numerically."""

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxClassifier

from _reference import effective_weights, objective
from conftest import TIGHT


def test_multinomial_logistic_regression_has_the_same_parameters():
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    ours = SoftmaxClassifier(C=0.5, **TIGHT).fit(X, y)
    theirs = LogisticRegression(C=0.5, **TIGHT).fit(X, y)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, atol=1e-6)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, atol=1e-6)
    # The penalty makes the symmetric parameterization unique: rows sum to 0.
    np.testing.assert_allclose(ours.coef_.sum(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(ours.intercept_.sum(), 0.0, atol=1e-10)


def test_binary_logistic_regression_at_twice_C():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    C = 0.3
    ours = SoftmaxClassifier(C=C, **TIGHT).fit(X, y)
    # newton-cholesky pins the binary optimum down to rounding; at C instead of
    # 2 * C the coefficients would differ by 0.25.
    theirs = LogisticRegression(C=2 * C, solver="newton-cholesky", **TIGHT).fit(X, y)
    atol = 1e-5
    np.testing.assert_allclose(
        ours.coef_[1] - ours.coef_[0], theirs.coef_[0], atol=atol
    )
    np.testing.assert_allclose(
        ours.intercept_[1] - ours.intercept_[0], theirs.intercept_[0], atol=atol
    )
    np.testing.assert_allclose(
        ours.coef_, np.vstack([-theirs.coef_[0] / 2, theirs.coef_[0] / 2]), atol=atol
    )
    np.testing.assert_allclose(
        ours.decision_function(X), theirs.decision_function(X), atol=atol
    )


def _overlapping_classes():
    # Noisy labels keep the classes from being separable, so the unpenalized
    # maximum-likelihood estimate exists.
    return make_classification(
        n_samples=600,
        n_features=5,
        n_informative=4,
        n_redundant=0,
        n_classes=4,
        flip_y=0.2,
        class_sep=0.8,
        random_state=0,
    )


def test_statsmodels_mnlogit_estimates_reference_class_contrasts():
    sm = pytest.importorskip("statsmodels.api")
    X, y = _overlapping_classes()
    ours = SoftmaxClassifier(C=np.inf, **TIGHT).fit(X, y)
    result = sm.MNLogit(y, sm.add_constant(X)).fit(method="newton", disp=0, tol=1e-12)
    params = np.asarray(result.params)
    W, b = ours.coef_, ours.intercept_
    np.testing.assert_allclose(params[0], b[1:] - b[0], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(params[1:], (W[1:] - W[0]).T, rtol=1e-5, atol=1e-7)
    codes, sw = effective_weights(y)
    f = objective(X, codes, W, b, sw, np.inf)
    np.testing.assert_allclose(result.llf, -len(y) * f, rtol=1e-10)

    # The reverse map: a zero reference row gives the same probabilities.
    coef = np.vstack([np.zeros(X.shape[1]), params[1:].T])
    intercept = np.r_[0.0, params[0]]
    logits = X @ coef.T + intercept
    proba = np.exp(logits - logits.max(axis=1, keepdims=True))
    proba /= proba.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(proba, ours.predict_proba(X), atol=1e-7)
    np.testing.assert_allclose(proba, result.predict(sm.add_constant(X)), atol=1e-12)


def _torch_linear(torch, clf):
    n_classes, n_features = clf.coef_.shape
    linear = torch.nn.Linear(n_features, n_classes, dtype=torch.float64)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(clf.coef_))
        linear.bias.copy_(torch.from_numpy(clf.intercept_))
    return linear


def test_torch_cross_entropy_with_weight_decay_is_the_objective():
    torch = pytest.importorskip("torch")
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    C = 0.7
    class_weight = {0: 2.0, 1: 0.5, 2: 1.0}
    clf = SoftmaxClassifier(C=C, class_weight=class_weight, **TIGHT).fit(X, y)
    codes, s = effective_weights(y, class_weight=class_weight)
    weight_decay = 1.0 / (C * s.sum())

    linear = _torch_linear(torch, clf)
    per_class = [class_weight[c] for c in clf.classes_]
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(per_class, dtype=torch.float64)
    )
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(codes)
    penalized = loss_fn(linear(X_t), y_t)
    penalized = penalized + 0.5 * weight_decay * linear.weight.square().sum()
    assert penalized.item() == pytest.approx(
        objective(X, codes, clf.coef_, clf.intercept_, s, C), rel=1e-12
    )
    # The fitted coefficients minimize the PyTorch objective too (a wrong
    # weight decay would leave gradient entries near 1e-3 here).
    penalized.backward()
    assert float(linear.weight.grad.abs().max()) <= 1e-6
    assert float(linear.bias.grad.abs().max()) <= 1e-6

    # One SGD step with lr=1 moves the parameters by minus the gradient of f:
    # weight decay on the weight only is exactly the 1/(C S) ridge penalty.
    optimizer = torch.optim.SGD(
        [
            {"params": [linear.weight], "weight_decay": weight_decay},
            {"params": [linear.bias], "weight_decay": 0.0},
        ],
        lr=1.0,
    )
    with torch.no_grad():
        linear.weight.mul_(1.5)
        linear.bias.add_(0.3 * torch.arange(3, dtype=torch.float64))
    W_before = linear.weight.detach().numpy().copy()
    b_before = linear.bias.detach().numpy().copy()
    optimizer.zero_grad()
    loss_fn(linear(X_t), y_t).backward()
    optimizer.step()

    grad_W, grad_b = _objective_gradient(X, codes, W_before, b_before, s, C)
    step_W = W_before - linear.weight.detach().numpy()
    step_b = b_before - linear.bias.detach().numpy()
    np.testing.assert_allclose(step_W, grad_W, atol=1e-12)
    np.testing.assert_allclose(step_b, grad_b, atol=1e-12)


def test_torch_sample_weights_by_weighted_sum():
    torch = pytest.importorskip("torch")
    X, y = _overlapping_classes()
    sample_weight = np.random.default_rng(0).uniform(0.2, 3.0, size=len(y))
    C = 2.0
    clf = SoftmaxClassifier(C=C, class_weight="balanced", **TIGHT)
    clf.fit(X, y, sample_weight=sample_weight)
    codes, s = effective_weights(y, sample_weight, "balanced")
    weight_decay = 1.0 / (C * s.sum())

    linear = _torch_linear(torch, clf)
    losses = torch.nn.functional.cross_entropy(
        linear(torch.from_numpy(X)), torch.from_numpy(codes), reduction="none"
    )
    s_t = torch.from_numpy(s)
    loss = (losses * s_t).sum() / s_t.sum()
    penalized = loss + 0.5 * weight_decay * linear.weight.square().sum()
    assert penalized.item() == pytest.approx(
        objective(X, codes, clf.coef_, clf.intercept_, s, C), rel=1e-12
    )
    # At the fitted coefficients the PyTorch objective is stationary.
    penalized.backward()
    assert float(linear.weight.grad.abs().max()) <= 1e-6
    assert float(linear.bias.grad.abs().max()) <= 1e-6


def _objective_gradient(X, codes, W, b, s, C):
    """DESIGN.md's gradient for coef-layout W (K, d): X^T D (P - Y) + W / (C S)."""
    logits = X @ W.T + b
    P = np.exp(logits - logits.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    P[np.arange(len(codes)), codes] -= 1.0
    DR = P * (s / s.sum())[:, None]
    return DR.T @ X + W / (C * s.sum()), DR.sum(axis=0)
