"""Unusual-but-legal and plainly bad input at every entry point.

Each case asserts the exact behaviour: where the input is valid, the fit
equals the fit of the clean input (or an independent reference); where it is
not, the error type and a message that names the problem. Every call leaves
the caller's arrays bit-identical.
"""

import copy
import warnings

import numpy as np
import pytest
from scipy import sparse
from scipy.optimize import OptimizeResult
from sklearn.datasets import load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from sksoftmax import (
    PerfectSeparationWarning,
    SoftmaxClassifier,
    SoftmaxClassifierCV,
    softmax_path,
)
from sksoftmax._engines import make_engine
from sksoftmax._path import _advice
from sksoftmax._penalty import ElasticNet
from sksoftmax._separation import separates
from sksoftmax._solvers import (
    _MAX_POLISH_PRODUCTS,
    _MAX_POLISH_STEPS,
    SolverResult,
    _GapEstimate,
    _Preconditioned,
    _stop_reason,
)

from _reference import data_term, symmetric_from_sklearn
from conftest import TIGHT

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


def _snapshot(value):
    """A deep copy to compare against after a call."""
    return copy.deepcopy(value)


def assert_unchanged(before, after):
    """``after`` is bit-identical to ``before`` (arrays, sparse parts, dtype)."""
    if sparse.issparse(before):
        assert type(after) is type(before)
        for name in ("data", "indices", "indptr"):
            a, b = getattr(before, name), getattr(after, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), name
        return
    if isinstance(before, np.ndarray) and before.dtype.kind == "O":
        assert after.dtype == before.dtype and after.shape == before.shape
        for a, b in zip(before.ravel(), after.ravel(), strict=True):
            assert a is b or a == b or (a != a and b != b)
        return
    if isinstance(before, np.ndarray):
        assert after.dtype == before.dtype
        assert np.array_equal(before, after, equal_nan=before.dtype.kind in "fc")
        return
    assert before == after


@pytest.fixture(scope="module")
def iris64():
    X, y = load_iris(return_X_y=True)
    return X, y


# --- 1. sparse input with duplicate entries or unsorted indices ---


def _split_duplicates(X):
    """CSR equal to X with each entry of column 1 stored as two halves."""
    coo = sparse.coo_matrix(X)
    half = coo.col == 1
    rows = np.concatenate([coo.row, coo.row[half]])
    cols = np.concatenate([coo.col, coo.col[half]])
    data = np.concatenate([np.where(half, coo.data / 2, coo.data), coo.data[half] / 2])
    order = np.lexsort((cols, rows))
    indptr = np.searchsorted(rows[order], np.arange(X.shape[0] + 1))
    # From (data, indices, indptr) scipy keeps the duplicates as given.
    matrix = sparse.csr_matrix((data[order], cols[order], indptr), shape=X.shape)
    assert not matrix.has_canonical_format
    return matrix


def _unsorted(X):
    matrix = sparse.csr_matrix(X)
    for i in range(matrix.shape[0]):
        lo, hi = matrix.indptr[i], matrix.indptr[i + 1]
        matrix.indices[lo:hi] = matrix.indices[lo:hi][::-1]
        matrix.data[lo:hi] = matrix.data[lo:hi][::-1]
    matrix.has_sorted_indices = False
    return matrix


SPARSE_VARIANTS = {
    "duplicates": _split_duplicates,
    "unsorted": _unsorted,
    "duplicates-csc": lambda X: _split_duplicates(X).tocsc(copy=False),
}


def _fit_model(X, y):
    return SoftmaxClassifier(C=1.0, **TIGHT).fit(X, y)


def _coef_of_fit(X, y):
    clf = _fit_model(X, y)
    return np.column_stack([clf.coef_, clf.intercept_])


def _coef_of_path(X, y):
    coefs, intercepts, _ = softmax_path(X, y, [0.1, 1.0], **TIGHT)
    return np.concatenate([coefs.ravel(), intercepts.ravel()])


def _coef_of_cv(X, y):
    clf = SoftmaxClassifierCV(Cs=[0.1, 1.0], cv=3, **TIGHT).fit(X, y)
    return np.column_stack([clf.coef_, clf.intercept_])


def _inference(X, y):
    return (
        SoftmaxClassifier(C=1.0, **TIGHT)
        .fit(X.toarray() if sparse.issparse(X) else X, y)
        .inference(X, y)
        .coef_se
    )


ENTRY_POINTS = {
    "fit": _coef_of_fit,
    "path": _coef_of_path,
    "cv": _coef_of_cv,
    "inference": _inference,
}


@pytest.mark.parametrize("variant", list(SPARSE_VARIANTS))
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_noncanonical_sparse_equals_dense_and_is_untouched(iris64, variant, entry):
    X, y = iris64
    matrix = SPARSE_VARIANTS[variant](X)
    before = _snapshot(matrix)
    np.testing.assert_allclose(matrix.toarray(), X, rtol=1e-15)
    got = ENTRY_POINTS[entry](matrix, y)
    assert_unchanged(before, matrix)
    expected = ENTRY_POINTS[entry](X, y)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("variant", list(SPARSE_VARIANTS))
@pytest.mark.parametrize(
    "method", ["predict", "predict_proba", "predict_log_proba", "decision_function"]
)
def test_noncanonical_sparse_predictions_equal_dense(iris64, variant, method):
    X, y = iris64
    clf = SoftmaxClassifier().fit(X, y)
    matrix = SPARSE_VARIANTS[variant](X)
    before = _snapshot(matrix)
    got = getattr(clf, method)(matrix)
    assert_unchanged(before, matrix)
    np.testing.assert_allclose(got, getattr(clf, method)(X), rtol=1e-12, atol=1e-12)


# --- 2. warm_start with changed settings equals a cold fit ---


WARM_CHANGES = {
    "intercept off": ({}, {"fit_intercept": False}, None),
    "intercept on": ({"fit_intercept": False}, {"fit_intercept": True}, None),
    "C": ({"C": 0.01}, {"C": 10.0}, None),
    "l1_ratio": ({}, {"l1_ratio": 0.5}, None),
    "solver": ({"solver": "newton-cg"}, {"solver": "lbfgs"}, None),
    "class_weight": ({}, {"class_weight": "balanced"}, None),
    "other classes": ({}, {}, "relabel"),
    "fewer classes": ({}, {}, "drop"),
    "other width": ({}, {}, "widen"),
    "float32": ({}, {}, "float32"),
}


def _changed_data(X, y, how):
    if how == "relabel":
        return X, y + 10
    if how == "drop":
        keep = y != 2
        return X[keep], y[keep]
    if how == "widen":
        return np.hstack([X, X[:, :1] ** 2]), y
    if how == "float32":
        return X.astype(np.float32), y
    return X, y


@pytest.mark.parametrize("change", list(WARM_CHANGES))
def test_warm_start_with_changed_settings_equals_a_cold_fit(iris64, change):
    X, y = iris64
    first, second, data_change = WARM_CHANGES[change]
    settings = dict(C=1.0, tol=1e-9, max_iter=20000)
    warm = SoftmaxClassifier(warm_start=True, **{**settings, **first}).fit(X, y)
    warm.set_params(**second)
    X2, y2 = _changed_data(X, y, data_change)
    warm.fit(X2, y2)
    cold = SoftmaxClassifier(**{**settings, **first, **second}).fit(X2, y2)
    np.testing.assert_array_equal(warm.classes_, cold.classes_)
    atol = 1e-3 if data_change == "float32" else 1e-6
    np.testing.assert_allclose(warm.coef_, cold.coef_, atol=atol)
    np.testing.assert_allclose(warm.intercept_, cold.intercept_, atol=atol)
    if not warm.fit_intercept:
        assert np.all(warm.intercept_ == 0)


# --- 3. degenerate scales: a correct fit or a clear error, never NaN ---


def _penalty_dominated_reference(X, y, C, sample_weight):
    """``W = -grad_W f(0, b0) / lambda`` from the plain reference gradient."""
    K, d = 3, X.shape[1]
    priors = np.bincount(y, weights=sample_weight) / np.sum(sample_weight)
    b0 = np.log(priors) - np.log(priors).mean()
    params = np.concatenate([np.zeros(d * K), b0])
    # The reference normalizes weights; only their ratios matter there.
    _, grad, _, _ = data_term(
        X, y, K, sample_weight / sample_weight.max(), params, True
    )
    strength = 1.0 / (C * np.sum(sample_weight))
    return -grad[: d * K].reshape(d, K).T / strength


@pytest.mark.parametrize(
    "C, weight", [(1e-309, 1.0), (1e-300, 1.0), (1e-30, 1.0), (1.0, 1e-310)]
)
def test_overwhelming_penalty_gives_the_first_order_solution(iris64, C, weight):
    X, y = iris64
    sample_weight = np.full(len(y), weight)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SoftmaxClassifier(C=C).fit(X, y, sample_weight=sample_weight)
    expected = _penalty_dominated_reference(X, y, C, sample_weight)
    np.testing.assert_allclose(clf.coef_, expected, rtol=1e-10)
    np.testing.assert_allclose(clf.predict_proba(X), np.full((150, 3), 1 / 3))


def test_overwhelming_penalty_along_a_path_stays_finite(iris64):
    X, y = iris64
    Cs = [1e-309, 1e-200, 1.0]
    coefs, intercepts, _ = softmax_path(X, y, Cs)
    assert np.all(np.isfinite(coefs)) and np.all(np.isfinite(intercepts))
    np.testing.assert_allclose(
        coefs[2], SoftmaxClassifier(C=1.0).fit(X, y).coef_, atol=1e-3
    )


@pytest.mark.parametrize("scale", [1e-170, 1e-100, 1e100, 1e154, 1e200])
def test_unpenalized_fit_is_equivariant_to_any_feature_scale(iris64, scale):
    X, y = iris64
    reference = LogisticRegression(C=np.inf, **TIGHT).fit(X, y).predict_proba(X)
    with warnings.catch_warnings():
        # Beyond about 1e8 the raw gradient's rounding exceeds tol: warned.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = SoftmaxClassifier(C=np.inf, **TIGHT).fit(X * scale, y)
    assert np.all(np.isfinite(clf.coef_))
    np.testing.assert_allclose(clf.predict_proba(X * scale), reference, atol=1e-5)


def test_tiny_features_with_a_penalty_fit_the_intercept_model(iris64):
    X, y = iris64
    clf = SoftmaxClassifier(C=1.0).fit(X * 1e-170, y)
    assert np.all(np.isfinite(clf.coef_))
    np.testing.assert_allclose(clf.predict_proba(X * 1e-170), 1 / 3, rtol=1e-12)


def test_huge_features_warn_that_tol_is_out_of_reach(iris64):
    X, y = iris64
    with pytest.warns(ConvergenceWarning, match="float64 precision"):
        SoftmaxClassifier(C=np.inf).fit(X * 1e154, y)


@pytest.mark.parametrize("scale", [1e-39, 1e-37])
def test_float32_features_below_their_range_are_refused(iris64, scale):
    X, y = iris64
    X32 = (X * scale).astype(np.float32)
    before = _snapshot(X32)
    with pytest.raises(ValueError, match="float32 range.*float64"):
        SoftmaxClassifier(C=np.inf).fit(X32, y)
    assert_unchanged(before, X32)


@pytest.mark.parametrize("scale", [1e-20, 1e-30])
def test_float32_features_of_small_scale_fit(iris64, scale):
    X, y = iris64
    X32 = (X * scale).astype(np.float32)
    clf = SoftmaxClassifier(C=np.inf).fit(X32, y)
    assert clf.score(X32, y) > 0.95


# --- 4, 5. a fit is converged only when the documented criterion holds ---


def _min_norm_subgradient(clf, X, y):
    """The objective's minimum-norm subgradient, from the plain reference."""
    K, d = clf.coef_.shape[0], X.shape[1]
    params = np.concatenate([clf.coef_.T.ravel(), clf.intercept_]).astype(np.float64)
    _, grad, _, _ = data_term(X, y, K, np.ones(len(y)), params, True)
    strength = 1.0 / (clf.C * len(y))
    W = clf.coef_.T.astype(np.float64)
    gW = grad[: d * K].reshape(d, K) + (1 - clf.l1_ratio) * strength * W
    l1 = clf.l1_ratio * strength
    sub = np.where(
        W != 0, gW + l1 * np.sign(W), np.sign(gW) * np.maximum(np.abs(gW) - l1, 0)
    )
    return max(np.abs(sub).max(), np.abs(grad[d * K :]).max())


def _raw_wine():
    return load_wine(return_X_y=True)


def _scaled_wine():
    X, y = load_wine(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _iris():
    return load_iris(return_X_y=True)


@pytest.mark.parametrize("data", [_raw_wine, _scaled_wine, _iris])
@pytest.mark.parametrize("C, l1_ratio", [(1.0, 0.5), (0.1, 1.0), (10.0, 0.2)])
@pytest.mark.parametrize("tol", [1e-6, 1e-8])
def test_elastic_net_converged_means_below_tol(data, C, l1_ratio, tol):
    X, y = data()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = SoftmaxClassifier(C=C, l1_ratio=l1_ratio, tol=tol, max_iter=10000)
        clf.fit(X, y)
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    # Rounding of the reference's float64 gradient, well below tol.
    assert warned or _min_norm_subgradient(clf, X, y) <= tol * 1.01


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
@pytest.mark.parametrize("data", [_raw_wine, _scaled_wine])
def test_tight_tol_is_reached_not_just_warned_about(solver, data):
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = SoftmaxClassifier(solver=solver, tol=1e-8, max_iter=10000).fit(X, y)
    assert _min_norm_subgradient(clf, X, y) <= 1e-8 * 1.01


def test_raw_wine_elastic_net_matches_saga_support():
    X, y = load_wine(return_X_y=True)
    Xs = StandardScaler().fit_transform(X)
    ours = SoftmaxClassifier(C=1.0, l1_ratio=0.5, tol=1e-9, max_iter=20000).fit(Xs, y)
    saga = LogisticRegression(
        C=1.0, l1_ratio=0.5, solver="saga", tol=1e-12, max_iter=100000
    ).fit(Xs, y)
    coef, _ = symmetric_from_sklearn(saga)
    np.testing.assert_array_equal(ours.coef_ == 0, np.abs(coef) < 1e-8)
    np.testing.assert_allclose(ours.coef_, coef, atol=1e-5)


# --- 6. separation in inference ---


def test_inference_on_separated_classes_reports_nan_and_warns(iris64):
    X, y = iris64
    X, y = X[:52], y[:52]
    with pytest.warns(Warning):
        clf = SoftmaxClassifier(C=np.inf).fit(X, y)
    with pytest.warns(UserWarning, match="separated"):
        res = clf.inference(X, y)
    assert np.all(np.isnan(res.coef_se))


def test_inference_on_quasi_separated_classes_names_the_terms():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    y = np.where(X[:, 0] > 0.5, 2, rng.integers(0, 2, size=120))
    # Class 2 is separated from the others by x0 alone; 0 and 1 overlap.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = SoftmaxClassifier(C=np.inf, max_iter=5000).fit(X, y)
    with pytest.warns(UserWarning, match="separated.*class 2"):
        res = clf.inference(X, y, reference_class=0)
    assert np.isnan(res.coef[1, 0])
    assert np.all(np.isfinite(res.coef[0]))


def test_inference_on_overlapping_classes_does_not_warn():
    # Iris would not do: setosa is linearly separable from the others.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 3))
    y = rng.integers(0, 3, size=300)
    clf = SoftmaxClassifier(C=np.inf, **TIGHT).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = clf.inference(X, y)
    assert np.all(np.isfinite(res.coef_se))


def test_inference_with_an_absent_class_says_so(iris64):
    X, y = iris64
    clf = SoftmaxClassifier().fit(X, y)
    with pytest.raises(ValueError, match=r"no samples of the class\(es\) \[2\]"):
        clf.inference(X[y != 2], y[y != 2])


def _with_none(y):
    labels = y.astype(object)
    labels[y == 1] = None
    return labels


def _with_nan(y):
    labels = np.array(["a", "b", "c"], dtype=object)[y]
    labels[y == 1] = np.nan
    return labels


def _mixed(y):
    labels = y.astype(object)
    labels[y == 1] = "one"
    return labels


# --- 7. the Dask path checks what the in-memory path checks ---


def _dask_or_skip():
    da = pytest.importorskip("dask.array")
    return da


DASK_BAD = {
    "complex": (lambda X: X.astype(np.complex128), "Complex data not supported"),
    "no features": (lambda X: X[:, :0], "0 feature"),
    "no rows": (lambda X: X[:0], "0 sample"),
    "strings": (lambda X: np.where(X > 7, "x", X.astype(str)), "could not convert"),
}


@pytest.mark.parametrize("case", list(DASK_BAD))
def test_dask_refuses_what_memory_refuses(iris64, case):
    da = _dask_or_skip()
    X, y = iris64
    transform, match = DASK_BAD[case]
    bad = transform(X)
    with pytest.raises(ValueError, match=match):
        SoftmaxClassifier().fit(bad, y[: bad.shape[0]])
    chunks = (max(bad.shape[0], 1) // 2 or 1, max(bad.shape[1], 1))
    with pytest.raises(ValueError, match=match):
        SoftmaxClassifier().fit(
            da.from_array(bad, chunks=chunks), da.from_array(y[: bad.shape[0]])
        )


@pytest.mark.parametrize(
    "labels, match",
    [
        (lambda y: _with_none(y), "missing label"),
        (lambda y: _mixed(y), "mixes string and numeric"),
    ],
)
def test_dask_labels_get_the_in_memory_message(iris64, labels, match):
    da = _dask_or_skip()
    X, y = iris64
    bad = labels(y)
    with pytest.raises(ValueError, match=match):
        SoftmaxClassifier().fit(
            da.from_array(X, chunks=(50, 4)), da.from_array(bad, chunks=50)
        )


# --- 8. ONNX labels without an exact int64 ---


@pytest.mark.parametrize(
    "labels, ok",
    [
        (np.array([0, 2**63, 2**64 - 1], dtype=np.uint64), False),
        (np.array([0.0, 1.0, 2.0**62]), True),
        (np.array([3, 7, 9], dtype=np.uint64), True),
        (np.array([-1.0, 0.0, 2.0]), True),
    ],
)
def test_onnx_labels_convert_exactly_or_are_refused(iris64, labels, ok):
    pytest.importorskip("skl2onnx")
    pytest.importorskip("onnxruntime")
    from skl2onnx import to_onnx

    from sksoftmax import register_onnx_converter

    register_onnx_converter()
    X, y = iris64
    clf = SoftmaxClassifier().fit(X, labels[y])
    if not ok:
        with pytest.raises(ValueError, match="no exact int64 value"):
            to_onnx(clf, X[:1].astype(np.float32))
        return
    import onnxruntime as rt

    model = to_onnx(clf, X[:1].astype(np.float32))
    session = rt.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    got = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32)})[0]
    np.testing.assert_array_equal(got, clf.predict(X).astype(np.int64))


# --- 9. missing and mixed labels get a message that says so ---


def _pandas_na(y):
    pd = pytest.importorskip("pandas")
    values = pd.array(np.array(["a", "b", "c"])[y], dtype="string")
    values[5] = pd.NA
    return values


LABELS = {
    "None": (_with_none, "missing label"),
    "NaN": (_with_nan, "missing label"),
    "pd.NA": (_pandas_na, "missing label.*index 5"),
    "mixed": (_mixed, "mixes string and numeric.*index"),
}


def _labels_fit(X, y):
    SoftmaxClassifier().fit(X, y)


def _labels_path(X, y):
    softmax_path(X, y, [1.0])


def _labels_cv(X, y):
    SoftmaxClassifierCV(Cs=[1.0], cv=2).fit(X, y)


@pytest.mark.parametrize("case", list(LABELS))
@pytest.mark.parametrize("entry", [_labels_fit, _labels_path, _labels_cv])
def test_missing_or_mixed_labels_are_named(iris64, case, entry):
    X, y = iris64
    make, match = LABELS[case]
    labels = make(y)
    before = _snapshot(labels)
    with pytest.raises(ValueError, match=match):
        entry(X, labels)
    if isinstance(before, np.ndarray):
        assert_unchanged(before, labels)


# --- more of each kind: bad shapes, values and weights at every entry point ---


def _nan_X(X):
    X = X.copy()
    X[3, 2] = np.nan
    return X


def _inf_X(X):
    X = X.copy()
    X[0, 0] = np.inf
    return X


BAD_INPUT = {
    "NaN in X": (lambda X, y: (_nan_X(X), y, None), "NaN"),
    "inf in X": (lambda X, y: (_inf_X(X), y, None), "infinity"),
    "one class": (lambda X, y: (X, np.zeros_like(y), None), "at least 2 classes"),
    "one row": (lambda X, y: (X[:1], y[:1], None), "at least 2 classes|1 sample"),
    "no rows": (lambda X, y: (X[:0], y[:0], None), "0 sample"),
    "no features": (lambda X, y: (X[:, :0], y, None), "0 feature"),
    "3-d X": (lambda X, y: (X[:, :, None], y, None), "dim 3|3-dimensional|3 dim"),
    "y too short": (lambda X, y: (X, y[:-1], None), "inconsistent numbers"),
    "negative weight": (
        lambda X, y: (X, y, -np.ones(len(y))),
        "Negative values in data passed to `sample_weight`",
    ),
    "NaN weight": (
        lambda X, y: (X, y, np.where(np.arange(len(y)) == 4, np.nan, 1.0)),
        "NaN",
    ),
    "zero weights": (
        lambda X, y: (X, y, np.zeros(len(y))),
        "at least one non-zero",
    ),
    "class of zero weight": (
        lambda X, y: (X, y, (y != 2).astype(float)),
        "class 2 have zero total weight",
    ),
    "inf weights": (lambda X, y: (X, y, np.full(len(y), 1e308)), "infinity"),
    "continuous y": (lambda X, y: (X, y + 0.5 * np.arange(len(y)), None), "continuous"),
}


def _bad_fit(X, y, w):
    SoftmaxClassifier().fit(X, y, sample_weight=w)


def _bad_path(X, y, w):
    softmax_path(X, y, [1.0], sample_weight=w)


def _bad_cv(X, y, w):
    SoftmaxClassifierCV(Cs=[1.0], cv=2).fit(X, y, sample_weight=w)


@pytest.mark.parametrize("case", list(BAD_INPUT))
@pytest.mark.parametrize("entry", [_bad_fit, _bad_path, _bad_cv])
def test_bad_input_is_named_at_every_entry_point(iris64, case, entry):
    X, y = iris64
    make, match = BAD_INPUT[case]
    X, y, w = make(X, y)
    before = [_snapshot(v) for v in (X, y, w)]
    with pytest.raises(ValueError, match=match):
        entry(X, y, w)
    for value_before, value in zip(before, (X, y, w), strict=True):
        if value is not None:
            assert_unchanged(value_before, value)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"Cs": -1}, "Cs"),
        ({"Cs": [0.0, 1.0]}, "positive"),
        ({"l1_ratios": [1.5]}, "l1_ratios"),
        ({"cv": "five"}, "cv"),
        ({"solver": "saga"}, "solver"),
    ],
)
def test_bad_cv_parameters_fail_at_fit_not_before(iris64, params, match):
    from sklearn.base import is_classifier

    X, y = iris64
    clf = SoftmaxClassifierCV(**params)
    assert is_classifier(clf)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)


TWO_CLASSES = "1,2,x\n3,4,y\n5,6,x\n2,1,y\n"


@pytest.mark.parametrize(
    "rows, args, error",
    [
        ("1,2,x\n3,4,x\n5,6,x\n", ["--test-size", "0"], "single class"),
        (
            "1,2,x\n3,4,y\n5,6,x\n2,1,y\n",
            ["--test-size", "0", "--C", "1e-309"],
            "too small",
        ),
        ("1,2,x\n3,4,y\n5,6,x\n2,1,y\n", ["--test-size", "0", "--C", "1e-300"], None),
    ],
)
def test_command_line_fits_or_reports_without_a_traceback(
    tmp_path, capsys, rows, args, error
):
    pytest.importorskip("pandas")
    pytest.importorskip("skops")
    from sksoftmax._cli import main

    table = tmp_path / "data.csv"
    table.write_text("a,b,label\n" + rows)
    out = tmp_path / "model.skops"
    status = main(["fit", str(table), "--target", "label", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if error is not None:
        assert status == 1 and "error:" in err and error in err
        return
    assert status == 0
    import skops.io as sio

    model = sio.load(out, trusted=sio.get_untrusted_types(file=out))
    assert np.all(np.isfinite(model[-1].coef_))


def _results_quantities(X, y, weights):
    """Every quantity of the inference results that reads the caller's arrays."""
    res = SoftmaxClassifier(C=10.0, **TIGHT).fit(X, y).inference(X, y)
    quantities = [res.cov_params]
    for kwargs in [
        dict(dummy=True, count=True),
        dict(at={"x0": 5.0}, sample_weight=weights),
        dict(at="mean", method="eydx", dummy=True, sample_weight=weights),
    ]:
        me = res.marginal_effects(X, **kwargs)
        quantities += [me.effects, me.effects_se]
    quantities += list(res.predict(X[:7]))
    return quantities


@pytest.mark.parametrize("variant", [None, *SPARSE_VARIANTS])
def test_inference_results_leave_the_callers_arrays_untouched(iris64, variant):
    X, y = iris64
    # A binary and a count column, so that dummy and count effects are taken.
    X = np.column_stack([X[:, :2], (X[:, 2] > 4).astype(float), np.round(X[:, 3])])
    weights = np.random.default_rng(0).integers(1, 4, size=len(y)).astype(float)
    X_in = X if variant is None else SPARSE_VARIANTS[variant](X)
    before = [_snapshot(v) for v in (X_in, y, weights)]
    got = _results_quantities(X_in, y, weights)
    for value, snapshot in zip((X_in, y, weights), before, strict=True):
        assert_unchanged(snapshot, value)
    for a, b in zip(got, _results_quantities(X, y, weights), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("magnitude", [1e-300, 1e300])
def test_marginal_effects_at_extreme_feature_values_stay_finite(iris64, magnitude):
    X, y = iris64
    res = SoftmaxClassifier(C=10.0).fit(X, y).inference(X, y)
    # A point far out: the probabilities saturate, the effects vanish.
    me = res.marginal_effects(X, at={"x0": magnitude})
    assert np.all(np.isfinite(me.effects)) and np.all(np.isfinite(me.effects_se))


def test_a_tol_below_float32_resolution_warns_without_endless_newton_steps(
    monkeypatch,
):
    # The Newton steps after a stall solve on exact products to a residual
    # that float32 products never reach: they ran on to 4 n_params products
    # a step (at 100000 x 100 with 10 classes, 27 s instead of 0.3 s).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 60)).astype(np.float32)
    y = np.argmax(X @ rng.normal(size=(60, 5)) + rng.gumbel(size=(4000, 5)), axis=1)
    products = []
    hessp = _Preconditioned.hessp
    monkeypatch.setattr(
        _Preconditioned,
        "hessp",
        lambda self, *args: products.append(1) or hessp(self, *args),
    )
    with pytest.warns(ConvergenceWarning, match="float32 precision"):
        clf = SoftmaxClassifier(tol=1e-12).fit(X, y)
    assert clf.coef_.dtype == np.float32
    assert 0 < len(products) <= _MAX_POLISH_STEPS * _MAX_POLISH_PRODUCTS
    assert _MAX_POLISH_PRODUCTS < 4 * clf.coef_.size


@pytest.mark.parametrize(
    "dtype, offset, centred",
    [
        (np.float64, 1e9, True),
        (np.float64, 1e15, True),
        (np.float64, 3e15, False),
        (np.float32, 1e6, True),
        (np.float32, 1e7, False),
    ],
)
def test_a_column_is_centred_unless_its_spread_is_within_its_rounding(
    dtype, offset, centred
):
    # Unit noise on 1e9 is 4.5e6 units of float64 rounding (eps * rms), on
    # 1e15 4.5 and on 3e15 1.5; on 1e6 in float32 it is 8 units, on 1e7
    # 0.9, where centring loses more to the logits' rounding than the
    # feature brings. The old threshold, a fixed 1e-8 of the root mean
    # square, scaled the first two as they are and centred the last.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5000, 2))
    X[:, 0] += offset
    X = X.astype(dtype)
    engine = make_engine(X, np.arange(5000) % 3, 3, np.ones(5000), True)
    problem = _Preconditioned(engine, ElasticNet())
    assert (problem.mean[0] != 0.0) == centred
    assert problem.mean[1] != 0.0


@pytest.mark.parametrize(
    "scipy_message, reason",
    [
        # L-BFGS-B from scipy 1.15 on, then before.
        ("ABNORMAL: ", "line search found no acceptable step"),
        ("ABNORMAL_TERMINATION_IN_LNSRCH", "line search found no acceptable step"),
        ("CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH", "stopped lowering"),
        ("CONVERGENCE: REL_REDUCTION_OF_F_<=_FACTR*EPSMCH", "stopped lowering"),
        ("STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT", "max_iter was reached"),
        ("STOP: TOTAL NO. of ITERATIONS REACHED LIMIT", "max_iter was reached"),
        (
            "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
            "used up its objective evaluations",
        ),
        # trust-ncg.
        (
            "A bad approximation caused failure to predict improvement.",
            "foresaw no decrease",
        ),
        ("Maximum number of iterations has been exceeded.", "max_iter was reached"),
        # Our callback, once the gradient met tol.
        ("`callback` raised `StopIteration`.", "the gradient met tol"),
    ],
)
def test_a_solver_stop_is_said_in_words(scipy_message, reason):
    assert reason in _stop_reason(OptimizeResult(message=scipy_message))


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
@pytest.mark.parametrize("C", [1.0, np.inf])
def test_a_warning_never_calls_an_unconverged_fit_converged(iris64, solver, C):
    # On a column at 1e9 the methods stop by rules of their own: L-BFGS-B's
    # line search fails or its decrease is small ("ABNORMAL: ",
    # "CONVERGENCE: ..."), trust-ncg's model foresees no decrease.
    X, y = iris64
    with pytest.warns(ConvergenceWarning) as record:
        SoftmaxClassifier(C=C, solver=solver).fit(X + [1e9, 0.0, 0.0, 0.0], y)
    message = str(record[0].message)
    assert "float64 precision" in message
    for raw in ["ABNORMAL", "CONVERGENCE", "approximation", ".;"]:
        assert raw not in message


def test_newton_cg_is_not_advised_to_use_newton_cg():
    result = SolverResult(
        params=np.zeros(3),
        value=1.0,
        grad_max=1e-6,
        n_iter=10,
        converged=False,
        message="",
    )
    assert "newton-cg" in _advice(result, "lbfgs", 10, 1e-4, np.float64)
    assert "newton-cg" not in _advice(result, "newton-cg", 10, 1e-4, np.float64)


def test_an_unestimated_gap_is_not_reported_as_infinite(iris64):
    # One iteration records no curvature pair: the estimate is infinite, and
    # the warning said "the estimated objective gap of inf".
    X, y = iris64
    clf = SoftmaxClassifier(solver="newton-cg", tol=1e-3, warm_start=True).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="could not be estimated") as record:
        clf.set_params(max_iter=1).fit(X, y)
    message = str(record[0].message)
    assert "inf" not in message
    assert "after 1 iteration with" in message


def test_a_gap_pair_below_float32_range_is_not_kept():
    # Unpenalized separable fits used to get there: the gradient's change
    # underflowed float32, the scale divided by zero (about 170 numpy
    # warnings on iris's first two classes) and the estimate became NaN.
    gap = _GapEstimate()
    grad = np.array([1e-45, -1e-45, 5e-46])
    gap.update(np.zeros(3), grad, 1e-44)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        # A change of about 5e-46, positive curvature, zero in float32.
        gap.update(np.ones(3), 1.5 * grad, 5e-45)
    assert gap.estimate(grad) == np.inf


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_separated_classes_without_a_penalty_stop_at_tol(iris64, solver):
    # No optimum to approach: held to the gap rule, the fits ran on to 45
    # (lbfgs) and 113 (newton-cg) iterations; on digits newton-cg took
    # minutes.
    X, y = iris64
    with pytest.warns(PerfectSeparationWarning):
        clf = SoftmaxClassifier(C=np.inf, solver=solver).fit(X[y < 2], y[y < 2])
    assert clf.n_iter_ <= 20


def test_separates_asks_every_weighted_row_for_a_strictly_larger_own_logit():
    rng = np.random.default_rng(8)
    for _ in range(200):
        n, k = int(rng.integers(1, 30)), int(rng.integers(2, 6))
        logits = rng.integers(-3, 4, size=(n, k)).astype(float)
        codes = rng.integers(0, k, size=n)
        logits[np.arange(n), codes] += rng.choice([0.0, 7.0], size=n, p=[0.1, 0.9])
        if rng.uniform() < 0.2:
            logits[rng.integers(n), rng.integers(k)] = np.nan
        weights = rng.choice([0.0, 0.5, 2.0], size=n)
        expected = all(
            all(logits[i, codes[i]] > logits[i, j] for j in range(k) if j != codes[i])
            for i in range(n)
            if weights[i] > 0
        )
        before = logits.copy()
        assert separates(logits, codes, weights) is expected
        np.testing.assert_array_equal(logits, before)
