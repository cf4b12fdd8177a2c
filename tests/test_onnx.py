"""ONNX export through skl2onnx, run with onnxruntime."""

import subprocess
import sys

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, load_wine
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sksoftmax import SoftmaxClassifier, register_onnx_converter

skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_onnx_converter()


def run_onnx(model, X, **options):
    onx = skl2onnx.to_onnx(model, X[:1], options={id(_last(model)): options})
    session = ort.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {session.get_inputs()[0].name: X})


def _last(model):
    return model.steps[-1][1] if isinstance(model, Pipeline) else model


def iris_labels(kind):
    X, y = load_iris(return_X_y=True)
    if kind == "strings":
        y = np.array(["setosa", "versicolor", "virginica"])[y]
    elif kind == "binary":
        y = np.where(y == 2, "virginica", "other")
    return X, y


@pytest.mark.parametrize("labels", ["integers", "strings", "binary"])
@pytest.mark.parametrize("in_pipeline", [False, True])
def test_float32_graph_matches_predict_and_predict_proba(labels, in_pipeline):
    X, y = iris_labels(labels)
    clf = SoftmaxClassifier(C=10.0)
    model = make_pipeline(StandardScaler(), clf) if in_pipeline else clf
    model.fit(X, y)

    onnx_labels, onnx_proba = run_onnx(model, X.astype(np.float32), zipmap=False)

    np.testing.assert_array_equal(onnx_labels, model.predict(X))
    assert onnx_proba.dtype == np.float32
    # Softmax over every row of coef_, the binary case's two rows included.
    Xt = StandardScaler().fit_transform(X) if in_pipeline else X
    expected = softmax(Xt @ clf.coef_.T + clf.intercept_, axis=1)
    np.testing.assert_allclose(onnx_proba, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(onnx_proba, model.predict_proba(X), rtol=0, atol=1e-5)


def test_double_graph_is_exact():
    X, y = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), SoftmaxClassifier()).fit(X, y)
    onnx_labels, onnx_proba = run_onnx(model, X, zipmap=False)
    assert onnx_proba.dtype == np.float64
    np.testing.assert_array_equal(onnx_labels, model.predict(X))
    np.testing.assert_allclose(onnx_proba, model.predict_proba(X), rtol=0, atol=1e-12)


def test_integer_input_is_computed_in_float():
    X, y = load_iris(return_X_y=True)
    X = np.round(X * 10).astype(np.int64)
    clf = SoftmaxClassifier().fit(X, y)
    onnx_labels, onnx_proba = run_onnx(clf, X, zipmap=False)
    assert onnx_proba.dtype == np.float32
    np.testing.assert_array_equal(onnx_labels, clf.predict(X))
    np.testing.assert_allclose(onnx_proba, clf.predict_proba(X), rtol=0, atol=1e-5)


def test_default_zipmap_output_is_a_dict_per_sample_as_for_logistic_regression():
    X, y = iris_labels("strings")
    clf = SoftmaxClassifier().fit(X, y)
    onx = skl2onnx.to_onnx(clf, X[:1].astype(np.float32))
    session = ort.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    labels, dicts = session.run(None, {"X": X[:5].astype(np.float32)})
    np.testing.assert_array_equal(labels, clf.predict(X[:5]))
    assert set(dicts[0]) == set(clf.classes_)
    proba = np.array([[row[c] for c in clf.classes_] for row in dicts])
    np.testing.assert_allclose(proba, clf.predict_proba(X[:5]), atol=1e-5)


def test_pipeline_with_column_transformer_on_a_dataframe():
    pd = pytest.importorskip("pandas")
    X, y = load_iris(return_X_y=True, as_frame=True)
    X["colour"] = np.array(["red", "green", "blue"])[np.arange(len(X)) % 3]
    model = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("onehot", OneHotEncoder(handle_unknown="ignore"), ["colour"]),
                        ("scale", StandardScaler(), list(X.columns[:4])),
                    ]
                ),
            ),
            ("classifier", SoftmaxClassifier()),
        ]
    ).fit(X, y)
    onx = skl2onnx.to_onnx(model, X[:1], options={"zipmap": False})
    session = ort.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    # One graph input per column, in the frame's order.
    feeds = {
        node.name: X[column].to_numpy().reshape(-1, 1)
        for node, column in zip(session.get_inputs(), X.columns, strict=True)
    }
    onnx_labels, onnx_proba = session.run(None, feeds)
    assert isinstance(X, pd.DataFrame)
    np.testing.assert_array_equal(onnx_labels, model.predict(X))
    np.testing.assert_allclose(onnx_proba, model.predict_proba(X), atol=1e-12)


def test_importing_sksoftmax_imports_no_optional_package():
    code = (
        "import sys, sksoftmax; "
        "print(sorted({'skl2onnx', 'onnx', 'onnxruntime', 'skops', 'polars'} "
        "& set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
