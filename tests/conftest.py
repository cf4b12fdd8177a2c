"""Fixtures and tolerances shared by the test modules."""

import pytest
from sklearn.datasets import load_iris

# Solver settings for comparisons against independent references: tight
# enough that the optimizer's stopping point is far below the tolerances the
# comparisons assert.
TIGHT = dict(tol=1e-10, max_iter=20000)
# Elastic-net comparisons match saga, whose own tol is 1e-9 in those tests.
TIGHT_ELASTIC_NET = dict(tol=1e-9, max_iter=20000)

PREDICT_METHODS = ["predict", "predict_proba", "predict_log_proba", "decision_function"]


@pytest.fixture
def iris():
    """Iris as ``(X, y)``, fresh for each test, so a test may modify it."""
    return load_iris(return_X_y=True)


@pytest.fixture(scope="session")
def dask_client():
    """One local Dask cluster (worker processes) for the whole test run."""
    pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client
