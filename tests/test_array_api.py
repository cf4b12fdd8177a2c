"""Array API input: the fit where the data live, outputs in the input's namespace.

scikit-learn's own Array API checks (namespaces, devices and dtypes of every
fitted attribute and method output) run in test_estimator_checks.py; these
tests add values against the NumPy fit and independent references.
"""

import numpy as np
import pytest
from scipy.optimize import approx_fprime
from sklearn import config_context
from sklearn.datasets import load_digits, make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.utils._array_api import get_namespace, move_to

from sksoftmax import SoftmaxClassifier
from sksoftmax._engines._array_api import ArrayAPIEngine
from sksoftmax._penalty import ElasticNet

from _devices import gpu_arrays
from _reference import objective

xps = pytest.importorskip("array_api_strict")
DEVICE = xps.Device("device1")


@pytest.fixture(scope="module")
def data():
    # Well conditioned and penalized: the optimum is unique and a tight tol
    # pins it to far below the tolerances compared against.
    X, y = make_classification(
        n_samples=120,
        n_features=5,
        n_informative=4,
        n_redundant=0,
        n_classes=3,
        random_state=0,
    )
    sample_weight = np.random.default_rng(0).uniform(0.5, 2.0, size=y.shape[0])
    return X, y, sample_weight


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_loss_matches_the_reference_objective_and_finite_differences(
    data, fit_intercept
):
    X, y, sample_weight = data
    C, n_classes = 0.5, 3
    engine = ArrayAPIEngine(
        xps.asarray(X, device=DEVICE), y, n_classes, sample_weight, fit_intercept
    )
    penalty = ElasticNet.from_C(C, 0.0, sample_weight.sum())
    rng = np.random.default_rng(1)
    params = rng.normal(size=engine.n_params)
    if not fit_intercept:
        params[-n_classes:] = 0.0

    def reference(p):
        W, b = engine.unpack(p)
        return objective(X, y, W.T, b, sample_weight, C)

    def loss_gradient(p):
        value, grad = engine.loss_gradient(p)
        W, _ = engine.unpack(p)
        return penalty.add_smooth(W, value, engine.unpack(grad)[0]), grad

    value, grad = loss_gradient(params)
    assert value == pytest.approx(reference(params), rel=1e-12)
    expected = approx_fprime(params, reference, 1e-7)
    if not fit_intercept:
        expected[-n_classes:] = 0.0
    np.testing.assert_allclose(grad, expected, atol=1e-6)

    _, grad_again, hessp = engine.hessian_product(params)
    engine_grad = engine.loss_gradient(params)[1]
    np.testing.assert_array_equal(grad_again, engine_grad)
    direction = rng.normal(size=engine.n_params)
    step = 1e-6
    difference = (
        loss_gradient(params + step * direction)[1]
        - loss_gradient(params - step * direction)[1]
    ) / (2 * step)
    product = hessp(direction)
    penalty.add_smooth_hessp(engine.unpack(direction)[0], engine.unpack(product)[0])
    np.testing.assert_allclose(product, difference, atol=1e-7)


def test_column_moments_are_the_weighted_mean_and_std(data):
    X, y, sample_weight = data
    loss = ArrayAPIEngine(
        xps.asarray(X, dtype=xps.float32, device=DEVICE), y, 3, sample_weight, True
    )
    mean, std = loss.column_moments()
    X32 = X.astype(np.float32).astype(np.float64)
    expected_mean = np.average(X32, axis=0, weights=sample_weight)
    expected_var = np.average((X32 - expected_mean) ** 2, axis=0, weights=sample_weight)
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(std, np.sqrt(expected_var), rtol=1e-6)


def _to_numpy(array):
    return move_to(array, xp=np, device="cpu")


def _namespace(array):
    with config_context(array_api_dispatch=True):
        return get_namespace(array)[0].__name__


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"fit_intercept": False, "class_weight": "balanced"},
        {"solver": "newton-cg", "tol": 1e-10},
    ],
)
def test_array_api_strict_float64_equals_the_numpy_fit(data, params):
    X, y, sample_weight = data
    params = {"tol": 1e-12, **params}
    expected = SoftmaxClassifier(**params).fit(X, y, sample_weight=sample_weight)
    X_xp = xps.asarray(X, device=DEVICE)
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier(**params).fit(
            X_xp,
            xps.asarray(y, device=DEVICE),
            sample_weight=xps.asarray(sample_weight, device=DEVICE),
        )
        outputs = {
            name: getattr(clf, name)(X_xp)
            for name in (
                "decision_function",
                "predict",
                "predict_proba",
                "predict_log_proba",
            )
        }
    for name in ("coef_", "intercept_"):
        attribute = getattr(clf, name)
        assert _namespace(attribute) == "array_api_strict"
        assert attribute.device == DEVICE
        assert attribute.dtype == xps.float64
        np.testing.assert_allclose(
            _to_numpy(attribute), getattr(expected, name), rtol=0, atol=1e-8
        )
    for name, output in outputs.items():
        assert _namespace(output) == "array_api_strict", name
        assert output.device == DEVICE
        np.testing.assert_allclose(
            _to_numpy(output), getattr(expected, name)(X), rtol=0, atol=1e-8
        )


def test_torch_float32_stays_float32_and_agrees_with_the_optimum():
    torch = pytest.importorskip("torch")
    X, y = make_classification(
        n_samples=200, n_features=6, n_informative=4, n_classes=4, random_state=1
    )
    X = X.astype(np.float32)
    # The optimum for these float32 values; a float32 fit resolves it to
    # about 2e-4 here, whatever its BLAS rounds differently.
    expected = SoftmaxClassifier(tol=1e-10).fit(X.astype(np.float64), y)
    X_t = torch.asarray(X)
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier(tol=1e-5).fit(X_t, torch.asarray(y))
        proba = clf.predict_proba(X_t)
        labels = clf.predict(X_t)
    assert isinstance(clf.coef_, torch.Tensor)
    assert clf.coef_.dtype == torch.float32 and proba.dtype == torch.float32
    assert isinstance(labels, torch.Tensor)
    np.testing.assert_allclose(clf.coef_.numpy(), expected.coef_, atol=1e-3)
    np.testing.assert_allclose(clf.intercept_.numpy(), expected.intercept_, atol=1e-3)
    np.testing.assert_allclose(proba.numpy(), expected.predict_proba(X), atol=1e-3)
    np.testing.assert_array_equal(labels.numpy(), expected.predict(X))


@pytest.mark.parametrize("solver", ["lbfgs", "newton-cg"])
def test_torch_float32_near_separation_reaches_the_optimum(solver):
    # Digits at C=1e6: most rows' loss is below float32's rounding of 1.
    # The engine lost them in log(total), and formed the gradient as
    # X^T D P - X^T D Y, whose float32 rounding exceeds the gradient there:
    # the fits ended without a warning 0.18 (lbfgs) and 0.37 (newton-cg)
    # above the optimum.
    torch = pytest.importorskip("torch")
    X, y = load_digits(return_X_y=True)
    X = X / 16
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier(C=1e6, solver=solver).fit(
            torch.asarray(X, dtype=torch.float32), torch.asarray(y)
        )
    reference = LogisticRegression(C=1e6, solver="newton-cholesky", tol=1e-10)
    reference.fit(X, y)
    ones = np.ones(y.shape[0])
    f_star = objective(X, y, reference.coef_, reference.intercept_, ones, 1e6)
    coef, intercept = clf.coef_.numpy(), clf.intercept_.numpy()
    gap = (objective(X, y, coef, intercept, ones, 1e6) - f_star) / f_star
    # 1.5e-7 and 1.3e-6 now.
    assert gap <= 1e-4


@pytest.mark.parametrize("library", ["torch", "array_api_strict"])
def test_a_float32_warm_newton_cg_refit_at_the_optimum_ends_at_once(library):
    # trust-ncg rejects steps there; judging them takes the machine epsilon
    # of the data's dtype, which numpy had to be told how to read.
    xp = pytest.importorskip(library)
    X, y = make_classification(
        n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    X_xp = xp.asarray(X.astype(np.float32))
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier(solver="newton-cg", C=1e4, warm_start=True)
        clf.fit(X_xp, y)
        for _ in range(2):
            clf.fit(X_xp, y)
            assert clf.n_iter_ <= 3


def test_string_labels_come_back_as_numpy(data):
    X, y, _ = data
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    X_xp = xps.asarray(X, device=DEVICE)
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier().fit(X_xp, names)
        labels = clf.predict(X_xp)
    assert isinstance(labels, np.ndarray)
    np.testing.assert_array_equal(labels, SoftmaxClassifier().fit(X, names).predict(X))


def test_without_dispatch_tensors_become_numpy_as_in_scikit_learn(data):
    torch = pytest.importorskip("torch")
    X, y, _ = data
    clf = SoftmaxClassifier().fit(torch.asarray(X), torch.asarray(y))
    assert isinstance(clf.coef_, np.ndarray)
    assert isinstance(clf.predict_proba(torch.asarray(X)), np.ndarray)
    np.testing.assert_allclose(clf.coef_, SoftmaxClassifier().fit(X, y).coef_)


@pytest.mark.parametrize("library", ["torch", "cupy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_gpu_fit_agrees_with_numpy_and_stays_on_the_device(data, library, dtype):
    to_gpu = gpu_arrays(library)
    X, y, sample_weight = data
    X = X.astype(dtype)
    params = {"C": 0.5, "tol": 1e-10 if dtype == np.float64 else 1e-4}
    expected = SoftmaxClassifier(**params).fit(X, y, sample_weight=sample_weight)
    X_gpu = to_gpu(X)
    with config_context(array_api_dispatch=True):
        clf = SoftmaxClassifier(**params).fit(
            X_gpu, to_gpu(y), sample_weight=to_gpu(sample_weight)
        )
        proba = clf.predict_proba(X_gpu)
        labels = clf.predict(X_gpu)
    for output in (clf.coef_, clf.intercept_, proba, labels):
        assert type(output) is type(X_gpu)
        assert output.device == X_gpu.device
    assert clf.coef_.dtype == X_gpu.dtype
    atol = 1e-6 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(_to_numpy(clf.coef_), expected.coef_, atol=atol)
    np.testing.assert_allclose(
        _to_numpy(clf.intercept_), expected.intercept_, atol=atol
    )
    np.testing.assert_allclose(_to_numpy(proba), expected.predict_proba(X), atol=atol)
    np.testing.assert_array_equal(_to_numpy(labels), expected.predict(X))
