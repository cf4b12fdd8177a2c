"""Every loss engine against a plain reference, to 1e-10 in float64.

One parametrized test per quantity of the engine contract: value, gradient,
Hessian-vector product, dense Hessian, per-sample score outer products and
column moments, with and without an intercept and sample weights (one of
them zero), through the dispatcher that the estimator uses.
"""

import numpy as np
import pytest
from scipy import sparse

from sksoftmax._engines import make_engine

from _reference import data_term

N_CLASSES = 3


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)) * [1.0, 3.0, 0.2, 1.0] + [0.0, 1.0, -2.0, 0.5]
    X[:, 3] = (X[:, 3] > 0.5).astype(float)  # a sparse-ish column
    y = rng.integers(0, N_CLASSES, size=60)
    y[:N_CLASSES] = np.arange(N_CLASSES)
    weights = rng.uniform(0.2, 3.0, size=60)
    weights[7] = 0.0
    return X, y, weights


def _numpy(X, y, w):
    return X, y, w


def _csr(X, y, w):
    return sparse.csr_matrix(X), y, w


def _array_api_strict(X, y, w):
    xps = pytest.importorskip("array_api_strict")
    return xps.asarray(X, device=xps.Device("device1")), y, w


def _torch(X, y, w):
    torch = pytest.importorskip("torch")
    return torch.asarray(X, dtype=torch.float64), y, w


def _dask(X, y, w):
    da = pytest.importorskip("dask.array")
    return (
        da.from_array(X, chunks=(25, X.shape[1])),
        da.from_array(y, chunks=25),
        da.from_array(w, chunks=25),
    )


ENGINES = {
    "numpy": _numpy,
    "csr": _csr,
    "array-api-strict": _array_api_strict,
    "torch-cpu": _torch,
    "dask": _dask,
}


def _tagged_sums(X, codes, weights, tags, factor):
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    summed = np.zeros((3, X.shape[1]))
    np.add.at(summed, tags, factor * weights[:, None] * X)
    return summed, np.count_nonzero(codes == 1)


@pytest.fixture(params=list(ENGINES))
def engine_input(request, problem):
    if request.param == "dask":
        request.getfixturevalue("dask_client")
    return ENGINES[request.param]


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_engine_matches_the_plain_reference(
    engine_input, problem, fit_intercept, weighted
):
    X, y, weights = problem
    if not weighted:
        weights = np.ones_like(weights)
    X_in, y_in, weights_in = engine_input(X, y, weights)
    engine = make_engine(X_in, y_in, N_CLASSES, weights_in, fit_intercept)
    rng = np.random.default_rng(1)
    params = rng.normal(size=engine.n_params)
    direction = rng.normal(size=engine.n_params)
    value, grad, hessian, outer = data_term(
        X, y, N_CLASSES, weights, params, fit_intercept
    )
    close = dict(rtol=1e-10, atol=1e-12)

    got_value, got_grad = engine.loss_gradient(params)
    assert got_value == pytest.approx(value, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(got_grad, grad, **close)

    got_value, got_grad, hessp = engine.hessian_product(params)
    assert got_value == pytest.approx(value, rel=1e-10, abs=1e-12)
    np.testing.assert_allclose(got_grad, grad, **close)
    np.testing.assert_allclose(hessp(direction), hessian @ direction, **close)

    np.testing.assert_allclose(engine.hessian(params), hessian, **close)
    np.testing.assert_allclose(engine.score_outer(params), outer, **close)

    w = weights / weights.sum()
    design = np.hstack([X, np.ones((X.shape[0], 1))])
    np.testing.assert_allclose(engine.gram(), design.T @ (design * w[:, None]), **close)
    mean, std = engine.column_moments()
    np.testing.assert_allclose(mean, w @ X, **close)
    np.testing.assert_allclose(std, np.sqrt(w @ (X - w @ X) ** 2), **close)

    # Row sums: blocks of the data with raw weights, a per-row array aligned.
    tags = np.arange(X.shape[0]) % 3
    summed, count = engine.row_sums(_tagged_sums, 2.0, rows=tags)
    expected = np.zeros((3, X.shape[1]))
    np.add.at(expected, tags, 2.0 * weights[:, None] * X)
    np.testing.assert_allclose(summed, expected, **close)
    assert count == np.bincount(y, minlength=N_CLASSES)[1]


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_sparse_row_blocks_view_the_data_and_sum_like_dense(index_dtype):
    # Many row blocks: a copy of each would hold a second X through the fit.
    rng = np.random.default_rng(0)
    X = sparse.random(30_000, 50, density=0.05, format="csr", random_state=0)
    X.indices, X.indptr = X.indices.astype(index_dtype), X.indptr.astype(index_dtype)
    y = rng.integers(0, N_CLASSES, size=X.shape[0])
    weights = np.ones(X.shape[0])
    engine = make_engine(X, y, N_CLASSES, weights, True)
    assert len(engine._blocks) > 1
    for _, block in engine._blocks:
        assert np.shares_memory(block.data, X.data)
        assert np.shares_memory(block.indices, X.indices)
    dense = make_engine(X.toarray(), y, N_CLASSES, weights, True)
    params = rng.normal(size=engine.n_params)
    value, grad = engine.loss_gradient(params)
    dense_value, dense_grad = dense.loss_gradient(params)
    assert value == pytest.approx(dense_value, rel=1e-12)
    np.testing.assert_allclose(grad, dense_grad, rtol=1e-10, atol=1e-14)
