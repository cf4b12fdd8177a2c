"""Inference at the sizes where its dense squares dominate: the in-place
Cholesky route, the overlap certificate that spares the separation LP, and
the refusals above what fits."""

import warnings

import numpy as np
import pytest
from scipy import sparse

import sksoftmax._inference as inference_module
from sksoftmax import SoftmaxClassifier
from sksoftmax._engines._numpy import NumPyEngine
from sksoftmax._separation import overlaps, separating_shift
from sksoftmax._symmetric import (
    add_gram,
    cholesky,
    empty_square,
    invert_factored,
    mirror_upper,
)


def _data(n=400, d=6, K=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    logits = X @ rng.standard_normal((d, K))
    y = np.argmax(logits + rng.gumbel(size=(n, K)), axis=1)
    return X, y


def _inference(X, y, C=np.inf, **kwargs):
    clf = SoftmaxClassifier(C=C, tol=1e-10, max_iter=5000).fit(X, y)
    return clf.inference(X, y, **kwargs)


@pytest.mark.parametrize("sparse_rows", [False, True])
def test_in_place_helpers_match_numpy(sparse_rows):
    rng = np.random.default_rng(1)
    rows = rng.standard_normal((50, 7))
    weights = rng.random(50)
    square = empty_square(7)
    add_gram(square, sparse.csr_matrix(rows) if sparse_rows else rows, weights)
    add_gram(square, rows[:10], weights[:10], sign=-1.0)
    expected = rows.T @ (rows * weights[:, None])
    expected -= rows[:10].T @ (rows[:10] * weights[:10, None])
    mirror_upper(square)
    np.testing.assert_allclose(square, expected, rtol=1e-12, atol=1e-12)
    factor = cholesky(square.copy(), 1e-12)
    np.testing.assert_allclose(
        invert_factored(factor), np.linalg.inv(expected), rtol=1e-10
    )
    assert cholesky(-expected, 1e-12) is None
    # Small everywhere is as singular as ill-conditioned: the curvature at
    # the limit of a separation.
    assert cholesky(1e-20 * np.eye(3), 1e-9) is None
    assert cholesky(np.diag([1.0, 1e-12]), 1e-9) is None
    assert cholesky(np.diag([1e4, 1e-6]), 1e-9) is None
    assert cholesky(np.diag([1e4, 1e-4]), 1e-9) is not None


def test_add_gram_refuses_a_c_ordered_square():
    with pytest.raises(TypeError, match="Fortran order"):
        add_gram(np.zeros((3, 3)), np.ones((2, 3)), np.ones(2))


@pytest.mark.parametrize("cov_type", ["nonrobust", "HC1"])
def test_cholesky_route_equals_the_eigen_route(monkeypatch, cov_type):
    X, y = _data()
    cholesky_route = _inference(X, y, cov_type=cov_type)
    # A threshold no factor meets sends every Hessian to the eigen route.
    monkeypatch.setattr(inference_module, "_CHOLESKY_RCOND", np.inf)
    eigen_route = _inference(X, y, cov_type=cov_type)
    np.testing.assert_allclose(cholesky_route.coef, eigen_route.coef, rtol=1e-10)
    np.testing.assert_allclose(
        cholesky_route.cov_params, eigen_route.cov_params, rtol=1e-9
    )


def test_large_route_refuses_a_singular_hessian(monkeypatch):
    monkeypatch.setattr(inference_module, "_EIGH_MAX_PARAMS", 0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2))
    y = np.digitize(X[:, 0], [-0.5, 0.5])
    with (
        warnings.catch_warnings(),
        pytest.raises(ValueError, match=r"6 parameters is singular.*finite C"),
    ):
        warnings.simplefilter("ignore")
        SoftmaxClassifier(C=np.inf).fit(X, y).inference(X, y)
    # Where the data inform every parameter the large route gives the same,
    # also from a loose fit, which L-BFGS tightens before the Newton polish.
    X, y = _data()
    large = _inference(X, y)
    loose = SoftmaxClassifier(C=np.inf, tol=1e-2).fit(X, y).inference(X, y)
    monkeypatch.setattr(inference_module, "_EIGH_MAX_PARAMS", 10_000)
    small = _inference(X, y)
    np.testing.assert_allclose(large.coef_se, small.coef_se, rtol=1e-10)
    np.testing.assert_allclose(loose.coef, small.coef, rtol=1e-9)
    assert loose.polished and loose.polish_shift > 1e-4


def test_memory_check_names_the_size(monkeypatch):
    X, y = _data()
    clf = SoftmaxClassifier(C=np.inf).fit(X, y)
    monkeypatch.setattr(inference_module, "_available_memory", lambda: 1000)
    with pytest.raises(MemoryError, match=r"21 parameters needs .* GiB, more than"):
        clf.inference(X, y)
    monkeypatch.setattr(inference_module, "_available_memory", lambda: None)
    clf.inference(X, y)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("sparse_input", [False, True])
def test_overlap_certificate_agrees_with_the_linear_program(seed, sparse_input):
    rng = np.random.default_rng(seed)
    n = [12, 30, 80, 200, 40, 25][seed]
    X = rng.standard_normal((n, 3))
    y = rng.integers(0, 3, n)
    if seed % 2:
        y = np.digitize(X[:, 0] + 0.3 * X[:, 1], [-0.4, 0.4])
    y[:3] = [0, 1, 2]
    X_in = sparse.csr_matrix(X) if sparse_input else X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = SoftmaxClassifier(C=np.inf, tol=1e-10, max_iter=5000).fit(X_in, y)
    W = clf.coef_ - clf.coef_[0]
    b = clf.intercept_ - clf.intercept_[0]
    theta = np.column_stack([b, W])[1:]
    engine = NumPyEngine(X_in, y, 3, np.ones(n), True)
    proven = overlaps(engine, theta, np.arange(1, 3), np.arange(4), np.ones(4))
    shift = separating_shift(X_in, y, np.arange(1, 3), np.ones(4), True)
    # The certificate may fail to prove overlap, but never contradicts the LP.
    assert not (proven and shift is not None)
    if seed % 2 == 0 and n >= 80:
        assert proven


def test_separation_lp_too_large_is_skipped_with_a_warning(monkeypatch):
    monkeypatch.setattr(inference_module, "_SEPARATION_LP_MAX_NONZEROS", 0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2))
    y = np.digitize(X[:, 0], [-0.5, 0.5])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        SoftmaxClassifier(C=np.inf).fit(X, y).inference(X, y)
    assert any("too large to solve here" in str(w.message) for w in caught)
    # Overlapping data are proven so without the LP: no warning at all.
    X, y = _data()
    clf = SoftmaxClassifier(C=np.inf).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.inference(X, y)


@pytest.mark.parametrize("scale", [1.0, 1e3, 1e5])
def test_overlap_is_proven_whatever_the_scale_of_a_feature(monkeypatch, scale):
    # A large feature with a large offset makes the certificate's matrix
    # ill-conditioned in raw units; it is judged in standardized ones.
    monkeypatch.setattr(inference_module, "_SEPARATION_LP_MAX_NONZEROS", 0)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 2))
    X[:, 1] = scale * X[:, 1] + 5 * scale
    y = rng.integers(0, 3, 300)
    clf = SoftmaxClassifier(C=np.inf, tol=1e-10, max_iter=5000).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.inference(X, y)
