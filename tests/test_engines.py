"""Every loss engine against a plain reference, to 1e-10 in float64.

One parametrized test per quantity of the engine contract: value, gradient,
Hessian-vector product, dense Hessian, per-sample score outer products and
column moments, with and without an intercept and sample weights (one of
them zero), through the dispatcher that the estimator uses.
"""

import decimal
import fractions

import numpy as np
import pytest
from scipy import sparse

from sksoftmax._engines import _numpy as numpy_engine
from sksoftmax._engines import make_engine
from sksoftmax._threads import blas_threads

from _reference import data_term, data_term_product

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


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("to_input", [_numpy, _csr])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_products_that_recompute_the_probabilities_match_the_reference(
    monkeypatch, dtype, to_input, fit_intercept
):
    # Blocks of the fewest rows, 256: 700 rows make three, and each product
    # recomputes each block's probabilities into the scratch it shares with
    # the evaluations.
    monkeypatch.setattr(numpy_engine, "_BLOCK_BYTES", 1)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(700, 5)) * [1.0, 4.0, 0.3, 1.0, 2.0]
    y = rng.integers(0, N_CLASSES, size=700)
    weights = rng.uniform(0.2, 3.0, size=700)
    weights[11] = 0.0
    X_in, y_in, weights_in = to_input(X.astype(dtype), y, weights)
    engine = make_engine(X_in, y_in, N_CLASSES, weights_in, fit_intercept)
    assert len(engine._blocks) == 3
    engine.keeps_proba = False
    params = rng.normal(size=engine.n_params)
    _, _, hessian, _ = data_term(
        X.astype(dtype), y, N_CLASSES, weights, params, fit_intercept
    )
    _, _, hessp = engine.hessian_product(params)
    # Nothing of n x K is held between products.
    assert engine._proba is None
    if dtype == np.float64:
        close = dict(rtol=1e-10, atol=1e-12)
    else:
        close = dict(rtol=1e-4, atol=1e-5)
    for _ in range(3):
        direction = rng.normal(size=engine.n_params)
        np.testing.assert_allclose(hessp(direction), hessian @ direction, **close)
    # Along the ray through params, without a product.
    ray = engine.ray_curvature(params)
    assert ray == pytest.approx(params @ hessian @ params, rel=close["rtol"])


@pytest.mark.parametrize("to_input", [_numpy, _csr])
def test_products_stay_at_their_point_after_another_evaluation(problem, to_input):
    # Small data keep the probabilities of the last evaluation that asked;
    # a product made before another point's evaluation must not use them.
    X, y, weights = problem
    X_in, y_in, weights_in = to_input(X, y, weights)
    engine = make_engine(X_in, y_in, N_CLASSES, weights_in, True)
    assert engine.keeps_proba
    rng = np.random.default_rng(5)
    params, elsewhere, direction = rng.normal(size=(3, engine.n_params))
    _, _, hessian, _ = data_term(X, y, N_CLASSES, weights, params, True)
    hessp = engine.hessian_product(params)[2]
    engine.hessian_product(elsewhere)
    later = engine.curvature_at(elsewhere)
    np.testing.assert_allclose(hessp(direction), hessian @ direction, rtol=1e-10)
    _, _, other, _ = data_term(X, y, N_CLASSES, weights, elsewhere, True)
    np.testing.assert_allclose(later(direction), other @ direction, rtol=1e-10)


@pytest.mark.parametrize("keeps_proba", [True, False])
@pytest.mark.parametrize("to_input", [_numpy, _csr])
def test_logits_far_below_their_row_maximum_still_match_the_reference(
    problem, to_input, keeps_proba
):
    # Logits spread over thousands: most probabilities are subnormal or zero
    # in float64, which the engine floors at e times the smallest normal
    # float before exp. The floor must not show, least of all in the loss of
    # rows whose own class is that far below (log-loss in the thousands).
    X, y, weights = problem
    X_in, y_in, weights_in = to_input(X, y, weights)
    engine = make_engine(X_in, y_in, N_CLASSES, weights_in, True)
    engine.keeps_proba = keeps_proba
    rng = np.random.default_rng(4)
    params = 400.0 * rng.normal(size=engine.n_params)
    logits = X @ params[:-N_CLASSES].reshape(-1, N_CLASSES) + params[-N_CLASSES:]
    shifted = logits - logits.max(axis=1, keepdims=True)
    floor = np.log(np.finfo(float).tiny)
    assert np.mean(shifted < floor) > 0.4
    assert np.sum(shifted[np.arange(y.size), y] < floor) > 10
    value, grad, hessian, _ = data_term(X, y, N_CLASSES, weights, params, True)
    got_value, got_grad, hessp = engine.hessian_product(params)
    assert got_value == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(got_grad, grad, rtol=1e-12, atol=1e-300)
    direction = rng.normal(size=engine.n_params)
    np.testing.assert_allclose(
        hessp(direction), hessian @ direction, rtol=1e-10, atol=1e-300
    )
    ray = engine.ray_curvature(params)
    assert ray == pytest.approx(params @ hessian @ params, rel=1e-8)


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


def _exact_moments(X, weights):
    """Weighted mean and standard deviation of each column, in exact arithmetic."""
    w = [fractions.Fraction(float(v)) for v in weights]
    total = sum(w)
    means, stds = [], []
    for column in X.T:
        x = [fractions.Fraction(float(v)) for v in column]
        mean = sum(a * b for a, b in zip(w, x, strict=True)) / total
        spread = sum(a * (b - mean) ** 2 for a, b in zip(w, x, strict=True)) / total
        with decimal.localcontext(prec=40):
            variance = decimal.Decimal(spread.numerator) / spread.denominator
            stds.append(float(variance.sqrt()))
        means.append(float(mean))
    return np.array(means), np.array(stds)


def test_sparse_moments_read_only_the_stored_entries():
    # A CSR matrix may hold spare room past its last entry; the moments
    # must read the entries that its index pointer covers.
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(40, 3))
    X = sparse.csr_matrix(dense)
    X.data = np.r_[X.data, np.full(10, 7.0)]
    X.indices = np.r_[X.indices, np.zeros(10, dtype=X.indices.dtype)]
    y = np.arange(40) % N_CLASSES
    weights = rng.uniform(0.5, 1.5, size=40)
    mean, std = make_engine(X, y, N_CLASSES, weights, True).column_moments()
    expected_mean, expected_std = _exact_moments(dense, weights)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-13)
    np.testing.assert_allclose(std, expected_std, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_column_moments_hold_for_any_column_across_many_blocks(monkeypatch, dtype):
    # One pass merges the blocks' centred sums; only columns whose squares
    # leave the float range (or that are constant) are redone on scaled
    # values. Small blocks, the first with zero weight and far-off values,
    # so that merging and the choice of origin matter.
    monkeypatch.setattr(numpy_engine, "_MOMENTS_BLOCK_BYTES", 8 * 14 * 7)
    redone = []
    scaled_moments = numpy_engine.NumPyEngine._scaled_moments

    def recording(engine, columns):
        redone.extend(columns.tolist())
        return scaled_moments(engine, columns)

    monkeypatch.setattr(numpy_engine.NumPyEngine, "_scaled_moments", recording)
    rng = np.random.default_rng(1)
    n = 120
    noise = rng.standard_normal(n)
    # The extremes of each dtype: squares of the float64 ones overflow or
    # underflow even in float64.
    if dtype == np.float64:
        big, small, top = 1e300, 1e-300, 5e307
        out_of_range = [4, 5, 7, 11]
    else:
        big, small, top = 1e30, 1e-30, 3e38
        out_of_range = []
    X = np.column_stack(
        [
            np.ones(n),
            np.zeros(n),
            1e5 + noise,
            1e3 + 1e-3 * noise,
            big * noise,
            small * noise,
            np.sqrt(big) * noise,
            np.sqrt(small) * noise,
            np.full(n, top),
            np.full(n, -small),
            np.r_[np.zeros(n - 1), 1.0],
            np.r_[np.zeros(n - 1), small],
            np.full(n, 3e-25),
            np.r_[np.full(10, 1e12), noise[10:]],
        ]
    ).astype(dtype)
    weights = rng.uniform(0.0, 2.0, size=n)
    weights[:10] = 0.0
    y = np.arange(n) % N_CLASSES
    before = X.copy()
    engine = make_engine(X, y, N_CLASSES, weights, True)
    mean, std = engine.column_moments()
    expected_mean, expected_std = _exact_moments(
        X.astype(np.float64), engine.weights.astype(np.float64)
    )
    assert sorted(redone) == sorted([0, 1, 8, 9, 12, *out_of_range])
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-14, atol=0)
    constant = expected_std == 0.0
    assert constant.tolist() == [i in (0, 1, 8, 9, 12) for i in range(14)]
    np.testing.assert_allclose(std[~constant], expected_std[~constant], rtol=1e-13)
    np.testing.assert_array_equal(std[constant], 0.0)
    np.testing.assert_array_equal(X, before)


def test_every_engine_keeps_the_spread_of_columns_far_from_zero(engine_input):
    # Columns of 1e9 or 1e12 plus unit noise must keep their spread, and
    # columns whose values are all equal must come out with a spread far
    # below the rounding of their mean: the preconditioner centres the
    # first and leaves the second alone, and either mistake wrecks the fit.
    # Sparse X computed E[x^2] - mean^2, which returned a spread of 1e-8
    # for a stored column of ones. A row of negligible weight far off (the
    # last column) must not disturb them either: centred on it, the dense
    # moments of that column came out as 96 and 96.
    rng = np.random.default_rng(3)
    n = 101
    noise = rng.standard_normal(n)
    X = np.column_stack(
        [
            np.full(n, 0.1),
            np.ones(n),
            np.full(n, 1 / 3),
            np.full(n, 0.7),
            np.full(n, -1e5 / 7),
            1e9 + noise,
            1e12 + noise,
            np.where(noise > 0.5, 1e9, 0.0),
            noise,
            np.r_[np.zeros(5), 1e17, noise[6:]],
        ]
    )
    y = np.arange(n) % N_CLASSES
    weights = rng.uniform(0.0, 2.0, size=n)
    weights[:5] = 0.0
    weights[5] = 1e-300
    X_in, y_in, weights_in = engine_input(X, y, weights)
    mean, std = make_engine(X_in, y_in, N_CLASSES, weights_in, True).column_moments()
    expected_mean, expected_std = _exact_moments(X, weights)
    eps = np.finfo(np.float64).eps
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-14)
    # Dask pools its chunks' means, each rounded to float64 near 1e12.
    error = np.abs(std[5:] - expected_std[5:])
    assert np.all(error <= 1e-12 * expected_std[5:] + 16 * eps * np.abs(mean[5:]))
    np.testing.assert_array_equal(mean[:5], X[0, :5])
    assert np.all(std[:5] <= 1e-3 * eps * np.abs(mean[:5]))


def _float32_input(name, X, y, w):
    if name == "torch-cpu":
        torch = pytest.importorskip("torch")
        return torch.asarray(X, dtype=torch.float32), y, w
    return ENGINES[name](X.astype(np.float32), y, w)


@pytest.mark.parametrize(
    "name", ["numpy", "csr", "dask", "array-api-strict", "torch-cpu"]
)
def test_float32_keeps_losses_below_its_rounding_of_one(name, request):
    # Near separation most rows' own class leads by 17 or more, and their
    # loss log(1 + share), with share the other classes' exp below e^-17,
    # is below float32's rounding of 1 (6e-8): computed as log(total) it
    # was 0 or 1.2e-7, and the own class's entries of P - Y and of the
    # Hessian products, p - 1 and p (a - rowsum(P * A)), as far off.
    if name == "dask":
        request.getfixturevalue("dask_client")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4000, 4)).astype(np.float32).astype(np.float64)
    coef = 10.0 * rng.normal(size=(4, N_CLASSES))
    logits = np.sort(X @ coef, axis=1)
    margin = logits[:, -1] - logits[:, -2]
    # Every loss below 6e-8, and above e^-25, where the float64 reference's
    # 1 - p keeps five digits.
    X = X[(margin > 17) & (margin < 25)]
    assert X.shape[0] > 100
    y = np.argmax(X @ coef, axis=1)
    weights = np.ones(X.shape[0])
    params = np.concatenate([coef.ravel(), np.zeros(N_CLASSES)])
    value, grad, hessian, _ = data_term(X, y, N_CLASSES, weights, params, True)
    X_in, y_in, weights_in = _float32_input(name, X, y, weights)
    engine = make_engine(X_in, y_in, N_CLASSES, weights_in, True)
    got_value, got_grad, hessp = engine.hessian_product(params)
    # float32 logits of size 100 are off by up to 100 * 6e-8 in absolute terms,
    # which the exp of the small shares carries as a relative error.
    assert got_value == pytest.approx(value, rel=1e-4, abs=0.0)
    np.testing.assert_allclose(
        got_grad, grad, rtol=1e-3, atol=1e-4 * np.abs(grad).max()
    )
    direction = rng.normal(size=engine.n_params)
    product = hessian @ direction
    np.testing.assert_allclose(
        hessp(direction), product, rtol=1e-3, atol=1e-4 * np.abs(product).max()
    )


@pytest.mark.parametrize("name", ["numpy", "csr", "array-api-strict", "torch-cpu"])
def test_float32_products_on_rows_far_from_their_own_class(name):
    # Rows whose own class is 25 below the likeliest and a direction whose
    # own-class entries are 1e5 times the others: subtracting them from
    # every class's entry (as in rows whose own class leads) added their
    # size to each entry's rounding, 7.8e-3 of a product entry.
    rng = np.random.default_rng(6)
    X = rng.normal(size=(300, 4)).astype(np.float32).astype(np.float64)
    y = np.zeros(X.shape[0], dtype=int)
    coef = rng.normal(size=(4, N_CLASSES))
    params = np.concatenate([coef.ravel(), [-25.0] + [0.0] * (N_CLASSES - 1)])
    direction = rng.normal(size=params.size).reshape(5, N_CLASSES)
    direction[:, 0] *= 1e5
    direction = direction.ravel()
    weights = np.ones(X.shape[0])
    _, _, hessian, _ = data_term(X, y, N_CLASSES, weights, params, True)
    X_in, y_in, weights_in = _float32_input(name, X, y, weights)
    engine = make_engine(X_in, y_in, N_CLASSES, weights_in, True)
    product = hessian @ direction
    np.testing.assert_allclose(
        engine.hessian_product(params)[2](direction),
        product,
        rtol=1e-4,
        atol=1e-5 * np.abs(product).max(),
    )


@pytest.mark.parametrize("margin", [80.0, 87.0])
@pytest.mark.parametrize("name", ["numpy", "array-api-strict", "torch-cpu"])
def test_float32_losses_near_the_smallest_normal_keep_their_digits(name, margin):
    # A loss of e^-87 is near float32's smallest normal; weighted by 1/n in
    # float32 it fell among the subnormals: 3.8e-3 off at n = 100000.
    n = 100_000
    X, y, weights = _float32_input(
        name, np.ones((n, 1)), np.zeros(n, dtype=int), np.ones(n)
    )
    engine = make_engine(X, y, 2, weights, True)
    value, _ = engine.loss_gradient(np.array([0.0, 0.0, margin, 0.0]))
    assert value == pytest.approx(np.log1p(np.exp(-margin)), rel=1e-6, abs=0.0)


@pytest.mark.parametrize(
    "n_features, n_classes",
    # Each block product in each of its forms. float32 with AVX-512 kernels:
    # rows x K logits and (G X)^T; K x rows logits and X^T G^T; K x rows
    # logits and (G X)^T; with other kernels K x rows logits throughout.
    # float64: (G X)^T at (60, 5) with AVX-512 kernels, else X^T G^T.
    # F-ordered X takes X^T G^T in every case.
    [(25, 3), (5, 8), (20, 20), (60, 5)],
)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("avx512", [True, False])
def test_block_products_in_every_form_match_the_reference(
    n_features, n_classes, order, dtype, avx512, monkeypatch
):
    monkeypatch.setattr(blas_threads, "avx512_kernels", avx512)
    rng = np.random.default_rng(6)
    # Two blocks, the last one shorter.
    n = numpy_engine._block_rows(dtype, n_classes) + 7
    X = rng.normal(size=(n, n_features)).astype(dtype).astype(np.float64)
    y = rng.integers(0, n_classes, size=n)
    weights = rng.uniform(0.2, 3.0, size=n)
    engine = make_engine(
        np.asarray(X, dtype=dtype, order=order), y, n_classes, weights, True
    )
    params = 0.3 * rng.normal(size=engine.n_params)
    direction = rng.normal(size=engine.n_params)
    value, grad, product = data_term_product(
        X, y, n_classes, weights, params, direction, True
    )
    got_value, got_grad, hessp = engine.hessian_product(params)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    assert got_value == pytest.approx(value, rel=rtol / 100)
    np.testing.assert_allclose(got_grad, grad, rtol=rtol, atol=rtol / 100)
    np.testing.assert_allclose(
        hessp(direction), product, rtol=rtol, atol=rtol / 10 * np.abs(product).max()
    )


@pytest.mark.parametrize(
    "dtype, n_features, n_classes, avx512, transposed",
    [
        (np.float32, 20, 3, False, True),
        (np.float32, 19, 3, True, False),
        (np.float64, 50, 49, True, True),
        (np.float64, 50, 50, True, False),
        (np.float64, 49, 3, True, False),
        (np.float64, 60, 5, False, False),
    ],
)
def test_gradient_product_form_follows_the_kernels(
    dtype, n_features, n_classes, avx512, transposed, monkeypatch
):
    # (G X)^T comes out F-ordered, X^T G^T C-ordered.
    monkeypatch.setattr(blas_threads, "avx512_kernels", avx512)
    rng = np.random.default_rng(7)
    X = rng.normal(size=(30, n_features)).astype(dtype)
    G = rng.normal(size=(n_classes, 30)).astype(dtype)
    product = numpy_engine._times_rows(G, X)
    np.testing.assert_allclose(product, X.T.astype(float) @ G.T, rtol=1e-4)
    assert product.flags.f_contiguous is transposed
    assert numpy_engine._times_rows(G, np.asfortranarray(X)).flags.c_contiguous
