"""skops files, DataFrames and metadata routing."""

import numpy as np
import pytest
import sklearn
from sklearn.datasets import load_iris, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sksoftmax import SoftmaxClassifier

from conftest import TIGHT

# What docs/deploy.rst tells users to trust.
TRUSTED_TYPES = ["sksoftmax._classifier.SoftmaxClassifier"]


@pytest.fixture
def iris_frame():
    pytest.importorskip("pandas")
    data = load_iris(as_frame=True)
    y = data.target.map(dict(enumerate(data.target_names))).rename("species")
    return data.data, y


# skops


def test_skops_round_trip_gives_identical_predictions(tmp_path):
    sio = pytest.importorskip("skops.io")
    X, y = load_wine(return_X_y=True)
    model = make_pipeline(StandardScaler(), SoftmaxClassifier()).fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(model, path)

    # Our estimator is the only type to trust by hand.
    assert sio.get_untrusted_types(file=path) == TRUSTED_TYPES
    loaded = sio.load(path, trusted=TRUSTED_TYPES)

    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded[-1].coef_, model[-1].coef_)
    assert loaded[-1].get_params() == model[-1].get_params()


def test_skops_refuses_to_load_without_trust(tmp_path):
    sio = pytest.importorskip("skops.io")
    X, y = load_iris(return_X_y=True)
    path = tmp_path / "model.skops"
    sio.dump(SoftmaxClassifier().fit(X, y), path)
    with pytest.raises(Exception, match="Untrusted types"):
        sio.load(path)


# DataFrames


def test_pandas_frame_sets_feature_names_and_predicts_as_arrays(iris_frame):
    X, y = iris_frame
    clf = SoftmaxClassifier().fit(X, y)
    np.testing.assert_array_equal(clf.feature_names_in_, X.columns)
    reference = SoftmaxClassifier().fit(X.to_numpy(), y.to_numpy())
    np.testing.assert_array_equal(clf.coef_, reference.coef_)
    np.testing.assert_array_equal(clf.predict(X), reference.predict(X.to_numpy()))
    with pytest.raises(ValueError, match="feature names"):
        clf.predict(X[X.columns[::-1]])


def test_polars_frame_and_series(iris_frame):
    pl = pytest.importorskip("polars")
    X, y = iris_frame
    clf = SoftmaxClassifier().fit(pl.from_pandas(X), pl.from_pandas(y))
    np.testing.assert_array_equal(clf.feature_names_in_, X.columns)
    np.testing.assert_array_equal(clf.classes_, ["setosa", "versicolor", "virginica"])
    reference = SoftmaxClassifier().fit(X.to_numpy(), y.to_numpy())
    np.testing.assert_array_equal(clf.coef_, reference.coef_)
    np.testing.assert_array_equal(
        clf.predict(pl.from_pandas(X)), reference.predict(X.to_numpy())
    )


def _categorical(kind, y):
    if kind == "pandas":
        # Categories deliberately not in sorted order.
        return y.astype("category").cat.reorder_categories(
            ["virginica", "setosa", "versicolor"]
        )
    pl = pytest.importorskip("polars")
    return pl.from_pandas(y).cast(pl.Categorical)


@pytest.mark.parametrize("kind", ["strings", "pandas", "polars"])
def test_string_and_categorical_labels_match_logistic_regression(iris_frame, kind):
    X, y = iris_frame
    X = StandardScaler().fit_transform(X)
    labels = y if kind == "strings" else _categorical(kind, y)
    ours = SoftmaxClassifier(**TIGHT).fit(X, labels)
    theirs = LogisticRegression(**TIGHT).fit(X, y.to_numpy())
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    np.testing.assert_allclose(
        ours.predict_proba(X), theirs.predict_proba(X), atol=1e-6
    )


# Metadata routing


@pytest.fixture
def weighted_wine():
    X, y = load_wine(return_X_y=True)
    weights = np.random.default_rng(0).integers(0, 4, size=len(y))
    return X, y, weights


def test_sample_weight_is_routed_through_a_pipeline(weighted_wine):
    X, y, weights = weighted_wine
    with sklearn.config_context(enable_metadata_routing=True):
        model = make_pipeline(
            StandardScaler().set_fit_request(sample_weight=True),
            SoftmaxClassifier(**TIGHT).set_fit_request(sample_weight=True),
        )
        model.fit(X, y, sample_weight=weights.astype(float))
    # Integer weights are the same as repeating rows, for the scaler too.
    repeated = make_pipeline(StandardScaler(), SoftmaxClassifier(**TIGHT)).fit(
        np.repeat(X, weights, axis=0), np.repeat(y, weights)
    )
    np.testing.assert_allclose(
        model.predict_proba(X), repeated.predict_proba(X), rtol=0, atol=1e-6
    )
    unweighted = make_pipeline(StandardScaler(), SoftmaxClassifier(**TIGHT)).fit(X, y)
    assert np.max(np.abs(model.predict_proba(X) - unweighted.predict_proba(X))) > 1e-3


def test_unrequested_sample_weight_is_an_error_under_routing(weighted_wine):
    X, y, weights = weighted_wine
    with sklearn.config_context(enable_metadata_routing=True):
        model = make_pipeline(
            StandardScaler().set_fit_request(sample_weight=False), SoftmaxClassifier()
        )
        with pytest.raises(ValueError, match="SoftmaxClassifier.fit"):
            model.fit(X, y, sample_weight=weights)


def test_cross_validate_splits_and_routes_sample_weight(weighted_wine):
    X, y, weights = weighted_wine
    X = StandardScaler().fit_transform(X)
    cv = KFold(3, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        clf = (
            SoftmaxClassifier(**TIGHT)
            .set_fit_request(sample_weight=True)
            .set_score_request(sample_weight=True)
        )
        result = cross_validate(
            clf, X, y, cv=cv, params={"sample_weight": weights}, return_estimator=True
        )
    folds = zip(cv.split(X), result["estimator"], result["test_score"], strict=True)
    for (train, test), fitted, score in folds:
        hits = fitted.predict(X[test]) == y[test]
        assert score == pytest.approx(np.average(hits, weights=weights[test]))
        w = weights[train]
        repeated = SoftmaxClassifier(**TIGHT).fit(
            np.repeat(X[train], w, axis=0), np.repeat(y[train], w)
        )
        np.testing.assert_allclose(
            fitted.predict_proba(X), repeated.predict_proba(X), rtol=0, atol=1e-6
        )
