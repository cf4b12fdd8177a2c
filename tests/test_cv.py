"""softmax_path and SoftmaxClassifierCV against scikit-learn's own searches."""

import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import accuracy_score, make_scorer
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight

from sksoftmax import SoftmaxClassifier, SoftmaxClassifierCV, softmax_path

from _reference import symmetric_from_sklearn


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def test_path_matches_logistic_regression_at_each_C(wine):
    X, y = wine
    Cs = [1.0, 0.01, 0.1]
    coefs, intercepts, n_iter = softmax_path(X, y, Cs, tol=1e-9)
    assert coefs.shape == (3, 3, X.shape[1]) and intercepts.shape == (3, 3)
    assert np.all(n_iter >= 1)
    for C, coef, intercept in zip(Cs, coefs, intercepts, strict=True):
        lr = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(X, y)
        ref_coef, ref_intercept = symmetric_from_sklearn(lr)
        np.testing.assert_allclose(coef, ref_coef, atol=1e-5)
        np.testing.assert_allclose(
            intercept - intercept.mean(),
            ref_intercept - ref_intercept.mean(),
            atol=1e-5,
        )


def test_path_warm_starts_save_iterations(wine):
    X, y = wine
    Cs = np.logspace(-2, 2, 8)
    _, _, n_iter = softmax_path(X, y, Cs, tol=1e-8)
    cold = [SoftmaxClassifier(C=C, tol=1e-8).fit(X, y).n_iter_ for C in Cs]
    assert n_iter.sum() < sum(cold)


def test_grid_starts_where_the_lasso_leaves_zero(wine):
    X, y = wine
    n, k = len(y), 3
    # Independently: the mean-loss gradient at W = 0, intercepts = log priors.
    Y = np.eye(k)[y]
    G = X.T @ (Y.mean(axis=0) - Y) / n
    strongest = 1.0 / (n * np.abs(G).max())
    clf = SoftmaxClassifierCV(Cs=5, l1_ratios=[1.0], cv=3, refit=False).fit(X, y)
    grid = clf.cv_results_["param_C"].data
    np.testing.assert_allclose(grid[0], strongest, rtol=1e-10)
    np.testing.assert_allclose(grid[-1], 1e4 * strongest, rtol=1e-10)
    coefs, _, _ = softmax_path(X, y, [0.98 * strongest, 1.1 * strongest], l1_ratio=1.0)
    assert np.all(coefs[0] == 0)
    assert np.any(coefs[1] != 0)


def _logistic_regression_cv(Cs, cv, scoring, **params):
    return LogisticRegressionCV(
        Cs=Cs,
        cv=cv,
        l1_ratios=(0.0,),
        scoring=scoring,
        tol=1e-8,
        max_iter=10_000,
        use_legacy_attributes=False,
        **params,
    )


@pytest.mark.parametrize("scoring", ["accuracy", "neg_log_loss"])
def test_same_choice_as_logistic_regression_cv(wine, scoring):
    X, y = wine
    Cs = np.logspace(-3, 1, 7)
    cv = StratifiedKFold(4, shuffle=True, random_state=0)
    ours = SoftmaxClassifierCV(Cs=Cs, cv=cv, scoring=scoring, tol=1e-8).fit(X, y)
    ref = _logistic_regression_cv(Cs, cv, scoring).fit(X, y)
    ref_best = ref.scores_.mean(axis=0).max()
    assert ours.best_score_ == pytest.approx(ref_best, abs=1e-3)
    if scoring == "neg_log_loss":  # no ties: the same C and the same refit
        assert ours.C_ == pytest.approx(ref.C_)
        np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-4)
    elif ours.C_ != pytest.approx(ref.C_):
        # Tied accuracies may pick another C of the same score.
        i = np.flatnonzero(np.isclose(Cs, ref.C_))[0]
        assert ours.cv_results_["mean_test_score"][i] == pytest.approx(
            ref_best, abs=1e-3
        )


def test_binary_grid_maps_to_twice_C():
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    Cs = np.logspace(-3, 1, 6)
    cv = StratifiedKFold(3)
    ours = SoftmaxClassifierCV(Cs=Cs, cv=cv, scoring="neg_log_loss", tol=1e-8)
    ours.fit(X, y)
    ref = _logistic_regression_cv(2 * Cs, cv, "neg_log_loss").fit(X, y)
    assert 2 * ours.C_ == pytest.approx(ref.C_)


def test_cv_results_match_grid_search(wine):
    X, y = wine
    Cs = [0.01, 0.1, 1.0]
    cv = KFold(3, shuffle=True, random_state=1)
    ours = SoftmaxClassifierCV(
        Cs=Cs, l1_ratios=[0.0, 0.5], cv=cv, scoring="neg_log_loss", tol=1e-9
    ).fit(X, y)
    grid = GridSearchCV(
        SoftmaxClassifier(tol=1e-9),
        {"C": Cs, "l1_ratio": [0.0, 0.5]},
        cv=cv,
        scoring="neg_log_loss",
    ).fit(X, y)
    ref = {(p["C"], p["l1_ratio"]): i for i, p in enumerate(grid.cv_results_["params"])}
    results = ours.cv_results_
    assert len(results["params"]) == 6
    for i, p in enumerate(results["params"]):
        j = ref[(p["C"], p["l1_ratio"])]
        for key in [
            "split0_test_score",
            "split2_test_score",
            "mean_test_score",
            "std_test_score",
        ]:
            assert results[key][i] == pytest.approx(grid.cv_results_[key][j], abs=1e-6)
        assert results["rank_test_score"][i] == grid.cv_results_["rank_test_score"][j]
    assert (ours.C_, ours.l1_ratio_) == (
        grid.best_params_["C"],
        grid.best_params_["l1_ratio"],
    )
    assert ours.best_score_ == pytest.approx(grid.best_score_, abs=1e-6)
    np.testing.assert_allclose(ours.coef_, grid.best_estimator_.coef_, atol=1e-5)


def test_weights_route_to_fits_and_scorer(wine):
    X, y = wine
    rng = np.random.default_rng(0)
    sample_weight = rng.uniform(0.2, 3.0, size=len(y))
    Cs = [0.03, 0.3, 3.0]
    cv = KFold(3, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(accuracy_score).set_score_request(sample_weight=True)
        ours = SoftmaxClassifierCV(
            Cs=Cs, cv=cv, scoring=scorer, class_weight="balanced", tol=1e-9
        ).fit(X, y, sample_weight=sample_weight)
        # "balanced" is computed once on the whole data, as in
        # LogisticRegressionCV; GridSearchCV gets that dict.
        classes = np.unique(y)
        balanced = dict(
            zip(
                classes,
                compute_class_weight(
                    "balanced", classes=classes, y=y, sample_weight=sample_weight
                ),
                strict=True,
            )
        )
        grid = GridSearchCV(
            SoftmaxClassifier(class_weight=balanced, tol=1e-9).set_fit_request(
                sample_weight=True
            ),
            {"C": Cs},
            cv=cv,
            scoring=scorer,
        ).fit(X, y, sample_weight=sample_weight)
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"],
        grid.cv_results_["mean_test_score"],
        atol=1e-9,
    )
    np.testing.assert_allclose(ours.coef_, grid.best_estimator_.coef_, atol=1e-5)
    # Without routing, as LogisticRegressionCV: weights reach the scorer too.
    plain = SoftmaxClassifierCV(Cs=Cs, cv=cv, class_weight="balanced", tol=1e-9).fit(
        X, y, sample_weight=sample_weight
    )
    np.testing.assert_allclose(
        plain.cv_results_["mean_test_score"],
        grid.cv_results_["mean_test_score"],
        atol=1e-9,
    )


def test_no_refit_averages_the_fold_models(wine):
    X, y = wine
    cv = StratifiedKFold(3)
    clf = SoftmaxClassifierCV(Cs=[0.05, 0.5], cv=cv, refit=False, tol=1e-9).fit(X, y)
    fold_coefs = [
        SoftmaxClassifier(C=clf.C_, tol=1e-9).fit(X[train], y[train]).coef_
        for train, _ in cv.split(X, y)
    ]
    np.testing.assert_allclose(clf.coef_, np.mean(fold_coefs, axis=0), atol=1e-5)
    assert not hasattr(clf, "best_estimator_")
    assert clf.predict(X).shape == y.shape


def test_parallel_folds_agree(wine):
    X, y = wine
    serial = SoftmaxClassifierCV(Cs=4, cv=3).fit(X, y)
    parallel = SoftmaxClassifierCV(Cs=4, cv=3, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(
        serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"]
    )
    assert serial.C_ == parallel.C_


@pytest.mark.parametrize(
    "params, match",
    [
        ({"Cs": [0.1, -1.0]}, "Cs must be"),
        ({"Cs": []}, "Cs must be"),
        ({"l1_ratios": [0.5, 2.0]}, "l1_ratios must be"),
    ],
)
def test_bad_grids_are_named(wine, params, match):
    X, y = wine
    with pytest.raises(ValueError, match=match):
        SoftmaxClassifierCV(cv=2, **params).fit(X, y)
    if "Cs" in params:
        with pytest.raises(ValueError, match=match):
            softmax_path(X, y, params["Cs"])
