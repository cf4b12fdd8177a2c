"""Marginal effects with discrete changes and chosen points, predictions
against statsmodels' get_prediction, and every new quantity on a weighted, a
sparse and a penalized case.

The oracles: statsmodels' MNLogit (dummy effects, ``atexog``), its Logit
for what MNLogit lacks (count effects, get_prediction; softmax with two
classes is the logit), repeated rows for frequency weights, the dense input
for sparse input, and finite differences with the reported covariance for a
penalized fit.
"""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose
from scipy import sparse
from scipy.special import logit, softmax
from scipy.stats import norm
from statsmodels.tools.numdiff import approx_fprime

from sksoftmax import SoftmaxClassifier

FEATURES = ["logpopul", "selfLR", "age", "educ", "income"]


@pytest.fixture(scope="module")
def anes96():
    data = sm.datasets.anes96.load_pandas().data
    X = data[FEATURES].copy()
    X["older"] = (X["age"] > 50).astype(float)
    return X, np.asarray(data["PID"]), np.asarray(data["vote"])


def _ours(X, y, C=np.inf, **kwargs):
    return SoftmaxClassifier(C=C, tol=1e-10).fit(X, y).inference(X, y, **kwargs)


def _mnlogit(X, y):
    exog = sm.add_constant(np.asarray(X, dtype=float))
    return sm.MNLogit(y, exog).fit(method="newton", tol=1e-12, disp=0)


def assert_rel(actual, desired, rtol):
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape
    assert np.max(np.abs(actual - desired) / np.abs(desired)) <= rtol


@pytest.mark.parametrize("at", ["overall", "mean"])
@pytest.mark.parametrize("method", ["dydx", "eydx"])
def test_dummy_effects_match_statsmodels(anes96, at, method):
    X, pid, _ = anes96
    res, ref = _ours(X, pid), _mnlogit(X, pid)
    me = res.marginal_effects(X, at=at, method=method, dummy=True)
    margeff = ref.get_margeff(at=at, method=method, dummy=True)
    # statsmodels: features by classes.
    assert_rel(me.effects, margeff.margeff.T, 1e-8)
    assert_rel(me.effects_se, margeff.margeff_se.T, 1e-6)
    # Only the binary column is a discrete change.
    plain = res.marginal_effects(X, at=at, method=method)
    assert_allclose(me.effects[:, :-1], plain.effects[:, :-1], rtol=1e-14)
    assert not np.allclose(me.effects[:, -1], plain.effects[:, -1])


@pytest.mark.parametrize("at", ["overall", "mean"])
@pytest.mark.parametrize("method", ["dydx", "eydx"])
def test_count_effects_match_statsmodels_logit(anes96, at, method):
    # MNLogit's count effects fail in statsmodels; with two classes the
    # softmax is the logit, whose count effects work.
    X, _, vote = anes96
    X = X[FEATURES]
    res = _ours(X, vote)
    exog = sm.add_constant(np.asarray(X, dtype=float))
    ref = sm.Logit(vote, exog).fit(method="newton", tol=1e-12, disp=0)
    me = res.marginal_effects(X, at=at, method=method, count=True)
    margeff = ref.get_margeff(at=at, method=method, count=True)
    assert_rel(me.effects[1], margeff.margeff, 1e-8)
    assert_rel(me.effects_se[1], margeff.margeff_se, 1e-6)
    if method == "dydx":
        assert_allclose(me.effects[0], -me.effects[1], rtol=1e-12)


@pytest.mark.parametrize("key", ["selfLR", 1])
def test_effects_at_chosen_values_match_statsmodels_atexog(anes96, key):
    X, pid, _ = anes96
    res, ref = _ours(X, pid), _mnlogit(X, pid)
    me = res.marginal_effects(X, at={key: 2.0, "income": 10})
    # atexog counts the constant as column 0.
    margeff = ref.get_margeff(at="mean", atexog={2: 2.0, 5: 10.0})
    assert_rel(me.effects, margeff.margeff.T, 1e-8)
    assert_rel(me.effects_se, margeff.margeff_se.T, 1e-6)
    assert me.at == {key: 2.0, "income": 10}


def test_predict_matches_statsmodels_get_prediction(anes96):
    X, _, vote = anes96
    X = X[FEATURES]
    res = _ours(X, vote)
    exog = sm.add_constant(np.asarray(X, dtype=float))
    ref = sm.Logit(vote, exog).fit(method="newton", tol=1e-12, disp=0)
    frame = ref.get_prediction(exog[::25]).summary_frame(alpha=0.1)
    proba, lower, upper = res.predict(np.asarray(X)[::25], alpha=0.1)
    assert_rel(proba[:, 1], frame["predicted"], 1e-8)
    # statsmodels forms its interval on the linear scale too.
    assert_rel(lower[:, 1], frame["ci_lower"], 1e-6)
    assert_rel(upper[:, 1], frame["ci_upper"], 1e-6)


def test_discrete_and_point_options_are_checked(anes96):
    X, pid, _ = anes96
    res = _ours(X, pid)
    for kwargs, match in [
        (dict(method="dyex", dummy=True), "discrete changes"),
        (dict(at="median", count=True), "discrete changes"),
        (dict(at={"height": 1.0}), "feature 'height'"),
        (dict(at={9: 1.0}), "column index 9"),
        (dict(at={True: 1.0}), "feature names or column indices"),
        (dict(at={"age": np.nan}), r"at\['age'\] must be a finite number"),
        (dict(at={"age": "old"}), "must be a finite number"),
        (dict(at="max"), "or a dict of feature values"),
        (dict(at="median", sample_weight=np.ones(len(pid))), "not 'median'"),
        (dict(sample_weight=np.zeros(len(pid))), "at least one non-zero"),
        (dict(sample_weight=-np.ones(len(pid))), "Negative values"),
    ]:
        with pytest.raises(ValueError, match=match):
            res.marginal_effects(X, **kwargs)


def _duplicated(X, y, weights):
    return np.repeat(np.asarray(X), weights, axis=0), np.repeat(y, weights)


@pytest.mark.parametrize("C", [np.inf, 1.0])
def test_weighted_equals_repeated_rows_for_every_quantity(anes96, C):
    X, pid, _ = anes96
    X = np.asarray(X)
    weights = np.random.default_rng(0).integers(1, 4, size=len(pid))
    Xd, yd = _duplicated(X, pid, weights)
    clf = SoftmaxClassifier(C=C, tol=1e-10)
    weighted = clf.fit(X, pid, sample_weight=weights).inference(
        X, pid, sample_weight=weights
    )
    repeated = clf.fit(Xd, yd).inference(Xd, yd)
    for at in ["overall", "mean", {3: 12.0}]:
        a = weighted.marginal_effects(X, at=at, dummy=True, sample_weight=weights)
        b = repeated.marginal_effects(Xd, at=at, dummy=True)
        assert_allclose(a.effects, b.effects, rtol=1e-7, atol=1e-12)
        assert_allclose(a.effects_se, b.effects_se, rtol=1e-6)
    for a, b in zip(weighted.predict(X[:20]), repeated.predict(X[:20]), strict=True):
        assert_allclose(a, b, rtol=1e-7)
    assert_allclose(
        weighted.wald_test_terms()["statistic"],
        repeated.wald_test_terms()["statistic"],
        rtol=1e-6,
    )
    if C == np.inf:
        small_w = _ours(X[:, :3], pid, sample_weight=weights)
        small_r = _ours(Xd[:, :3], yd)
        assert_allclose(weighted.lr_test(small_w), repeated.lr_test(small_r), rtol=1e-7)


def test_sparse_equals_dense_for_every_quantity(anes96):
    X, pid, _ = anes96
    X = np.asarray(X)
    X[X[:, 0] < 0, 0] = 0.0  # some structural zeros
    dense, csr = _ours(X, pid), _ours(sparse.csr_matrix(X), pid)
    assert_allclose(csr.cov_params, dense.cov_params, rtol=1e-7)
    for at in ["overall", "mean", "median", "zero", {"x5": 0.0}]:
        a = csr.marginal_effects(sparse.csr_matrix(X), at=at)
        b = dense.marginal_effects(X, at=at)
        assert_allclose(a.effects, b.effects, rtol=1e-7, atol=1e-13)
        assert_allclose(a.effects_se, b.effects_se, rtol=1e-6)
    a = csr.marginal_effects(sparse.csc_matrix(X), dummy=True, count=True)
    b = dense.marginal_effects(X, dummy=True, count=True)
    assert_allclose(a.effects, b.effects, rtol=1e-7, atol=1e-13)
    for a, b in zip(
        csr.predict(sparse.csr_matrix(X[:30])), dense.predict(X[:30]), strict=True
    ):
        assert_allclose(a, b, rtol=1e-7)
    assert_allclose(
        csr.wald_test_terms()["statistic"],
        dense.wald_test_terms()["statistic"],
        rtol=1e-6,
    )


def _probabilities(theta, X):
    """Probabilities of all classes from contrasts ``[c_k, beta_k]`` (k > 0)."""
    theta = theta.reshape(-1, X.shape[1] + 1)
    logits = np.column_stack([np.zeros(len(X)), theta[:, 0] + X @ theta[:, 1:].T])
    return softmax(logits, axis=1)


def test_penalized_effects_and_predictions_match_finite_differences(anes96):
    X, pid, _ = anes96
    X = np.asarray(X)
    res = _ours(X, pid, C=0.05)
    theta = np.column_stack([res.intercept, res.coef]).ravel()
    cov = res.cov_params

    def average_effects(theta):
        step = 1e-5 * np.maximum(1.0, np.abs(X).mean(axis=0))
        columns = []
        for j in range(X.shape[1]):
            up, down = X.copy(), X.copy()
            up[:, j] += step[j]
            down[:, j] -= step[j]
            change = _probabilities(theta, up) - _probabilities(theta, down)
            columns.append(change.mean(axis=0) / (2 * step[j]))
        return np.column_stack(columns).ravel()

    me = res.marginal_effects(X)
    assert_allclose(me.effects.ravel(), average_effects(theta), rtol=1e-6, atol=1e-9)
    jacobian = approx_fprime(theta, average_effects, centered=True)
    se = np.sqrt(np.diag(jacobian @ cov @ jacobian.T))
    assert_allclose(me.effects_se.ravel(), se, rtol=1e-4)

    rows = X[::40]

    def log_odds(theta):
        return logit(_probabilities(theta, rows)).ravel()

    jacobian = approx_fprime(theta, log_odds, centered=True)
    half = norm.ppf(0.975) * np.sqrt(np.diag(jacobian @ cov @ jacobian.T))
    proba, lower, upper = res.predict(rows)
    assert_allclose(proba.ravel(), _probabilities(theta, rows).ravel(), rtol=1e-10)
    assert_allclose(logit(lower).ravel(), log_odds(theta) - half, rtol=1e-5)
    assert_allclose(logit(upper).ravel(), log_odds(theta) + half, rtol=1e-5)

    # A Wald test is the quadratic form in the reported covariance.
    R = np.zeros((2, theta.size))
    R[0, 1], R[1, 1 + X.shape[1] + 1] = 1.0, 1.0
    diff = R @ theta
    expected = diff @ np.linalg.solve(R @ cov @ R.T, diff)
    assert_allclose(res.wald_test(R).statistic, expected, rtol=1e-10)
    with pytest.raises(ValueError, match="C=np.inf"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res.lr_test(_ours(X[:, :3], pid, C=0.05))


def _scores(res, X, y):
    """Per-sample scores of the log-likelihood in the contrasts, by hand."""
    theta = np.column_stack([res.intercept, res.coef]).ravel()
    proba = _probabilities(theta, X)
    residual = (y[:, None] == np.arange(proba.shape[1])) - proba
    design = np.column_stack([np.ones(len(X)), X])
    return (residual[:, 1:, None] * design[:, None, :]).reshape(len(X), -1)


@pytest.mark.parametrize("C", [np.inf, 0.05])
def test_robust_covariances_are_hand_sandwiches_also_penalized_and_sparse(anes96, C):
    X, pid, _ = anes96
    X = np.asarray(X)
    y = np.searchsorted(np.unique(pid), pid)
    groups = (X[:, 2] // 5).astype(int)
    bread = _ours(X, y, C=C).cov_params
    scores = _scores(_ours(X, y, C=C), X, y)
    n, k = scores.shape
    hc0 = bread @ (scores.T @ scores) @ bread
    sums = np.array([scores[groups == g].sum(axis=0) for g in np.unique(groups)])
    G = len(sums)
    cluster = bread @ (sums.T @ sums) @ bread * G / (G - 1) * (n - 1) / (n - k)
    for X_in in [X, sparse.csr_matrix(X)]:
        assert_allclose(_ours(X_in, y, C=C, cov_type="HC0").cov_params, hc0, rtol=1e-7)
        assert_allclose(
            _ours(X_in, y, C=C, cov_type="HC1").cov_params,
            hc0 * n / (n - k),
            rtol=1e-7,
        )
        assert_allclose(
            _ours(X_in, y, C=C, cov_type="cluster", groups=groups).cov_params,
            cluster,
            rtol=1e-7,
        )
