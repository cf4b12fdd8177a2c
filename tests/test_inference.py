"""Standard errors and tests of SoftmaxClassifier.inference.

statsmodels' MNLogit (Newton, tight tolerance) is the oracle without a
penalty; with one, finite differences of an independent contrast objective.
"""

import doctest
import runpy
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.testing import assert_allclose, assert_array_equal
from scipy import sparse
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError

from sksoftmax import SoftmaxClassifier, SoftmaxInferenceResults

from _reference import contrast_gradient, contrast_objective, objective


@pytest.fixture(scope="module")
def anes96():
    data = sm.datasets.anes96.load_pandas()
    return data.exog, data.endog


def synthetic(n_classes=4, n_samples=400, random_state=0):
    X, y = make_classification(
        n_samples=n_samples,
        n_features=5,
        n_informative=4,
        n_redundant=0,
        n_classes=n_classes,
        flip_y=0.1,
        random_state=random_state,
    )
    # Unscaled columns, as real data come.
    return X * [1.0, 10.0, 0.1, 1.0, 100.0] + [0.0, 50.0, 0.0, -3.0, 0.0], y


def central_difference(f, x, h=1e-5):
    """Derivative of f at x by central differences, one column per entry of x."""
    columns = []
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h
        columns.append((np.asarray(f(x + e)) - np.asarray(f(x - e))) / (2 * h))
    return np.stack(columns, axis=-1)


def mnlogit(X, y, cov_type="nonrobust", intercept=True):
    exog = np.asarray(X, dtype=float)
    if intercept:
        exog = np.column_stack([np.ones(len(exog)), exog])
    return sm.MNLogit(np.asarray(y), exog).fit(
        method="newton", tol=1e-12, maxiter=200, disp=0, cov_type=cov_type
    )


def as_rows(values, intercept=True):
    """statsmodels' (q, K - 1) parameter layout as (intercept, coef) rows."""
    values = np.asarray(values).T
    if intercept:
        return values[:, 0], values[:, 1:]
    return None, values


def assert_matches_mnlogit(res, ref, intercept=True, atol=1e-6, rtol_se=1e-5):
    ref_intercept, ref_coef = as_rows(ref.params, intercept)
    ref_intercept_se, ref_coef_se = as_rows(ref.bse, intercept)
    assert_allclose(res.coef, ref_coef, rtol=0, atol=atol)
    assert_allclose(res.coef_se, ref_coef_se, rtol=rtol_se)
    _, ref_z = as_rows(ref.tvalues, intercept)
    _, ref_p = as_rows(ref.pvalues, intercept)
    assert_allclose(res.coef_z[..., None], ref_z[..., None], rtol=1e-4, atol=1e-6)
    assert_allclose(res.coef_pvalue, ref_p, rtol=1e-3, atol=1e-10)
    if intercept:
        assert_allclose(res.intercept, ref_intercept, rtol=0, atol=atol)
        assert_allclose(res.intercept_se, ref_intercept_se, rtol=rtol_se)
    assert res.llf == pytest.approx(ref.llf, rel=1e-10)
    assert res.nobs == ref.nobs
    assert res.aic == pytest.approx(ref.aic, rel=1e-9)
    assert res.bic == pytest.approx(ref.bic, rel=1e-9)
    if intercept:
        assert res.df_model == ref.df_model
        # statsmodels fits its null model numerically; ours is closed-form.
        assert res.llnull == pytest.approx(ref.llnull, rel=1e-8)
        assert res.prsquared == pytest.approx(ref.prsquared, rel=1e-7)
        assert res.llr == pytest.approx(ref.llr, rel=1e-7)
        assert res.llr_pvalue == pytest.approx(ref.llr_pvalue, rel=1e-4)


def test_anes96_default_settings_match_statsmodels(anes96):
    X, y = anes96
    clf = SoftmaxClassifier(C=np.inf).fit(X, y)
    fitted_coef, fitted_intercept = clf.coef_.copy(), clf.intercept_.copy()
    res = clf.inference(X, y)
    # The issue asks for 1e-4 on coefficients and 1e-3 on standard errors;
    # at the polished optimum the agreement is far closer.
    assert_matches_mnlogit(res, mnlogit(X, y))
    assert_array_equal(res.classes, np.unique(y)[1:])
    assert res.reference_class == 0.0
    # The estimator is untouched; the results say how far they moved from it.
    assert_array_equal(clf.coef_, fitted_coef)
    assert_array_equal(clf.intercept_, fitted_intercept)
    moved = np.max(np.abs(res.coef - (fitted_coef[1:] - fitted_coef[0])))
    assert res.polish_shift >= moved
    assert res.polished == (res.n_newton_steps > 0) == (res.polish_shift > 0)


def test_inference_polishes_a_fit_stopped_early(anes96):
    X, y = anes96
    clf = SoftmaxClassifier(C=np.inf, tol=1e-2).fit(X, y)
    res = clf.inference(X, y)
    assert res.polished and res.n_newton_steps >= 1 and res.polish_shift > 1e-4
    assert_matches_mnlogit(res, mnlogit(X, y))
    assert f"{res.n_newton_steps} step" in res.summary()


def test_anes96_another_reference_class(anes96):
    X, y = anes96
    res = SoftmaxClassifier(C=np.inf).fit(X, y).inference(X, y, reference_class=3.0)
    # statsmodels takes the smallest label as reference.
    ref = mnlogit(X, np.where(y == 3.0, -1.0, y))
    assert_matches_mnlogit(res, ref)
    assert_array_equal(res.classes, [0.0, 1.0, 2.0, 4.0, 5.0, 6.0])
    assert res.reference_class == 3.0


@pytest.mark.parametrize("data", ["anes96", "synthetic"])
def test_hc0_matches_statsmodels(anes96, data):
    X, y = anes96 if data == "anes96" else synthetic()
    res = SoftmaxClassifier(C=np.inf).fit(X, y).inference(X, y, cov_type="HC0")
    ref = mnlogit(X, y, cov_type="HC0")
    assert res.cov_type == "HC0"
    assert_matches_mnlogit(res, ref)
    ref_cov = np.asarray(ref.cov_params())
    assert_allclose(
        res.cov_params, ref_cov, rtol=1e-5, atol=1e-7 * np.abs(ref_cov).max()
    )


@pytest.mark.parametrize("n_classes", [2, 4])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("sparse_input", [False, True])
def test_synthetic_matches_statsmodels(n_classes, fit_intercept, sparse_input):
    X, y = synthetic(n_classes)
    Xin = sparse.csr_matrix(X) if sparse_input else X
    clf = SoftmaxClassifier(C=np.inf, fit_intercept=fit_intercept).fit(Xin, y)
    res = clf.inference(Xin, y, alpha=0.1)
    ref = mnlogit(X, y, intercept=fit_intercept)
    assert_matches_mnlogit(res, ref, intercept=fit_intercept)
    assert_allclose(res.cov_params, ref.cov_params(), rtol=1e-5, atol=1e-12)
    coef_ci, intercept_ci = res.conf_int()
    ref_ci = ref.conf_int(alpha=0.1)
    if fit_intercept:
        assert_allclose(intercept_ci, ref_ci[:, 0], rtol=1e-5, atol=1e-6)
        assert_allclose(coef_ci, ref_ci[:, 1:], rtol=1e-5, atol=1e-6)
    else:
        assert_allclose(coef_ci, ref_ci, rtol=1e-5, atol=1e-6)
        assert_array_equal(res.intercept, 0.0)
        assert np.all(np.isnan(res.intercept_se))
        # The null model nested in one without intercepts: uniform classes.
        # (statsmodels always uses an intercept-only null model.)
        assert res.llnull == pytest.approx(-len(y) * np.log(n_classes))
        assert res.df_model == (n_classes - 1) * X.shape[1]


@pytest.mark.parametrize("C", [np.inf, 0.5])
@pytest.mark.parametrize("cov_type", ["nonrobust", "HC0"])
def test_sample_weight_counts_like_duplicated_rows(C, cov_type):
    X, y = synthetic(3, n_samples=150)
    weights = np.random.default_rng(0).integers(0, 4, size=len(y))
    rows = np.repeat(np.arange(len(y)), weights)
    weighted = (
        SoftmaxClassifier(C=C)
        .fit(X, y, sample_weight=weights)
        .inference(X, y, sample_weight=weights, cov_type=cov_type)
    )
    duplicated = (
        SoftmaxClassifier(C=C)
        .fit(X[rows], y[rows])
        .inference(X[rows], y[rows], cov_type=cov_type)
    )
    for name in ["coef", "intercept", "coef_se", "intercept_se", "cov_params"]:
        assert_allclose(getattr(weighted, name), getattr(duplicated, name), rtol=1e-6)
    for name in ["llf", "llnull", "aic", "bic", "prsquared", "nobs"]:
        assert getattr(weighted, name) == pytest.approx(
            getattr(duplicated, name), rel=1e-9
        )
    assert weighted.nobs == weights.sum()


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_penalized_covariance_is_inverse_hessian_of_contrast_objective(fit_intercept):
    X, y = synthetic(4, n_samples=120)
    X = X / X.std(axis=0)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, size=len(y))
    C = 0.3
    clf = SoftmaxClassifier(C=C, fit_intercept=fit_intercept).fit(
        X, y, sample_weight=sw
    )
    res = clf.inference(X, y, sample_weight=sw)
    q = X.shape[1] + fit_intercept
    args = (X, y, sw, C, 0, 4, fit_intercept)

    def value(flat):
        return contrast_objective(flat.reshape(3, q), *args)

    def gradient(flat):
        return contrast_gradient(flat.reshape(3, q), *args).ravel()

    theta = np.column_stack([res.intercept, res.coef]) if fit_intercept else res.coef
    theta = theta.ravel()
    assert_allclose(
        gradient(theta), central_difference(value, theta), rtol=1e-6, atol=1e-6
    )
    hessian = central_difference(gradient, theta)
    assert_allclose(res.cov_params, np.linalg.inv(hessian), rtol=1e-6)
    # The reported estimates minimize this objective: the Newton step from
    # them is a negligible fraction of a standard error.
    se = np.sqrt(np.diag(res.cov_params))
    assert np.max(np.abs(res.cov_params @ gradient(theta)) / se) < 1e-5
    # At the fitted coefficients, this objective is the estimator's own.
    fitted = (
        np.column_stack([clf.intercept_, clf.coef_]) if fit_intercept else clf.coef_
    )
    fitted = (fitted[1:] - fitted[0]).ravel()
    assert value(fitted) == pytest.approx(
        sw.sum() * objective(X, y, clf.coef_, clf.intercept_, sw, C), rel=1e-12
    )


def test_penalized_results_do_not_depend_on_the_reference_class():
    X, y = synthetic(3, n_samples=200)
    clf = SoftmaxClassifier(C=0.2).fit(X, y)
    first = clf.inference(X, y, reference_class=0)
    last = clf.inference(X, y, reference_class=2)
    # coef_1 - coef_2 from both: its estimate and its variance must agree.
    assert_allclose(last.coef[1], first.coef[0] - first.coef[1], atol=1e-8)
    q = X.shape[1] + 1
    cov = first.cov_params
    one, two = np.arange(q), q + np.arange(q)
    var_diff = np.diag(
        cov[np.ix_(one, one)] + cov[np.ix_(two, two)] - 2 * cov[np.ix_(one, two)]
    )
    assert_allclose(
        np.concatenate([[last.intercept_se[1]], last.coef_se[1]]) ** 2,
        var_diff,
        rtol=1e-8,
    )
    assert last.llf == pytest.approx(first.llf, rel=1e-12)
    assert first.C == 0.2 and "Laplace" in first.summary()


def test_collinear_columns_warn_and_give_nan_only_where_undefined():
    X, y = synthetic(3)
    Xc = np.column_stack([X, X[:, 0] + 2 * X[:, 1]])
    clf = SoftmaxClassifier(C=np.inf).fit(Xc, y)
    with pytest.warns(UserWarning, match=r"x0, x1, x5 .*collinear"):
        res = clf.inference(Xc, y)
    undefined = np.isin(np.arange(6), [0, 1, 5])
    assert np.all(np.isnan(res.coef[:, undefined]))
    assert np.all(np.isnan(res.coef_se[:, undefined]))
    # The other parameters are those of the model without the dependent column.
    ref = mnlogit(X, y)
    ref_intercept, ref_coef = as_rows(ref.params)
    ref_intercept_se, ref_coef_se = as_rows(ref.bse)
    assert_allclose(res.coef[:, ~undefined], ref_coef[:, 2:], atol=1e-6)
    assert_allclose(res.coef_se[:, ~undefined], ref_coef_se[:, 2:], rtol=1e-5)
    assert_allclose(res.intercept, ref_intercept, atol=1e-6)
    assert_allclose(res.intercept_se, ref_intercept_se, rtol=1e-5)
    assert res.llf == pytest.approx(ref.llf, rel=1e-10)
    assert res.df_model == ref.df_model


def test_complete_separation_warns_and_reports_the_limit():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = rng.integers(0, 2, size=200)
    y[X[:, 0] > 1.0] = 2
    clf = SoftmaxClassifier(C=np.inf).fit(X, y)
    with pytest.warns(UserWarning, match="separated"):
        res = clf.inference(X, y)
    # Class 2 is perfectly predicted: none of its contrasts has a finite MLE.
    assert np.all(np.isnan(res.coef[1])) and np.isnan(res.intercept[1])
    assert np.all(np.isnan(res.coef_se[1]))
    # In the limit, classes 0 and 1 follow a binary logit on their own rows.
    rows = y < 2
    ref = sm.Logit(y[rows], sm.add_constant(X[rows])).fit(method="newton", disp=0)
    assert_allclose(res.intercept[0], ref.params[0], atol=1e-6)
    assert_allclose(res.coef[0], ref.params[1:], atol=1e-6)
    assert_allclose(res.coef_se[0], ref.bse[1:], rtol=1e-5)
    assert res.llf == pytest.approx(ref.llf, rel=1e-8)


def test_quasi_separation_leaves_only_the_separating_coefficient_undefined():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    X[:30, 0] = 0.0
    y = rng.integers(0, 2, size=300)
    y[X[:, 0] > 0] = 2
    y[:10] = 2
    clf = SoftmaxClassifier(C=np.inf).fit(X, y)
    with pytest.warns(UserWarning, match="separated"):
        res = clf.inference(X, y)
    expected = np.zeros((2, 3), dtype=bool)
    expected[1, 0] = True
    assert_array_equal(np.isnan(res.coef_se), expected)
    assert np.all(np.isfinite(res.intercept_se))


def test_penalized_fit_of_collinear_separated_data_is_regular():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    X = np.column_stack([X, X[:, 0]])
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 1)
    clf = SoftmaxClassifier(C=1.0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = clf.inference(X, y)
    assert np.all(np.isfinite(res.coef_se)) and np.all(np.isfinite(res.coef_pvalue))


def test_bad_input():
    X, y = synthetic(3)
    with pytest.raises(NotFittedError):
        SoftmaxClassifier().inference(X, y)
    clf = SoftmaxClassifier().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.inference(X[:, :4], y)
    with pytest.raises(ValueError, match=r"labels \[7\]"):
        clf.inference(X, np.where(y == 0, 7, y))
    with pytest.raises(ValueError, match="reference_class=5"):
        clf.inference(X, y, reference_class=5)
    with pytest.raises(ValueError, match="cov_type"):
        clf.inference(X, y, cov_type="HC3")
    with pytest.raises(ValueError, match="alpha"):
        clf.inference(X, y, alpha=1.5)
    with pytest.raises(ValueError, match=r"no samples of the class\(es\) \[1\]"):
        clf.inference(X[y != 1], y[y != 1])


def test_summary_and_frame(anes96):
    X, y = anes96
    res = SoftmaxClassifier(C=np.inf).fit(X, y).inference(X, y, reference_class=6.0)
    assert isinstance(res, SoftmaxInferenceResults)
    text = res.summary()
    for name in [
        "Reference class: 6.0",
        "class = 0.0",
        "selfLR",
        "income",
        "intercept",
        "[0.025",
        "0.975]",
        "Pseudo R-squ.",
    ]:
        assert name in text
    assert "[0.05" in res.summary(alpha=0.1)
    frame = res.to_frame()
    assert list(frame.columns) == [
        "class",
        "term",
        "coef",
        "std_err",
        "z",
        "p_value",
        "ci_lower",
        "ci_upper",
    ]
    assert len(frame) == 6 * 6
    first = frame[frame["class"] == 0.0].set_index("term")
    assert_allclose(first.loc[list(X.columns), "coef"], res.coef[0])
    assert_allclose(first.loc["intercept", "std_err"], res.intercept_se[0])
    coef_ci, _ = res.conf_int()
    assert_allclose(first.loc[list(X.columns), "ci_upper"], coef_ci[0, :, 1])
    plain = SoftmaxClassifier(C=np.inf).fit(X.to_numpy(), y).inference(X.to_numpy(), y)
    assert "x4" in plain.summary()


def test_to_frame_without_pandas(monkeypatch):
    X, y = synthetic(3, n_samples=100)
    res = SoftmaxClassifier().fit(X, y).inference(X, y)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="to_frame requires pandas"):
        res.to_frame()
    assert "class = 1" in res.summary()


ROOT = Path(__file__).resolve().parents[1]


def test_user_guide_examples():
    failures, _ = doctest.testfile(
        str(ROOT / "docs" / "inference.rst"),
        module_relative=False,
        optionflags=doctest.ELLIPSIS,
        verbose=False,
    )
    assert failures == 0


def test_gallery_example_runs(monkeypatch):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda: None)
    namespace = runpy.run_path(str(ROOT / "examples" / "plot_coefficients_ci.py"))
    assert len(namespace["fig"].axes) == 2
    plt.close("all")


def test_inference_refuses_an_l1_penalty():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    clf = SoftmaxClassifier(l1_ratio=0.5).fit(X, y)
    with pytest.raises(ValueError, match="l1_ratio=0.5 has no Hessian"):
        clf.inference(X, y)
