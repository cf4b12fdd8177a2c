"""Threads over row blocks: same sums as one thread, limits restored, no hangs.

A large evaluation inside a fit sums its row blocks in threads of its own,
with every BLAS single-threaded until the fit ends. These tests need a BLAS
that threads over blocks can share (OpenBLAS's own pool) with at least two
threads; elsewhere they check only that fits still agree and leave the
limits as they were.
"""

import contextlib
import multiprocessing
import os
import sys
import threading
import types
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy.special import logsumexp, softmax
from threadpoolctl import threadpool_info

from sksoftmax import SoftmaxClassifier
from sksoftmax._engines._numpy import NumPyEngine
from sksoftmax._threads import BlasThreads, blas_threads

# Fits stopped at max_iter: the tests compare them, not their convergence.
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

N_CLASSES = 300


def _blas_counts():
    return sorted((lib["filepath"], lib["num_threads"]) for lib in threadpool_info())


def _problem(dtype=np.float64, n=4000, d=6):
    # 300 classes: 256 rows a block, 16 blocks, two groups of blocks.
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(n, d)) * rng.uniform(0.5, 2.0, size=d)).astype(dtype)
    y = rng.integers(0, N_CLASSES, size=n)
    y[:N_CLASSES] = np.arange(N_CLASSES)
    return X, y, rng.uniform(0.5, 2.0, size=n)


_CORES = os.cpu_count() or 1


@pytest.fixture
def two_cores(monkeypatch):
    """At least two groups of blocks, as on a machine with two cores or more."""
    monkeypatch.setattr(os, "cpu_count", lambda: max(2, _CORES))


def _threads_available():
    probe = BlasThreads()
    with probe:
        return probe.block_workers(2) > 1


def _reference(X, y, weights, params):
    """Value and gradient of the weighted cross-entropy, written plainly."""
    X = X.astype(np.float64)
    n, d = X.shape
    coef = params.reshape(d + 1, N_CLASSES)
    design = np.hstack([X, np.ones((n, 1))])
    logits = design @ coef
    w = weights / weights.sum()
    value = w @ (logsumexp(logits, axis=1) - logits[np.arange(n), y])
    residual = softmax(logits, axis=1)
    residual[np.arange(n), y] -= 1.0
    return value, (design.T @ (residual * w[:, None])).ravel()


def _evaluate(engine, params, direction):
    value, grad = engine.loss_gradient(params)
    _, _, hessp = engine.hessian_product(params)
    return value, grad, hessp(direction)


def _recording_map(monkeypatch):
    """The number of items of each call of BlasThreads.map, as it happens."""
    mapped = []
    original_map = BlasThreads.map
    monkeypatch.setattr(
        BlasThreads,
        "map",
        lambda self, func, items: (
            mapped.append(len(items)) or original_map(self, func, items)
        ),
    )
    return mapped


@contextlib.contextmanager
def _beside_another_fit():
    """A fit's context while a second fit runs in another thread."""
    entered, leave = threading.Event(), threading.Event()

    def other_fit():
        with blas_threads:
            entered.set()
            leave.wait()

    other = threading.Thread(target=other_fit)
    other.start()
    entered.wait()
    try:
        with blas_threads:
            yield
    finally:
        leave.set()
        other.join()


def test_threads_over_blocks_sum_as_one_thread_does(monkeypatch):
    # Three groups of 8 blocks (as with 4 cores), more than the threads that
    # a 2-core machine gives them: one thread sums two groups.
    monkeypatch.setattr(os, "cpu_count", lambda: max(4, _CORES))
    X, y, weights = _problem(n=24 * 256)
    engine = NumPyEngine(X, y, N_CLASSES, weights, True)
    assert engine._n_groups == 3
    rng = np.random.default_rng(1)
    params = rng.normal(size=engine.n_params) * 0.3
    direction = rng.normal(size=engine.n_params)
    mapped = _recording_map(monkeypatch)
    before = _blas_counts()
    with blas_threads:  # the only fit running: its groups run in threads
        threaded = _evaluate(engine, params, direction)
    solo_threads = list(mapped)
    # A second fit running meanwhile: the same groups, one after another,
    # on the same single-threaded BLAS.
    with _beside_another_fit():
        serial = _evaluate(engine, params, direction)
    assert _blas_counts() == before
    assert len(mapped) == len(solo_threads)  # no threads beside another fit
    if _threads_available():
        assert solo_threads and min(solo_threads) >= 2
    for ours, theirs in zip(threaded, serial, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    value, grad = _reference(X, y, weights, params)
    np.testing.assert_allclose(threaded[0], value, rtol=1e-12)
    np.testing.assert_allclose(threaded[1], grad, rtol=1e-9, atol=1e-13)
    # The Hessian-vector product against central differences of the gradient.
    step = 1e-5
    forward = _reference(X, y, weights, params + step * direction)[1]
    backward = _reference(X, y, weights, params - step * direction)[1]
    np.testing.assert_allclose(
        threaded[2], (forward - backward) / (2 * step), rtol=1e-5, atol=1e-9
    )


def test_a_curvature_samples_products_run_in_threads_too(two_cores, monkeypatch):
    # 10 classes in float64: 3276 rows a block, so 16 blocks in two groups;
    # the sample's 7000 float32 rows are two blocks (of at most 6553), one
    # group by the same rule.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16 * 3276, 4))
    y = rng.integers(0, 10, size=X.shape[0])
    engine = NumPyEngine(X, y, 10, np.ones(X.shape[0]), True)
    assert engine._n_groups == 2
    sample = engine.curvature_sample(7000, 200, np.zeros(4), np.ones(4))
    assert sample._n_groups == 2
    assert len(sample._blocks) == 2
    # A sample of one block stays whole: cut smaller, it took longer.
    small = engine.curvature_sample(500, 200, np.zeros(4), np.ones(4))
    assert small._n_groups == 1 and len(small._blocks) == 1
    params = rng.normal(size=engine.n_params) * 0.3
    direction = rng.normal(size=engine.n_params)
    mapped = _recording_map(monkeypatch)
    with blas_threads:
        threaded = _evaluate(sample, params, direction)
    if _threads_available():
        assert mapped and min(mapped) >= 2
    with _beside_another_fit():
        serial = _evaluate(sample, params, direction)
    for ours, theirs in zip(threaded, serial, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # The sample's rows, in one block, give the same sums to rounding.
    whole = NumPyEngine(sample.X, sample.y, 10, sample.weights, True)
    for ours, theirs in zip(threaded, _evaluate(whole, params, direction), strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def _fit(X, y):
    clf = SoftmaxClassifier(tol=0.0, max_iter=8).fit(X, y)
    return clf.coef_, clf.intercept_


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_concurrent_fits_equal_a_fit_alone(two_cores, dtype):
    X, y, _ = _problem(dtype)
    before = _blas_counts()
    alone = _fit(X, y)
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(lambda _: _fit(X, y), range(2)))
    assert _blas_counts() == before
    for coef, intercept in together:
        np.testing.assert_array_equal(coef, alone[0])
        np.testing.assert_array_equal(intercept, alone[1])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_fit_is_single_threaded_from_its_first_pass_over_the_data(
    two_cores, monkeypatch, dtype
):
    # Products on the BLAS's threads before the first evaluation in threads
    # (the column moments, a curvature sample's) would leave those threads
    # spinning through it.
    X, y, _ = _problem(dtype)
    seen = []
    original = NumPyEngine._centred_moments

    def recording(self):
        seen.append(
            [
                lib["num_threads"]
                for lib in threadpool_info()
                if lib["user_api"] == "blas"
            ]
        )
        return original(self)

    monkeypatch.setattr(NumPyEngine, "_centred_moments", recording)
    before = _blas_counts()
    _fit(X, y)
    assert _blas_counts() == before
    assert len(seen) == 1
    if _threads_available():
        assert set(seen[0]) == {1}


def test_a_fit_that_raises_restores_the_limits(two_cores, monkeypatch):
    X, y, _ = _problem()
    calls = []
    original = NumPyEngine.loss_gradient

    def fail_on_the_third(self, params):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, params)

    monkeypatch.setattr(NumPyEngine, "loss_gradient", fail_on_the_third)
    before = _blas_counts()
    with pytest.raises(KeyboardInterrupt):
        SoftmaxClassifier().fit(X, y)
    assert _blas_counts() == before
    monkeypatch.setattr(NumPyEngine, "loss_gradient", original)
    np.testing.assert_array_equal(_fit(X, y)[0], _fit(X, y)[0])


def test_threads_keep_the_callers_numpy_error_state():
    def divide(_):
        return np.float64(1.0) / np.float64(0.0)

    with np.errstate(divide="raise"):
        with pytest.raises(FloatingPointError):
            blas_threads.map(divide, [0, 1, 2])
    with np.errstate(divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        assert blas_threads.map(divide, [0, 1]) == [np.inf, np.inf]


def _fit_in_child(queue):
    X, y, _ = _problem()
    queue.put(np.asarray(_fit(X, y)[0]))


@pytest.mark.skipif(
    sys.platform != "linux", reason="the fork start method is for Linux here"
)
def test_a_forked_child_fits_after_the_parent_used_threads(two_cores):
    X, y, _ = _problem()
    parent = _fit(X, y)[0]
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_fit_in_child, args=(queue,))
    child.start()
    coef = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    np.testing.assert_array_equal(coef, parent)


@pytest.mark.parametrize(
    "libraries, expected",
    [
        ([("openblas", "SkylakeX")], True),
        # A build for one processor names its kernels in capitals.
        ([("openblas", "SKYLAKEX")], True),
        ([("openblas", "Cooperlake"), ("openblas", "SapphireRapids")], True),
        ([("openblas", "Haswell")], False),
        ([("openblas", "SkylakeX"), ("openblas", "Haswell")], False),
        ([("mkl", None)], False),
        # threadpoolctl without an architecture for the library.
        ([("openblas",)], False),
        ([], False),
    ],
)
def test_avx512_kernels_only_where_every_numpy_blas_runs_them(libraries, expected):
    threads = BlasThreads()
    threads._numpy_blas = [
        types.SimpleNamespace(
            internal_api=library[0],
            **({"architecture": library[1]} if len(library) > 1 else {}),
        )
        for library in libraries
    ]
    assert threads.avx512_kernels is expected


def test_avx512_kernels_as_threadpoolctl_reports_numpy_blas():
    numpy_blas = [
        info
        for info in threadpool_info()
        if info["user_api"] == "blas"
        and "scipy" not in os.path.basename(os.path.dirname(info["filepath"]))
    ]
    kernels = {str(info.get("architecture")).lower() for info in numpy_blas}
    assert BlasThreads().avx512_kernels is bool(
        numpy_blas and kernels <= {"skylakex", "cooperlake", "sapphirerapids"}
    )
