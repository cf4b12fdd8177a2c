"""Guarantees on extreme input, separation, determinism and untouched inputs.

Bad input and round trips are checked in test_classifier.py, the properties
of the loss and the fit in test_properties.py.
"""

import copy
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy import sparse
from sklearn.datasets import load_iris, make_blobs, make_classification
from sklearn.linear_model import LogisticRegression

import sksoftmax
from sksoftmax import PerfectSeparationWarning, SoftmaxClassifier

from conftest import TIGHT

# Overflow in exp, 0 * inf and the like announce themselves as RuntimeWarnings.
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def assert_finite_predictions(clf, X):
    assert np.all(np.isfinite(clf.coef_)) and np.all(np.isfinite(clf.intercept_))
    proba = clf.predict_proba(X)
    assert np.all(np.isfinite(proba))
    rtol = 1e-5 if proba.dtype == np.float32 else 1e-12
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=rtol)
    assert np.all(np.isfinite(clf.predict_log_proba(X)))
    assert np.all(np.isfinite(clf.decision_function(X)))
    return proba


# --- extreme but valid input ---


@pytest.fixture(scope="module")
def iris_unpenalized():
    """Iris and the probabilities of scikit-learn's unpenalized fit.

    Iris's classes overlap, so the unpenalized optimum exists and its
    probabilities do not change when features are rescaled, or when constant
    or duplicated columns are added.
    """
    X, y = load_iris(return_X_y=True)
    reference = LogisticRegression(C=np.inf, **TIGHT).fit(X, y)
    return X, y, reference.predict_proba(X)


def _f32(X):
    return X.astype(np.float32)


@pytest.mark.parametrize(
    "transform, atol",
    [
        (lambda X: X * 1e12, 1e-5),
        (lambda X: X * 1e-12, 1e-5),
        (lambda X: _f32(X * 1e30), 1e-3),
        (lambda X: _f32(X * 1e-30), 1e-3),
        (lambda X: sparse.csr_matrix(_f32(X * 1e30)), 1e-3),
        (lambda X: _f32(X * np.array([1e30, 1.0, 1e-20, 1e10])), 1e-3),
        (lambda X: np.c_[X, np.full(len(X), 7.0)], 1e-5),
        (lambda X: np.c_[X, np.full(len(X), 1e12)], 1e-5),
        (lambda X: np.c_[X, np.zeros(len(X))], 1e-5),
        (lambda X: np.c_[X, X, X[:, :1]], 1e-5),
        (lambda X: X + [1e9, 0.0, 0.0, 0.0], 1e-4),
        # Sparse columns are not centred: the offset takes 9 of float64's 16
        # digits from the logits, and the fit ends, with a warning, where
        # the objective's rounding hides further gains. Over offsets of 1e7
        # to 1e10 in two columns the probabilities were up to 2.5e-4 off.
        (lambda X: sparse.csr_matrix(X + [1e9, 0.0, 0.0, 0.0]), 5e-4),
        (lambda X: sparse.csr_matrix(np.c_[X, np.full(len(X), 7.0)]), 1e-5),
    ],
    ids=[
        "x1e12",
        "x1e-12",
        "float32-x1e30",
        "float32-x1e-30",
        "sparse-float32-x1e30",
        "float32-mixed-scales",
        "constant-column",
        "constant-1e12-column",
        "zero-column",
        "duplicated-columns",
        "column-at-1e9",
        "sparse-column-at-1e9",
        "sparse-constant-column",
    ],
)
def test_extreme_features_give_the_same_unpenalized_probabilities(
    iris_unpenalized, transform, atol
):
    X, y, expected = iris_unpenalized
    X_extreme = transform(X)
    clf = SoftmaxClassifier(C=np.inf, **TIGHT).fit(X_extreme, y)
    proba = assert_finite_predictions(clf, X_extreme)
    np.testing.assert_allclose(proba, expected, atol=atol)


def _many_classes(n_classes):
    rng = np.random.default_rng(n_classes)
    X = rng.normal(size=(2 * n_classes, 3))
    return X, np.arange(2 * n_classes) % n_classes


@pytest.mark.parametrize(
    "make_data",
    [
        lambda: (load_iris(return_X_y=True)[0][[0, 50, 100]], np.array([0, 1, 2])),
        lambda: _many_classes(2),
        lambda: _many_classes(50),
        lambda: _many_classes(500),
        lambda: (np.random.default_rng(0).normal(size=(15, 300)), np.arange(15) % 3),
        lambda: (
            sparse.random(12, 400, density=0.05, random_state=0, format="csr"),
            np.arange(12) % 4,
        ),
        lambda: (np.ones((10, 3)), np.arange(10) % 2),
    ],
    ids=[
        "one-sample-per-class",
        "2-classes",
        "50-classes",
        "500-classes",
        "d>n",
        "sparse-d>n",
        "identical-rows",
    ],
)
@pytest.mark.parametrize("C", [1.0, 1e6])
def test_small_or_wide_problems_stay_finite(make_data, C):
    X, y = make_data()
    clf = SoftmaxClassifier(C=C).fit(X, y)
    proba = assert_finite_predictions(clf, X)
    assert proba.shape == (X.shape[0], np.unique(y).shape[0])


def test_float32_fit_on_large_values_predicts_in_float32():
    X, y = load_iris(return_X_y=True)
    X32 = _f32(X * 1e30)
    clf = SoftmaxClassifier().fit(X32, y)
    assert clf.coef_.dtype == np.float32
    assert assert_finite_predictions(clf, X32).dtype == np.float32
    assert clf.score(X32, y) > 0.9


# --- separation ---


def _separable_data():
    three_blobs = make_blobs(
        n_samples=60, centers=[[-5, 0], [5, 0], [0, 8]], cluster_std=1.0, random_state=0
    )
    iris_X, iris_y = load_iris(return_X_y=True)
    wide = (np.random.default_rng(1).normal(size=(20, 30)), np.arange(20) % 3)
    return {
        "blobs": three_blobs,
        "iris-setosa-vs-versicolor": (iris_X[:100], iris_y[:100]),
        "sparse-float32": (sparse.csr_matrix(_f32(iris_X[:100])), iris_y[:100]),
        "one-sample-per-class": (iris_X[[0, 50, 100]], iris_y[[0, 50, 100]]),
        "d>n": wide,
    }


@pytest.mark.parametrize("name", sorted(_separable_data()))
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_unpenalized_fit_on_separable_data_warns(name, fit_intercept):
    X, y = _separable_data()[name]
    if not fit_intercept:
        ones = np.ones((X.shape[0], 1), dtype=X.dtype)
        if sparse.issparse(X):
            X = sparse.hstack([X, ones], format="csr")
        else:
            X = np.c_[X, ones]
    clf = SoftmaxClassifier(C=np.inf, fit_intercept=fit_intercept)
    with pytest.warns(PerfectSeparationWarning) as record:
        clf.fit(X, y)
    message = str(record[0].message)
    assert "maximum-likelihood estimate does not exist" in message
    assert "finite C" in message
    # Points at the caller, not into the package.
    assert record[0].filename == __file__
    assert_finite_predictions(clf, X)
    np.testing.assert_array_equal(clf.predict(X), y)


def test_separation_warning_is_a_public_user_warning():
    assert issubclass(sksoftmax.PerfectSeparationWarning, UserWarning)
    assert "PerfectSeparationWarning" in sksoftmax.__all__


@pytest.mark.parametrize("C", [np.inf, 1.0])
def test_no_separation_warning_on_overlapping_classes(C):
    X, y = load_iris(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        SoftmaxClassifier(C=C).fit(X, y)


def test_no_separation_warning_with_a_finite_C():
    X, y = _separable_data()["blobs"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        SoftmaxClassifier(C=1e4).fit(X, y)


def test_zero_weight_samples_do_not_count_against_separation():
    X, y = _separable_data()["blobs"]
    # Mislabelled copies of two points make the classes overlap...
    X_more, y_more = np.r_[X, X[:2]], np.r_[y, (y[:2] + 1) % 3]
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        SoftmaxClassifier(C=np.inf).fit(X_more, y_more)
    # ...unless they weigh nothing, when the objective is that of the
    # separable data.
    weights = np.r_[np.ones(len(y)), 0.0, 0.0]
    with pytest.warns(PerfectSeparationWarning):
        SoftmaxClassifier(C=np.inf).fit(X_more, y_more, sample_weight=weights)


def test_separation_is_detected_on_random_separable_problems():
    # Labels from a random linear model, a thin band around its decision
    # boundaries removed: separable by construction, margins from thin to
    # wide, features on scales from 1e-3 to 1e3.
    rng = np.random.default_rng(0)
    for _ in range(30):
        n, d, k = rng.integers(5, 200), rng.integers(1, 6), rng.integers(2, 5)
        X = rng.normal(size=(n, d)) * rng.choice([1e-3, 1.0, 1e3], size=d)
        logits = X @ rng.normal(size=(d, k)) + rng.normal(size=k)
        top_two = np.sort(logits, axis=1)[:, -2:]
        keep = top_two[:, 1] - top_two[:, 0] > rng.choice([1e-3, 0.1, 1.0])
        X, y = X[keep], logits[keep].argmax(axis=1)
        if np.unique(y).shape[0] < 2:
            continue
        with pytest.warns(PerfectSeparationWarning):
            SoftmaxClassifier(C=np.inf).fit(X, y)


# --- determinism ---


def _jobs():
    jobs = []
    for seed, C in enumerate([0.1, 1.0, 10.0, np.inf]):
        X, y = make_classification(
            n_samples=1500,
            n_features=40,
            n_informative=10,
            n_classes=4,
            flip_y=0.2,
            random_state=seed,
        )
        jobs.append((X, y, C))
    return jobs


def _fit(job):
    X, y, C = job
    clf = SoftmaxClassifier(C=C).fit(X, y)
    return clf.coef_, clf.intercept_


def test_same_input_gives_bitwise_identical_coefficients():
    for job in _jobs()[:2]:
        first, second = _fit(job), _fit(job)
        np.testing.assert_array_equal(first[0], second[0])
        np.testing.assert_array_equal(first[1], second[1])


def test_concurrent_fits_equal_serial_fits():
    jobs = _jobs()
    serial = [_fit(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(_fit, jobs + jobs))
    for (coef, intercept), (coef_t, intercept_t) in zip(
        serial + serial, threaded, strict=True
    ):
        np.testing.assert_array_equal(coef_t, coef)
        np.testing.assert_array_equal(intercept_t, intercept)


# --- inputs are never modified ---


def _snapshot(value):
    if sparse.issparse(value):
        return value.copy()
    return copy.deepcopy(value)


def _assert_unchanged(before, after):
    if sparse.issparse(before):
        for part in ["data", "indices", "indptr"]:
            np.testing.assert_array_equal(getattr(after, part), getattr(before, part))
    elif isinstance(before, dict):
        assert after == before
    else:
        np.testing.assert_array_equal(after, before)
        assert after.dtype == before.dtype


@pytest.mark.parametrize(
    "make_X",
    [
        lambda X: X,
        lambda X: np.asfortranarray(X),
        lambda X: X.astype(np.float32),
        lambda X: sparse.csr_matrix(X),
        lambda X: sparse.csc_matrix(X.astype(np.float32)),
    ],
    ids=["float64", "fortran", "float32", "csr", "csc-float32"],
)
@pytest.mark.parametrize("C", [1.0, np.inf])
def test_inputs_are_not_modified(make_X, C):
    X, y = load_iris(return_X_y=True)
    X = make_X(X)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, size=len(y))
    class_weight = {"setosa": 2.0, "versicolor": 1.0, "virginica": 0.5}
    inputs = [X, labels, sample_weight, class_weight]
    before = [_snapshot(value) for value in inputs]

    clf = SoftmaxClassifier(C=C, class_weight=class_weight)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        clf.fit(X, labels, sample_weight=sample_weight)
    for method in [
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
    ]:
        getattr(clf, method)(X)
    clf.score(X, labels, sample_weight=sample_weight)

    for value_before, value in zip(before, inputs, strict=True):
        _assert_unchanged(value_before, value)
    assert clf.class_weight is class_weight
