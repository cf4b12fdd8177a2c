"""Marginal effects, robust covariances, hypothesis tests and predictions.

statsmodels' MNLogit is the oracle where it has the quantity; elsewhere an
independent computation in the test (statsmodels' per-row derivatives with a
complex-step Jacobian, finite differences, repeated rows).
"""

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose
from statsmodels.tools.numdiff import approx_fprime_cs

from sksoftmax import SoftmaxClassifier


@pytest.fixture(scope="module")
def anes96():
    data = sm.datasets.anes96.load_pandas()
    return data.exog, data.endog


@pytest.fixture(scope="module")
def fitted(anes96):
    """Our inference and statsmodels' MNLogit on anes96, without a penalty."""
    X, y = anes96
    res = SoftmaxClassifier(C=np.inf, tol=1e-10).fit(X, y).inference(X, y)
    exog = sm.add_constant(np.asarray(X, dtype=float))
    ref = sm.MNLogit(np.asarray(y), exog).fit(method="newton", tol=1e-12, disp=0)
    return res, ref


def assert_rel(actual, desired, rtol):
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape
    assert np.max(np.abs(actual - desired) / np.abs(desired)) <= rtol


# statsmodels' MNLogit computes "dyex" and "eyex" for no `at`; it has "dydx"
# and "eydx" at all four.
@pytest.mark.parametrize("at", ["overall", "mean", "median", "zero"])
@pytest.mark.parametrize("method", ["dydx", "eydx"])
def test_marginal_effects_match_statsmodels(anes96, fitted, at, method):
    X, _ = anes96
    res, ref = fitted
    me = res.marginal_effects(X, at=at, method=method)
    margeff = ref.get_margeff(at=at, method=method)
    # statsmodels: one row per feature, one column per class.
    assert_rel(me.effects, margeff.margeff.T, 1e-8)
    assert_rel(me.effects_se, margeff.margeff_se.T, 1e-6)
    assert_allclose(me.effects_pvalue, margeff.pvalues.T, rtol=1e-5, atol=1e-12)
    assert_allclose(
        me.conf_int(),
        margeff.conf_int().transpose(2, 0, 1),
        rtol=1e-6,
    )
    assert me.at == at and me.method == method
    assert list(me.classes) == sorted(np.unique(anes96[1]))


@pytest.mark.parametrize("at", ["mean", "median", "zero"])
@pytest.mark.parametrize("method", ["dyex", "eyex"])
def test_elasticities_at_a_point_scale_statsmodels(anes96, fitted, at, method):
    # At one point x, "..ex" is "..dx" times x_j.
    X, _ = anes96
    res, ref = fitted
    x = {"mean": X.mean(), "median": X.median(), "zero": 0.0 * X.mean()}[at]
    x = np.asarray(x, dtype=float)
    margeff = ref.get_margeff(at=at, method=method.replace("ex", "dx"))
    me = res.marginal_effects(X, at=at, method=method)
    if at == "zero":
        assert_allclose(me.effects, 0.0, atol=0)
        assert_allclose(me.effects_se, 0.0, atol=0)
        return
    assert_rel(me.effects, margeff.margeff.T * x, 1e-8)
    assert_rel(me.effects_se, margeff.margeff_se.T * np.abs(x), 1e-6)


@pytest.mark.parametrize("method", ["dyex", "eyex"])
def test_average_elasticities_match_a_complex_step_delta_method(anes96, fitted, method):
    X, _ = anes96
    res, ref = fitted
    exog = ref.model.exog

    def average(params):
        # statsmodels' per-row derivatives, transformed row by row.
        dydx = ref.model._derivative_exog(params, exog, "dydx")
        dydx = dydx.reshape(len(exog), exog.shape[1], -1, order="F")[:, 1:]
        params = params.reshape(exog.shape[1], -1, order="F")
        proba = ref.model.predict(params, exog)
        effect = dydx * exog[:, 1:, None]
        if method == "eyex":
            effect = effect / proba[:, None, :]
        return effect.mean(axis=0).T.ravel()

    flat = np.asarray(ref.params).ravel(order="F")
    jacobian = approx_fprime_cs(flat, average)
    se = np.sqrt(np.diag(jacobian @ np.asarray(ref.cov_params()) @ jacobian.T))
    me = res.marginal_effects(X, method=method)
    assert_rel(me.effects.ravel(), average(flat), 1e-8)
    assert_rel(me.effects_se.ravel(), se, 1e-6)


def test_marginal_effects_tables(anes96, fitted):
    X, _ = anes96
    res, _ = fitted
    me = res.marginal_effects(X)
    assert_allclose(me.effects.sum(axis=0), 0.0, atol=1e-15)
    frame = me.to_frame()
    assert list(frame.columns) == [
        "class",
        "term",
        "effect",
        "std_err",
        "z",
        "p_value",
        "ci_lower",
        "ci_upper",
    ]
    assert len(frame) == me.effects.size
    assert_allclose(frame["std_err"].to_numpy(), me.effects_se.ravel())
    text = me.summary()
    assert "Method: dydx    At: overall" in text
    assert text.count("class = ") == 7 and "selfLR" in text
    with pytest.raises(ValueError, match="at must be one of"):
        res.marginal_effects(X, at="all")
    with pytest.raises(ValueError, match="method must be one of"):
        res.marginal_effects(X, method="dy")
    with pytest.raises(ValueError, match="X has 4 features"):
        res.marginal_effects(np.asarray(X)[:, :4])


def age_groups(X):
    """Five-year age bands of anes96: 16 clusters."""
    return np.asarray(X["age"]).astype(int) // 5


def assert_cov_matches(res, ref_cov, rtol=1e-6):
    ref_cov = np.asarray(ref_cov)
    assert np.max(np.abs(res.cov_params - ref_cov)) <= rtol * np.abs(ref_cov).max()
    assert_rel(np.sqrt(np.diag(res.cov_params)), np.sqrt(np.diag(ref_cov)), rtol)


@pytest.mark.parametrize("two_way", [False, True])
def test_cluster_matches_statsmodels(anes96, two_way):
    X, y = anes96
    groups = age_groups(X)
    if two_way:
        # The 24 income bands. The two-way matrix is indefinite here, as it
        # can be, but its diagonal is positive.
        groups = np.column_stack([groups, X["income"]])
    clf = SoftmaxClassifier(C=np.inf, tol=1e-10).fit(X, y)
    res = clf.inference(X, y, cov_type="cluster", groups=groups)
    exog = sm.add_constant(np.asarray(X, dtype=float))
    ref = sm.MNLogit(np.asarray(y), exog).fit(
        method="newton",
        tol=1e-12,
        disp=0,
        cov_type="cluster",
        cov_kwds={"groups": groups},
    )
    assert res.cov_type == "cluster"
    assert_cov_matches(res, ref.cov_params())
    assert_rel(res.coef_pvalue, np.asarray(ref.pvalues).T[:, 1:], 1e-5)


def test_hc1_is_hc0_with_statsmodels_correction(anes96, fitted):
    # statsmodels' MNLogit gives HC0 for cov_type="HC1" (no correction);
    # its cov_white_simple applies the correction nobs / (nobs - k).
    from statsmodels.stats.sandwich_covariance import cov_white_simple

    X, y = anes96
    _, ref = fitted
    clf = SoftmaxClassifier(C=np.inf, tol=1e-10).fit(X, y)
    res = clf.inference(X, y, cov_type="HC1")
    assert_cov_matches(res, cov_white_simple(ref, use_correction=True))


@pytest.mark.slow
@pytest.mark.parametrize("cov_type", ["HC1", "cluster"])
def test_robust_covariance_counts_weights_as_rows(anes96, cov_type):
    X, y = anes96
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    weights = np.random.default_rng(0).integers(1, 4, size=len(y))
    groups = age_groups(anes96[0])
    kwargs = {"groups": groups} if cov_type == "cluster" else {}
    clf = SoftmaxClassifier(C=np.inf, tol=1e-10)
    res = clf.fit(X, y, sample_weight=weights).inference(
        X, y, sample_weight=weights, cov_type=cov_type, **kwargs
    )
    rows = np.repeat(np.arange(len(y)), weights)
    if cov_type == "cluster":
        kwargs = {"groups": groups[rows]}
    repeated = clf.fit(X[rows], y[rows]).inference(
        X[rows], y[rows], cov_type=cov_type, **kwargs
    )
    assert res.nobs == repeated.nobs == weights.sum()
    assert_cov_matches(res, repeated.cov_params)


def test_groups_go_with_cluster_only(anes96):
    X, y = anes96
    clf = SoftmaxClassifier(C=1.0).fit(X, y)
    with pytest.raises(ValueError, match="groups must be given with"):
        clf.inference(X, y, cov_type="cluster")
    with pytest.raises(ValueError, match="groups must be given with"):
        clf.inference(X, y, cov_type="HC0", groups=age_groups(X))
    with pytest.raises(ValueError, match="groups has 10 rows"):
        clf.inference(X, y, cov_type="cluster", groups=np.arange(10))
    with pytest.raises(ValueError, match="at least two clusters"):
        clf.inference(X, y, cov_type="cluster", groups=np.zeros(len(y)))


def test_wald_test_matches_statsmodels(fitted):
    res, ref = fitted
    n = res.cov_params.shape[0]
    rng = np.random.default_rng(0)
    R = rng.normal(size=(3, n))
    q = np.array([0.1, -0.2, 0.3])
    for rhs in [None, q]:
        test = res.wald_test(R, rhs)
        expected = ref.wald_test(
            R if rhs is None else (R, rhs), scalar=True, use_f=False
        )
        assert test.df == 3 == expected.df_denom
        assert test.statistic == pytest.approx(expected.statistic, rel=1e-6)
        assert test.pvalue == pytest.approx(expected.pvalue, rel=1e-5)
    with pytest.raises(ValueError, match="R must have 36 columns"):
        res.wald_test(np.ones((1, 35)))


def test_wald_test_terms_match_statsmodels(fitted):
    res, ref = fitted
    table = res.wald_test_terms()
    assert list(table["term"]) == [
        "intercept",
        "logpopul",
        "selfLR",
        "age",
        "educ",
        "income",
    ]
    for a in range(6):
        # Term a in each of the six contrasts; statsmodels orders its
        # parameters class by class too.
        R = np.zeros((6, 36))
        R[np.arange(6), 6 * np.arange(6) + a] = 1.0
        expected = ref.wald_test(R, scalar=True, use_f=False)
        row = table.iloc[a]
        assert row["df"] == 6
        assert row["statistic"] == pytest.approx(expected.statistic, rel=1e-6)
        assert row["p_value"] == pytest.approx(expected.pvalue, rel=1e-5, abs=1e-300)


def test_lr_test_matches_a_hand_computation(anes96, fitted):
    from scipy.stats import chi2

    X, y = anes96
    res, ref = fitted
    columns = ["logpopul", "selfLR", "age"]
    small = SoftmaxClassifier(C=np.inf, tol=1e-10).fit(X[columns], y)
    small = small.inference(X[columns], y)
    exog = sm.add_constant(np.asarray(X[columns], dtype=float))
    ref_small = sm.MNLogit(np.asarray(y), exog).fit(method="newton", tol=1e-12, disp=0)
    statistic = 2.0 * (ref.llf - ref_small.llf)
    for test in [res.lr_test(small), small.lr_test(res)]:
        assert test.df == 12
        assert test.statistic == pytest.approx(statistic, rel=1e-8)
        assert test.pvalue == pytest.approx(chi2.sf(statistic, 12), rel=1e-6)
    with pytest.raises(ValueError, match="same number of parameters"):
        res.lr_test(res)
    penalized = SoftmaxClassifier(C=1.0).fit(X, y).inference(X, y)
    with pytest.raises(ValueError, match="C=np.inf"):
        res.lr_test(penalized)


def test_predict_matches_a_finite_difference_delta_method(anes96, fitted):
    from scipy.special import expit, logit
    from scipy.stats import norm
    from statsmodels.tools.numdiff import approx_fprime

    X, _ = anes96
    res, ref = fitted
    rows = np.asarray(X, dtype=float)[::50]
    exog = sm.add_constant(rows, has_constant="add")
    shape = np.shape(ref.params)

    def log_odds(params):
        proba = ref.model.predict(params.reshape(shape, order="F"), exog)
        return logit(proba).ravel()

    flat = np.asarray(ref.params).ravel(order="F")
    jacobian = approx_fprime(flat, log_odds, centered=True)
    se = np.sqrt(np.diag(jacobian @ np.asarray(ref.cov_params()) @ jacobian.T))
    half = norm.ppf(0.95) * se
    proba, lower, upper = res.predict(rows, alpha=0.1)
    assert_rel(proba.ravel(), ref.model.predict(ref.params, exog).ravel(), 1e-8)
    assert_rel(lower.ravel(), expit(log_odds(flat) - half), 1e-6)
    assert_rel(upper.ravel(), expit(log_odds(flat) + half), 1e-6)
    assert np.all((0 < lower) & (lower < proba) & (proba < upper) & (upper < 1))


def _table_with_a_category():
    """Overlapping classes (no separation) with a numeric and a text column."""
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "age": rng.normal(40, 10, size=300),
            "region": rng.choice(["north", "south", "west"], size=300),
        }
    )
    y = rng.integers(0, 3, size=300)
    return X, y


@pytest.mark.parametrize("drop", ["first", None])
def test_inference_through_a_pipeline_names_the_encoded_columns(drop):
    from sklearn.compose import make_column_transformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from sksoftmax import inference

    X, y = _table_with_a_category()
    features = make_column_transformer(
        (OneHotEncoder(drop=drop), ["region"]), (StandardScaler(), ["age"])
    )
    model = make_pipeline(features, SoftmaxClassifier(C=np.inf, tol=1e-10)).fit(X, y)
    names = model[:-1].get_feature_names_out()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = inference(model, X, y)
    np.testing.assert_array_equal(results.feature_names, names)
    direct = model[-1].inference(model[:-1].transform(X), y)
    np.testing.assert_allclose(results.coef_se, direct.coef_se, equal_nan=True)
    collinear = any("collinear" in str(w.message) for w in caught)
    # Without drop the one-hot columns sum to the intercept's column of ones.
    assert collinear == (drop is None)
    assert np.isnan(results.coef_se).any() == (drop is None)
