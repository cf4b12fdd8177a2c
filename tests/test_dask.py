"""Fits on dask arrays, on a real local cluster, against the same fits in memory."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import make_classification

from sksoftmax import PerfectSeparationWarning, SoftmaxClassifier

from _devices import gpu_arrays
from conftest import PREDICT_METHODS, TIGHT

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client(dask_client):
    return dask_client


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=600, n_features=8, n_informative=5, n_classes=3, random_state=0
    )
    weights = np.random.default_rng(0).uniform(0.2, 3.0, size=y.shape[0])
    return X, y, weights


def _chunked(X, y, weights, rows=150):
    return (
        da.from_array(X, chunks=(rows, X.shape[1])),
        da.from_array(y, chunks=rows),
        da.from_array(weights, chunks=rows),
    )


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"class_weight": "balanced", "C": 0.1},
        {"fit_intercept": False, "solver": "newton-cg"},
    ],
    ids=["default", "balanced", "newton-cg"],
)
def test_fit_equals_in_memory_fit_and_runs_on_the_workers(client, data, params):
    X, y, weights = data
    expected = SoftmaxClassifier(**TIGHT, **params).fit(X, y, sample_weight=weights)
    with distributed.get_task_stream(client) as stream:
        clf = SoftmaxClassifier(**TIGHT, **params).fit(*_chunked(X, y, weights))
    np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(clf.intercept_, expected.intercept_, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(clf.classes_, expected.classes_)
    assert clf.n_features_in_ == X.shape[1]

    workers = set(client.scheduler_info()["workers"])
    evaluations = [t for t in stream.data if "_chunk_" in str(t["key"])]
    assert evaluations
    assert {t["worker"] for t in evaluations} == workers


@pytest.mark.slow
def test_string_labels_in_memory_and_float32(client, data):
    X, y, _ = data
    names = np.array(["b", "c", "a"])[y]
    expected = SoftmaxClassifier(**TIGHT).fit(X, names)
    clf = SoftmaxClassifier(**TIGHT).fit(da.from_array(X, chunks=(200, 8)), names)
    np.testing.assert_array_equal(clf.classes_, ["a", "b", "c"])
    np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=0, atol=1e-6)

    X32 = da.from_array(X.astype(np.float32), chunks=(200, 8))
    clf32 = SoftmaxClassifier().fit(X32, names)
    assert clf32.coef_.dtype == clf32.intercept_.dtype == np.float32
    assert clf32.predict_proba(X32).dtype == np.float32
    # float32 resolves the optimum only to its precision.
    np.testing.assert_allclose(clf32.coef_, expected.coef_, rtol=0, atol=1e-2)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_predictions_are_lazy_and_equal_numpy(client, data, n_classes):
    X, y, _ = data
    y = y % n_classes
    clf = SoftmaxClassifier().fit(X, y)
    X_dask = da.from_array(X, chunks=(100, 4))  # columns split: rechunked
    for method in PREDICT_METHODS:
        lazy = getattr(clf, method)(X_dask)
        assert isinstance(lazy, da.Array), method
        expected = getattr(clf, method)(X)
        assert lazy.shape == expected.shape
        computed = lazy.compute()
        assert computed.dtype == expected.dtype
        np.testing.assert_allclose(computed, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_misaligned_chunks_are_rechunked(client, data):
    X, y, weights = data
    expected = SoftmaxClassifier(**TIGHT).fit(X, y, sample_weight=weights)
    X_dask = da.from_array(X, chunks=(130, 3))
    y_dask = da.from_array(y, chunks=200)
    weights_dask = da.from_array(weights, chunks=77)
    clf = SoftmaxClassifier(**TIGHT).fit(X_dask, y_dask, sample_weight=weights_dask)
    np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=0, atol=1e-6)


def test_bad_input_is_refused(client, data):
    X, y, weights = data
    X_dask, y_dask, weights_dask = _chunked(X, y, weights)
    clf = SoftmaxClassifier()
    unknown = X_dask[X_dask[:, 0] > -np.inf]
    with pytest.raises(ValueError, match="unknown chunk sizes.*compute_chunk_sizes"):
        clf.fit(unknown, y_dask)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        clf.fit(X_dask, y_dask[y_dask > -1])
    with pytest.raises(ValueError, match="y has 599 entries but X has 600 rows"):
        clf.fit(X_dask, y_dask[:-1])
    with pytest.raises(ValueError, match="non-negative"):
        clf.fit(X_dask, y_dask, sample_weight=weights_dask - 1.0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        clf.fit(X_dask, da.zeros_like(y_dask))
    X_nan = X.copy()
    X_nan[450, 2] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clf.fit(da.from_array(X_nan, chunks=(150, 8)), y_dask)


def test_import_does_not_need_dask():
    code = (
        "import sys, sksoftmax; "
        "sys.exit(any(m.startswith('dask') for m in sys.modules))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_separation_is_detected_across_chunks(client):
    X = np.linspace(-1.0, 1.0, 40)[:, None]
    y = (X[:, 0] > 0).astype(int)
    X_dask = da.from_array(X, chunks=(10, 1))
    with pytest.warns(PerfectSeparationWarning):
        SoftmaxClassifier(C=np.inf, tol=1e-3).fit(X_dask, y)
    y[0] = 1  # one sample on the wrong side, in the first chunk only
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        SoftmaxClassifier(C=np.inf, tol=1e-3).fit(X_dask, y)


@pytest.fixture(scope="module")
def full_rank(data):
    """The data without its redundant columns, so that every parameter is identified."""
    X, y, weights = data
    X_full, y_full = make_classification(
        n_samples=X.shape[0],
        n_features=6,
        n_informative=4,
        n_redundant=0,
        n_classes=3,
        random_state=1,
    )
    return X_full, y_full, weights


def _assert_same_inference(result, expected):
    for name in ["coef", "intercept", "coef_se", "intercept_se", "cov_params"]:
        np.testing.assert_allclose(
            getattr(result, name), getattr(expected, name), rtol=1e-8, atol=1e-12
        )
    for name in ["llf", "llnull", "nobs", "df_model"]:
        np.testing.assert_allclose(getattr(result, name), getattr(expected, name))


@pytest.mark.parametrize(
    "params, options",
    [
        ({"C": np.inf}, {}),
        ({"C": 0.5, "class_weight": "balanced"}, {"cov_type": "HC1"}),
        ({"C": np.inf, "fit_intercept": False}, {"cov_type": "HC0"}),
        ({"C": 2.0}, {"cov_type": "cluster"}),
        ({"C": np.inf}, {"cov_type": "cluster", "two_way": True}),
        ({"C": 1.0}, {"cov_type": "cluster", "two_way": True, "in_memory": True}),
    ],
    ids=[
        "unpenalized",
        "balanced-HC1",
        "no-intercept-HC0",
        "cluster",
        "two-way",
        "two-way-in-memory-groups",
    ],
)
def test_inference_on_the_workers_equals_in_memory_inference(
    client, full_rank, params, options
):
    X, y, weights = full_rank
    options = dict(options)
    in_memory_groups = options.pop("in_memory", False)
    groups = None
    if options.pop("two_way", False):
        groups = np.column_stack(
            [np.arange(X.shape[0]) % 23, np.arange(X.shape[0]) % 7]
        )
    elif options.get("cov_type") == "cluster":
        groups = np.arange(X.shape[0]) % 31
    if groups is not None:
        options["groups"] = groups
    clf = SoftmaxClassifier(**TIGHT, **params).fit(X, y, sample_weight=weights)
    expected = clf.inference(X, y, sample_weight=weights, **options)
    X_dask, y_dask, w_dask = _chunked(X, y, weights)
    if groups is not None and not in_memory_groups:
        # Chunked unlike X: aligned to its rows by the inference.
        options["groups"] = da.from_array(groups, chunks=(100,) + groups.shape[1:])
    with (
        distributed.get_task_stream(client) as stream,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        result = clf.inference(X_dask, y_dask, sample_weight=w_dask, **options)
    _assert_same_inference(result, expected)
    # Unpenalized, the overlap certificate ran on the chunks and proved overlap.
    assert not [w for w in caught if "linear program" in str(w.message)]
    workers = set(client.scheduler_info()["workers"])
    assert {task["worker"] for task in stream.data} == workers


def test_inference_on_sparse_chunks_and_dataframes(client, full_rank):
    from scipy import sparse

    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, y, _ = full_rank
    X = np.where(np.abs(X) > 1.0, X, 0.0)
    clf = SoftmaxClassifier(**TIGHT, C=1.0).fit(X, y)
    expected = clf.inference(X, y, cov_type="HC0")
    chunks = da.from_array(X, chunks=(150, X.shape[1])).map_blocks(
        sparse.csr_matrix, dtype=np.float64, meta=sparse.csr_matrix((0, 0))
    )
    _assert_same_inference(clf.inference(chunks, y, cov_type="HC0"), expected)

    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(X.shape[1])])
    named = SoftmaxClassifier(**TIGHT, C=1.0).fit(frame, y)
    expected = named.inference(frame, y)
    ddf = dd.from_pandas(frame, npartitions=4)
    result = named.inference(ddf, dd.from_pandas(pd.Series(y), npartitions=4))
    _assert_same_inference(result, expected)
    assert result.feature_names.tolist() == frame.columns.tolist()
    with pytest.raises(ValueError, match="feature names should match"):
        named.inference(ddf.rename(columns={"f0": "g0"}), y)


def test_inference_on_dask_refuses_what_memory_refuses(client, data):
    X, y, _ = data
    clf = SoftmaxClassifier().fit(X, y)
    X_dask = da.from_array(X, chunks=(150, X.shape[1]))
    with pytest.raises(ValueError, match="labels \\[7\\] that the model"):
        clf.inference(X_dask, np.where(y == 2, 7, y))
    with pytest.raises(ValueError, match="no samples of the class"):
        clf.inference(X_dask, np.where(y == 2, 1, y))
    with pytest.raises(ValueError, match="X has 7 features"):
        clf.inference(X_dask[:, :7], y)
    with pytest.raises(ValueError, match="groups must be given"):
        clf.inference(X_dask, y, groups=da.zeros(X.shape[0], chunks=150))
    with pytest.raises(ValueError, match="at least two clusters"):
        clf.inference(
            X_dask, y, cov_type="cluster", groups=da.zeros(X.shape[0], chunks=150)
        )
    with pytest.raises(ValueError, match="groups must have shape"):
        clf.inference(
            X_dask, y, cov_type="cluster", groups=da.zeros((X.shape[0], 3), chunks=150)
        )


def test_inference_on_dask_skips_the_separation_program_with_a_warning(client):
    X = np.linspace(-1.0, 1.0, 40)[:, None]
    y = (X[:, 0] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = SoftmaxClassifier(C=np.inf, tol=1e-3).fit(X, y)
    X_dask = da.from_array(X, chunks=(10, 1))
    with pytest.warns(UserWarning, match="on a Dask cluster"):
        clf.inference(X_dask, y)


def test_dask_dataframe_fits_on_the_workers_with_names_and_categorical_labels(
    client, data
):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    X, y, _ = data
    names = [f"f{j}" for j in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=names)
    frame["label"] = pd.Categorical(np.array(["low", "mid", "high"])[y])
    ddf = dd.from_pandas(frame, npartitions=4)
    ours = SoftmaxClassifier(**TIGHT).fit(ddf[names], ddf["label"])
    memory = SoftmaxClassifier(**TIGHT).fit(frame[names], frame["label"].astype(str))
    np.testing.assert_array_equal(ours.feature_names_in_, names)
    np.testing.assert_array_equal(ours.classes_, memory.classes_)
    np.testing.assert_allclose(ours.coef_, memory.coef_, atol=1e-6)
    lazy = ours.predict_proba(ddf[names])
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(
        lazy.compute(), memory.predict_proba(frame[names]), atol=1e-6
    )
    # The names are checked once; the unnamed blocks do not warn one by one.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lazy.compute(scheduler="sync")
    # An unnamed dask array warns once, as a NumPy array does.
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        unnamed = ours.predict(ddf[names].to_dask_array(lengths=True))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(
            unnamed.compute(scheduler="sync"), memory.predict(frame[names])
        )
    with pytest.raises(ValueError, match="feature names"):
        ours.predict(ddf[names[::-1]])


def _texts(n, seed=0):
    rng = np.random.default_rng(seed)
    words = np.array("red green blue cat dog fish run walk swim".split())
    y = rng.integers(0, 3, n)
    docs = np.array(
        [" ".join(rng.choice(words[3 * k : 3 * k + 6], size=5)) for k in y % 2],
        dtype=object,
    )
    return docs, y


def test_sparse_chunks_from_a_vectorizer_equal_the_in_memory_sparse_fit(client):
    from scipy import sparse
    from sklearn.feature_extraction.text import HashingVectorizer

    docs, y = _texts(400)
    vectorizer = HashingVectorizer(n_features=32, alternate_sign=False, norm=None)
    X = vectorizer.transform(docs)
    chunked = da.from_array(docs, chunks=100).map_blocks(
        vectorizer.transform,
        new_axis=1,
        chunks=((100,) * 4, (32,)),
        dtype=np.float64,
        meta=sparse.csr_matrix((0, 0)),
    )
    labels = da.from_array(y, chunks=100)
    expected = SoftmaxClassifier(**TIGHT, C=0.5).fit(X, y)
    clf = SoftmaxClassifier(**TIGHT, C=0.5).fit(chunked, labels)
    np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(clf.intercept_, expected.intercept_, rtol=0, atol=1e-6)
    for method in PREDICT_METHODS:
        np.testing.assert_allclose(
            getattr(clf, method)(chunked).compute(),
            getattr(expected, method)(X),
            rtol=1e-6,
            atol=1e-9,
        )
    assert clf.score(chunked, labels) == expected.score(X, y)


def test_sparse_chunks_with_duplicate_entries_are_summed(client):
    from scipy import sparse

    rng = np.random.default_rng(0)
    dense = rng.standard_normal((200, 5))
    y = rng.integers(0, 3, 200)

    def with_duplicates(block):
        # Every entry split in two halves at the same position.
        coo = sparse.coo_matrix(block)
        rows, cols = np.r_[coo.row, coo.row], np.r_[coo.col, coo.col]
        data = np.r_[coo.data, coo.data] / 2.0
        order = np.argsort(rows, kind="stable")
        indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=block.shape[0]))]
        split = sparse.csr_matrix((data[order], cols[order], indptr), shape=block.shape)
        assert not split.has_canonical_format
        return split

    chunked = da.from_array(dense, chunks=(50, 5)).map_blocks(
        with_duplicates, dtype=np.float64, meta=sparse.csr_matrix((0, 0))
    )
    expected = SoftmaxClassifier(**TIGHT).fit(dense, y)
    clf = SoftmaxClassifier(**TIGHT).fit(chunked, da.from_array(y, chunks=50))
    np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=0, atol=1e-6)


def test_integer_sparse_chunks_are_fitted_in_float64(client):
    # A count vectorizer's chunks are integers whatever dtype the array declares.
    from scipy import sparse

    rng = np.random.default_rng(1)
    counts = rng.poisson(1.0, size=(200, 6))
    y = rng.integers(0, 3, 200)
    chunked = da.from_array(counts, chunks=(50, 6)).map_blocks(
        sparse.csr_matrix, dtype=np.float64, meta=sparse.csr_matrix((0, 0))
    )
    expected = SoftmaxClassifier(**TIGHT).fit(counts.astype(float), y)
    clf = SoftmaxClassifier(**TIGHT).fit(chunked, da.from_array(y, chunks=50))
    np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=0, atol=1e-6)


def test_path_with_warm_starts_equals_the_in_memory_path(client, data):
    from sksoftmax import softmax_path

    X, y, weights = data
    Cs = [0.01, 0.1, 1.0, 10.0]
    expected = softmax_path(X, y, Cs=Cs, sample_weight=weights, tol=1e-10)
    got = softmax_path(
        *_chunked(X, y, weights)[:2],
        Cs=Cs,
        tol=1e-10,
        sample_weight=_chunked(X, y, weights)[2],
    )
    for ours, theirs in zip(got, expected, strict=True):
        np.testing.assert_allclose(
            np.asarray(ours), np.asarray(theirs), rtol=0, atol=1e-6
        )


# Both sides run the same iterations; 1e-8 keeps the folds' fits (and the
# scores) equal to 1e-6 at a fraction of the round trips of TIGHT.
_CV_TOL = dict(tol=1e-8, max_iter=20000)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"Cs": 2}, marks=pytest.mark.slow),
        {"Cs": [0.01, 1.0], "scoring": "neg_log_loss", "class_weight": "balanced"},
        pytest.param(
            {"Cs": [0.1, 1.0], "refit": False, "l1_ratios": [0.0, 0.5]},
            marks=pytest.mark.slow,
        ),
    ],
    ids=["accuracy-grid", "log-loss-balanced", "elastic-net-averaged"],
)
def test_cv_on_chunk_folds_equals_in_memory_cv_on_the_same_folds(client, data, params):
    from sklearn.model_selection import KFold

    from sksoftmax import SoftmaxClassifierCV

    X, y, weights = data
    # Four chunks of 150 rows, four folds: each fold holds out one chunk, as
    # KFold(4) holds out 150 consecutive rows.
    expected = SoftmaxClassifierCV(**_CV_TOL, **params, cv=KFold(4)).fit(
        X, y, sample_weight=weights
    )
    with distributed.get_task_stream(client) as stream:
        clf = SoftmaxClassifierCV(**_CV_TOL, **params, cv=4).fit(
            *_chunked(X, y, weights)
        )
    assert {task["worker"] for task in stream.data} == set(
        client.scheduler_info()["workers"]
    )
    np.testing.assert_allclose(
        clf.cv_results_["mean_test_score"],
        expected.cv_results_["mean_test_score"],
        rtol=1e-6,
    )
    assert clf.C_ == pytest.approx(expected.C_, rel=1e-12)
    assert clf.l1_ratio_ == expected.l1_ratio_
    np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=0, atol=1e-5)
    np.testing.assert_allclose(clf.intercept_, expected.intercept_, rtol=0, atol=1e-5)


def test_cv_on_chunk_folds_with_a_class_missing_from_a_fold(client):
    from sklearn.model_selection import KFold

    from sksoftmax import SoftmaxClassifierCV

    rng = np.random.default_rng(3)
    X = rng.standard_normal((400, 3))
    y = np.digitize(X[:, 0] + rng.standard_normal(400), [-0.5, 0.5])
    y[:40] = 3  # class 3 only in the first chunk: its training fold lacks it
    X[:40, 1] += 2.0
    for scoring in ["accuracy", "neg_log_loss"]:
        params = dict(Cs=[1.0], scoring=scoring, refit=False, **_CV_TOL)
        expected = SoftmaxClassifierCV(**params, cv=KFold(4)).fit(X, y)
        clf = SoftmaxClassifierCV(**params, cv=4).fit(
            da.from_array(X, chunks=(100, 3)), da.from_array(y, chunks=100)
        )
        for k in range(4):
            np.testing.assert_allclose(
                clf.cv_results_[f"split{k}_test_score"],
                expected.cv_results_[f"split{k}_test_score"],
                rtol=1e-6,
            )
        assert clf.C_ == expected.C_


def test_cv_on_dask_refuses_what_it_cannot_do_on_the_workers(client, data):
    from sklearn.model_selection import StratifiedKFold

    from sksoftmax import SoftmaxClassifierCV

    X_dask, y_dask, _ = _chunked(*data)
    with pytest.raises(ValueError, match="scoring='accuracy' .* or 'neg_log_loss'"):
        SoftmaxClassifierCV(Cs=2, scoring="f1_macro").fit(X_dask, y_dask)
    with pytest.raises(ValueError, match="cv must be None or a number of folds"):
        SoftmaxClassifierCV(Cs=2, cv=StratifiedKFold(3)).fit(X_dask, y_dask)
    with pytest.raises(ValueError, match="4 row chunk\\(s\\) for 5 folds"):
        SoftmaxClassifierCV(Cs=2).fit(X_dask, y_dask)


@pytest.mark.parametrize("library", ["array_api_strict", "cupy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_device_chunks_go_through_the_array_api_engine_on_their_worker(
    client, data, dtype, library
):
    pytest.importorskip("array_api_compat")
    import dask

    if library == "cupy":
        # What dask-cuda users have: CuPy chunks on each worker's GPU.
        to_device = gpu_arrays(library)
        meta = to_device(np.empty((0, 0), dtype=dtype))
    else:
        to_device = pytest.importorskip(library).asarray
        meta = np.empty((0, 0))

    from sksoftmax._engines._dask import DaskEngine

    X, y, weights = data
    X = X.astype(dtype)
    # As CuPy chunks under dask-cuda: each worker holds its chunks as arrays
    # of another library, which the NumPy engine must not convert silently.
    X_device, y_dask, w_dask = _chunked(X, y, weights)
    X_device = X_device.map_blocks(to_device, dtype=dtype, meta=meta)
    engine = DaskEngine(X_device, y_dask, 3, w_dask, True)
    kinds = dask.compute(
        *[dask.delayed(lambda c: type(c.engine).__name__)(c) for c in engine._chunks]
    )
    assert set(kinds) == {"ArrayAPIEngine"}
    params = np.random.default_rng(0).normal(size=engine.n_params)
    expected = DaskEngine(*_chunked(X, y, weights)[:2], 3, w_dask, True)
    rtol = 1e-10 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(
        engine.loss_gradient(params)[1], expected.loss_gradient(params)[1], rtol=rtol
    )

    params = {"tol": 1e-10, "max_iter": 20000} if dtype == np.float64 else {}
    reference = SoftmaxClassifier(**params).fit(X, y, sample_weight=weights)
    clf = SoftmaxClassifier(**params).fit(X_device, y_dask, sample_weight=w_dask)
    atol = 1e-6 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(clf.coef_, reference.coef_, rtol=0, atol=atol)
    np.testing.assert_allclose(clf.intercept_, reference.intercept_, rtol=0, atol=atol)

    bad = X.copy()
    bad[200, 1] = np.nan
    bad_device = da.from_array(bad, chunks=(150, X.shape[1])).map_blocks(
        to_device, dtype=dtype, meta=meta
    )
    with pytest.raises(ValueError, match="NaN or infinity"):
        SoftmaxClassifier().fit(bad_device, y_dask)


def test_each_chunk_stays_on_one_worker(client):
    from sksoftmax._engines._dask import DaskEngine

    rng = np.random.default_rng(0)
    X = rng.standard_normal((8000, 20))
    y = np.argmax(X[:, :4] + rng.gumbel(size=(8000, 4)), axis=1)
    X_dask = da.from_array(X, chunks=(500, 20)).persist()
    y_dask = da.from_array(y, chunks=500).persist()
    engine = DaskEngine(X_dask, y_dask, 4, da.ones(8000, chunks=500), True)
    # The scheduler sizes a chunk by what it holds, not by a few bytes.
    sizes = client.run_on_scheduler(
        lambda dask_scheduler, keys: [dask_scheduler.tasks[k].nbytes for k in keys],
        keys=[chunk.key for chunk in engine._chunks],
    )
    assert min(sizes) >= 500 * 20 * 8
    params = np.zeros(engine.n_params)
    for _ in range(30):
        _, grad = engine.loss_gradient(params)
        params -= grad
    holders = client.who_has(list(engine._chunks))
    assert all(len(holders[chunk.key]) == 1 for chunk in engine._chunks)


def test_chunks_built_on_one_worker_are_moved_to_even_out_the_workers(client, data):
    import dask

    from sksoftmax._engines._dask import DaskEngine

    X, y, weights = data
    workers = sorted(client.scheduler_info()["workers"])
    first = workers[0]
    expected = SoftmaxClassifier(**TIGHT).fit(X, y, sample_weight=weights)
    # Eight chunks, all built by one worker: the restriction applies to every
    # task made in the context but the engine's own placements.
    with (
        dask.annotate(workers=[first], allow_other_workers=False),
        distributed.get_task_stream(client) as stream,
    ):
        X_dask, y_dask, weights_dask = _chunked(X, y, weights, rows=75)
        engine = DaskEngine(X_dask, y_dask, 3, weights_dask, True)
        holders = client.who_has(list(engine._chunks))
        clf = SoftmaxClassifier(**TIGHT).fit(*_chunked(X, y, weights, rows=75))
    built = [t["worker"] for t in stream.data if str(t["key"]).startswith("_Chunk-")]
    assert built == [first] * 16
    moved = [t["worker"] for t in stream.data if str(t["key"]).startswith("_moved-")]
    assert sorted(moved) == [w for w in workers[1:] for _ in range(4)] * 2
    # The engine reads where its chunks are after moving them: one holder
    # each, half of them on each worker.
    assert all(len(holders[chunk.key]) == 1 for chunk in engine._chunks)
    assert engine._homes == [next(iter(holders[c.key])) for c in engine._chunks]
    assert sorted(engine._homes) == sorted(workers * 4)
    assert engine.weight_sum == pytest.approx(weights.sum(), rel=1e-12)
    np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(clf.intercept_, expected.intercept_, rtol=0, atol=1e-6)


def test_chunks_stay_where_they_are_when_the_worker_they_go_to_is_gone(
    client, data, monkeypatch
):
    from sksoftmax._engines import _dask

    X, y, weights = data
    # A move to a worker that is not in the cluster would wait for it for ever.
    monkeypatch.setattr(_dask, "_moves", lambda *_: {0: "tcp://127.0.0.1:9"})
    X_dask, y_dask, weights_dask = _chunked(X, y, weights)
    engine = _dask.DaskEngine(X_dask, y_dask, 3, weights_dask, True)
    assert all(str(chunk.key).startswith("_Chunk-") for chunk in engine._chunks)
    assert None not in engine._homes
    assert engine.weight_sum == pytest.approx(weights.sum(), rel=1e-12)


def test_chunk_moves_even_out_the_bytes_with_the_fewest_moves():
    from sksoftmax._engines._dask import _moves

    workers = ["a", "b", "c", "d"]
    # Eight chunks of one size on one worker of four: two each, six moved.
    moves = _moves(["a"] * 8, [100] * 8, workers)
    assert len(moves) == 6
    held = ["a"] * 8
    for i, worker in moves.items():
        held[i] = worker
    assert sorted(held.count(w) for w in workers) == [2, 2, 2, 2]
    # Balanced within one chunk already: nothing moves.
    assert _moves(["a", "b", "c", "d", "a"], [100] * 5, workers) == {}
    # 19, 12, 14 and 15 of 60 chunks, the last one smaller: 15 each.
    homes = ["a"] * 19 + ["b"] * 12 + ["c"] * 14 + ["d"] * 15
    sizes = [100] * 59 + [60]
    moves = _moves(homes, sizes, workers)
    assert len(moves) == 4
    for i, worker in moves.items():
        homes[i] = worker
    assert sorted(homes.count(w) for w in workers) == [15, 15, 15, 15]
    # A large chunk stays rather than overshoot; small ones fill the gap.
    assert _moves(["a", "a", "a", "b"], [300, 50, 50, 200], ["a", "b"]) == {
        1: "b",
        2: "b",
    }
    # Empty chunks (a few bytes) weigh what they hold.
    assert _moves(["a"] * 3, [0, 0, 0], ["a", "b"]) == {}


def test_parquet_columns_fit_as_documented(tmp_path):
    pd = pytest.importorskip("pandas")
    dd = pytest.importorskip("dask.dataframe")
    pytest.importorskip("pyarrow")
    import dask

    rng = np.random.default_rng(0)
    parts = []
    for i in range(8):
        X = rng.standard_normal((200, 4))
        frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(4)])
        frame["label"] = (X[:, 0] > 0).astype(int) + (X[:, 1] > 1)
        frame.to_parquet(tmp_path / f"part{i}.parquet")
        parts.append(frame)
    whole = pd.concat(parts, ignore_index=True)
    features = [f"f{j}" for j in range(4)]
    # A column selection of a Parquet frame once broke the conversion to an
    # array (its partitions merged after their lengths were counted).
    with dask.config.set(scheduler="sync"):
        frame = dd.read_parquet(tmp_path)
        clf = SoftmaxClassifier(**TIGHT).fit(frame[features], frame["label"])
    expected = SoftmaxClassifier(**TIGHT).fit(whole[features], whole["label"])
    np.testing.assert_allclose(clf.coef_, expected.coef_, rtol=0, atol=1e-6)


def test_a_chunk_pickles_at_its_size_and_works_after():
    import pickle

    from sksoftmax._engines._dask import _Chunk

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 30))
    y = np.arange(20000) % 3
    chunk = _Chunk(X, y, rng.uniform(0.5, 2.0, 20000), 3, True)
    data = pickle.dumps(chunk)
    # The engine's row blocks are views of X: pickled one by one they
    # doubled the chunk on every spill or transfer.
    assert len(data) < 1.1 * X.nbytes
    assert chunk.__sizeof__() >= X.nbytes
    copy = pickle.loads(data)
    params = rng.normal(size=chunk.engine.n_params)
    value, grad = chunk.engine.loss_gradient(params)
    copy_value, copy_grad = copy.engine.loss_gradient(params)
    assert copy_value == pytest.approx(value, rel=1e-14)
    np.testing.assert_allclose(copy_grad, grad, rtol=1e-13, atol=1e-15)
    empty = pickle.loads(pickle.dumps(_Chunk(X[:5], y[:5], np.zeros(5), 3, True)))
    assert empty.engine is None and empty.weight_sum == 0.0


def test_constant_columns_pool_to_a_spread_of_zero_over_many_chunks(client):
    # Chunk means rounded one unit apart pooled into a spread of one unit
    # of rounding, which the preconditioner would have scaled up as a
    # feature. The first chunk, of negligible weight and far off in the last
    # column, must not serve as the origin of the pooling.
    from sksoftmax._engines import make_engine

    rng = np.random.default_rng(3)
    n = 101
    X = np.column_stack(
        [np.full(n, 0.1), np.ones(n), np.full(n, 1 / 3), rng.normal(size=n)]
    )
    y = np.arange(n) % 3
    weights = rng.uniform(0.0, 2.0, size=n)
    X[:7, 3], weights[:7] = 1e17, 1e-300
    X_in, y_in, weights_in = _chunked(X, y, weights, rows=7)
    mean, std = make_engine(X_in, y_in, 3, weights_in, True).column_moments()
    np.testing.assert_array_equal(mean[:3], X[0, :3])
    np.testing.assert_array_equal(std[:3], 0.0)
    np.testing.assert_allclose(mean[3], np.average(X[:, 3], weights=weights))
    np.testing.assert_allclose(
        std[3], np.sqrt(np.cov(X[:, 3], aweights=weights, ddof=0))
    )
