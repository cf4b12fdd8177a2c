"""SoftmaxClassifierCV on awkward folds, ported from LogisticRegressionCV's tests.

scikit-learn's LogisticRegressionCV is the reference: missing classes in
training folds, class and sample weights, routing, refit=False, scoring
strings and the choice of the grid.
"""

import re
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.exceptions import FitFailedWarning
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.metrics import make_scorer
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxClassifier, SoftmaxClassifierCV

CS = [1e-4, 1e-2, 1.0, 100.0]


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


def _lrcv(**kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LogisticRegressionCV(l1_ratios=(0.0,), max_iter=10000, **kwargs)


# --- classes missing from training folds ---


@pytest.mark.parametrize("scoring", ["neg_brier_score", "neg_log_loss", "accuracy"])
def test_folds_missing_a_class_choose_what_logistic_regression_cv_chooses(
    iris, scoring
):
    X, y = iris
    cv = KFold(3)  # unshuffled: every training fold lacks one class
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = SoftmaxClassifierCV(Cs=CS, cv=cv, scoring=scoring).fit(X, y)
    theirs = _lrcv(Cs=CS, cv=cv, scoring=scoring).fit(X, y)
    assert ours.C_ == pytest.approx(float(np.ravel(theirs.C_)[0]))
    # Each held-out fold is one class the training fold never saw: the fold
    # models give it probability 0, the worst Brier score and accuracy.
    if scoring == "accuracy":
        np.testing.assert_array_equal(ours.cv_results_["mean_test_score"], 0.0)


def test_fold_scores_have_a_column_for_every_class(iris):
    X, y = iris
    cv = KFold(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = SoftmaxClassifierCV(Cs=[1.0], cv=cv, scoring="neg_brier_score").fit(X, y)
    # Fold k holds out class k, which its training fold never saw: the fold
    # model gives it probability 0, so each held-out sample scores
    # 1 + sum of the squared probabilities of the two classes it did see.
    for k, (train, test) in enumerate(cv.split(X)):
        proba = SoftmaxClassifier(C=1.0).fit(X[train], y[train]).predict_proba(X[test])
        expected = -np.mean(1.0 + np.sum(proba**2, axis=1))
        assert ours.cv_results_[f"split{k}_test_score"][0] == pytest.approx(
            expected, rel=1e-4
        )


def test_a_class_with_one_member_scores_with_log_loss():
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = y.copy()
    y[0] = 3  # one sample of a fourth class: absent from four training folds
    ours = SoftmaxClassifierCV(Cs=[0.1, 1.0], cv=KFold(5), scoring="neg_log_loss")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours.fit(X, y)
    assert np.all(np.isfinite(ours.cv_results_["mean_test_score"]))
    assert ours.coef_.shape == (4, X.shape[1])


def test_a_training_fold_with_one_class_predicts_it(iris):
    X, y = iris
    X, y = X[:60], y[:60]  # the last fold trains on setosa alone
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = SoftmaxClassifierCV(Cs=[0.1, 1.0], cv=KFold(3)).fit(X, y)
    theirs = _lrcv(Cs=[0.1, 1.0], cv=KFold(3), scoring="accuracy").fit(X, y)
    # Fold 0 holds out rows 0-19 (setosa) and trains on 20-59; fold 2 holds
    # out 40-59 and trains on 0-39, setosa only: it predicts setosa for all.
    held_out = y[40:60]
    assert ours.cv_results_["split2_test_score"][0] == pytest.approx(
        np.mean(held_out == 0)
    )
    assert ours.C_ == pytest.approx(float(np.ravel(theirs.C_)[0]))


def test_refit_false_aligns_rows_to_classes(iris):
    X, y = iris
    cv = KFold(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = SoftmaxClassifierCV(Cs=[1.0], cv=cv, refit=False, tol=1e-10).fit(X, y)
    assert ours.coef_.shape == (3, X.shape[1])
    np.testing.assert_array_equal(ours.classes_, [0, 1, 2])
    assert isinstance(ours.n_iter_, int) and ours.n_iter_ > 0
    # Class k's row averages the fold fits that saw class k.
    rows = {k: [] for k in range(3)}
    for train, _ in cv.split(X):
        fit = SoftmaxClassifier(C=1.0, tol=1e-10).fit(X[train], y[train])
        for row, label in zip(fit.coef_, fit.classes_, strict=True):
            rows[label].append(row)
    for k in range(3):
        np.testing.assert_allclose(ours.coef_[k], np.mean(rows[k], axis=0), atol=1e-6)


# --- weights are validated once, on the whole data ---


def test_scalar_sample_weight_equals_equal_weights(iris):
    X, y = iris
    array = SoftmaxClassifierCV(Cs=CS, cv=3).fit(X, y, sample_weight=np.full(150, 2.0))
    scalar = SoftmaxClassifierCV(Cs=CS, cv=3).fit(X, y, sample_weight=2.0)
    np.testing.assert_allclose(
        scalar.cv_results_["mean_test_score"], array.cv_results_["mean_test_score"]
    )
    np.testing.assert_allclose(scalar.coef_, array.coef_)


def test_class_weight_dict_with_a_class_missing_from_a_fold(iris):
    X, y = iris
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = SoftmaxClassifierCV(
            Cs=CS, cv=KFold(3), class_weight={0: 1.0, 1: 2.0, 2: 0.5}
        ).fit(X, y)
    assert ours.coef_.shape == (3, 4)


def test_a_class_weighted_only_in_one_fold(iris):
    X, y = iris
    weights = np.ones(len(y))
    weights[(y == 2) & (np.arange(len(y)) >= 110)] = 0.0
    # Class 2's positive weights (rows 100-109) all lie in one held-out fold.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ours = SoftmaxClassifierCV(Cs=CS, cv=KFold(5, shuffle=True, random_state=0))
        ours.fit(X, y, sample_weight=weights)
    assert np.all(np.isfinite(ours.cv_results_["mean_test_score"]))


def test_balanced_class_weight_is_that_of_the_whole_data():
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    cv = KFold(3, shuffle=True, random_state=0)
    ours = SoftmaxClassifierCV(Cs=CS, cv=cv, class_weight="balanced").fit(X, y)
    theirs = _lrcv(Cs=CS, cv=cv, class_weight="balanced", scoring="accuracy")
    theirs.fit(X, y)
    assert ours.C_ == pytest.approx(float(np.ravel(theirs.C_)[0]))


# --- routing, verbosity, failures ---


def test_score_with_unrequested_weights_raises_as_logistic_regression_cv(iris):
    X, y = iris
    weights = np.ones(len(y))
    with sklearn.config_context(enable_metadata_routing=True):
        ours = SoftmaxClassifierCV(Cs=CS, cv=3).fit(X, y)
        theirs = _lrcv(Cs=CS, cv=3, scoring="accuracy").fit(X, y)
        with pytest.raises(Exception) as their_error:
            theirs.score(X, y, sample_weight=weights)
        with pytest.raises(type(their_error.value)):
            ours.score(X, y, sample_weight=weights)


def test_score_with_requested_weights_uses_them(iris):
    X, y = iris
    weights = np.where(y == 0, 10.0, 1.0)
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = make_scorer(
            lambda t, p, sample_weight=None: np.average(t == p, weights=sample_weight)
        ).set_score_request(sample_weight=True)
        ours = SoftmaxClassifierCV(Cs=[0.001], cv=3, scoring=scorer).fit(X, y)
        weighted = ours.score(X, y, sample_weight=weights)
    hits = ours.predict(X) == y
    assert weighted == pytest.approx(np.average(hits, weights=weights))


def test_verbose_one_prints_a_tagged_line_per_fit(iris, capsys):
    X, y = iris
    SoftmaxClassifierCV(Cs=[0.1, 1.0], l1_ratios=[0.0, 0.5], cv=3, verbose=1).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    fold = re.compile(
        r"^\[l1_ratio=0(\.5)? fold \d\] C=\S+: score \S+, \d+ iterations$"
    )
    # 2 l1_ratios x 3 folds x 2 C, then one line for the refit.
    assert len(lines) == 13
    assert all(fold.match(line) for line in lines[:12])
    assert re.match(r"^\[refit\] C=\S+, l1_ratio=\S+: \d+ iterations$", lines[12])


def test_verbose_two_tags_the_iterations(iris, capsys):
    X, y = iris
    SoftmaxClassifierCV(Cs=[1.0], cv=2, verbose=2).fit(X, y)
    lines = capsys.readouterr().out.strip().splitlines()
    iterations = [line for line in lines if "iter " in line]
    assert iterations
    # Every iteration line of a fold fit or of the refit says which it is.
    assert all(line.startswith(("[l1_ratio=0 fold", "iter ")) for line in iterations)
    assert any(line.startswith("[l1_ratio=0 fold") for line in iterations)


def _failing_scorer(estimator, X, y):
    if len(y) % 2:
        raise RuntimeError("odd fold")
    return float(np.mean(estimator.predict(X) == y))


def test_error_score_marks_a_failed_fold_and_warns(iris):
    X, y = iris
    # The second held-out fold has an odd number of rows: its scorer fails.
    cv = [
        (np.arange(50, 150), np.arange(0, 50)),
        (np.arange(0, 99), np.arange(99, 150)),
    ]
    with pytest.warns(FitFailedWarning, match="odd fold"):
        ours = SoftmaxClassifierCV(
            Cs=[1.0], cv=cv, scoring=_failing_scorer, error_score=-1.0
        ).fit(X, y)
    assert ours.cv_results_["split1_test_score"][0] == -1.0
    with pytest.warns(FitFailedWarning), pytest.raises(ValueError, match="finite mean"):
        SoftmaxClassifierCV(Cs=[1.0], cv=cv, scoring=_failing_scorer).fit(X, y)
    with pytest.raises(RuntimeError, match="odd fold"):
        SoftmaxClassifierCV(
            Cs=[1.0], cv=cv, scoring=_failing_scorer, error_score="raise"
        ).fit(X, y)


# --- the grid ---


def _standardized(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize(
    "loader",
    [
        pytest.param(load_digits, marks=pytest.mark.slow),
        load_wine,
        load_breast_cancer,
        load_iris,
    ],
)
def test_default_grid_scores_at_least_as_well_as_logistic_regression_cv(loader):
    X, y = _standardized(loader)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = SoftmaxClassifierCV().fit(X, y)
    theirs = _lrcv(scoring="accuracy").fit(X, y)
    C = float(np.ravel(theirs.C_)[0])
    their_score = cross_val_score(
        LogisticRegression(C=C, max_iter=10000), X, y, cv=StratifiedKFold(5)
    ).mean()
    assert ours.best_score_ >= their_score - 1e-12
    grid = ours.cv_results_["param_C"]
    at_end = ours.C_ in (grid.min(), grid.max())
    warned = any("of the grid" in str(w.message) for w in caught)
    assert warned == at_end


def test_chosen_C_at_the_end_of_an_explicit_grid_warns(iris):
    X, y = iris
    with pytest.warns(UserWarning, match="largest C of the grid.*larger values"):
        SoftmaxClassifierCV(Cs=[1e-5, 1e-4], cv=3).fit(X, y)
    with pytest.warns(UserWarning, match="smallest C of the grid.*smaller values"):
        SoftmaxClassifierCV(Cs=[1e-4, 1e3], cv=3, scoring="neg_log_loss").fit(
            X + np.random.default_rng(0).normal(size=X.shape) * 30, y
        )


@pytest.mark.slow
def test_integer_grid_is_extended_until_the_best_is_inside():
    X, y = _standardized(load_digits)
    ours = SoftmaxClassifierCV(Cs=6, cv=3).fit(X, y)
    grid = np.asarray(ours.cv_results_["param_C"])
    step = np.log10(grid[1] / grid[0])
    np.testing.assert_allclose(np.diff(np.log10(grid)), step)
    assert grid.size > 6
    assert grid.min() < ours.C_ < grid.max()
