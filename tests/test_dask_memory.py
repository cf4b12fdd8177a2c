"""benchmarks/dask_memory.py --small: Parquet on disk, a fit on a cluster, memory.

The benchmark writes a problem to Parquet, fits it from a dask DataFrame on a
local cluster of worker processes with a memory limit each, writes the lazy
predictions back to Parquet and fits the same data in memory. It runs once
for the module; each test checks one of its results.
"""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask.dataframe")
pytest.importorskip("distributed")
pq = pytest.importorskip("pyarrow.parquet")

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "dask_memory.py"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        # The benchmark puts its own directory on sys.path for benchmarks/_common.
        patch.setattr(sys, "path", list(sys.path))
        spec = importlib.util.spec_from_file_location("dask_memory", BENCHMARK)
        benchmark = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(benchmark)
    root = tmp_path_factory.mktemp("dask_memory") / "run"
    return benchmark.main(["--small", "--dir", str(root)])


def _read_table(directory, columns):
    """``columns`` of the Parquet files in ``directory``, in name order: one array."""
    paths = sorted(directory.glob("*.parquet"))
    tables = [pq.read_table(path, columns=columns) for path in paths]
    return np.concatenate([table.to_pandas().to_numpy() for table in tables])


def test_the_fit_on_the_cluster_equals_the_fit_in_memory(results):
    assert results["failure"] is None
    model, reference = results["model"], results["reference"]
    np.testing.assert_array_equal(model.classes_, reference.classes_)
    np.testing.assert_allclose(model.coef_, reference.coef_, rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        model.intercept_, reference.intercept_, rtol=0, atol=1e-6
    )
    assert results["coef_diff"] <= 1e-6
    assert results["intercept_diff"] <= 1e-6
    assert abs(results["objective_rel_diff"]) <= 1e-10


def test_the_predictions_written_to_parquet_are_the_in_memory_models(results):
    features = [f"f{j}" for j in range(results["d"])]
    X = _read_table(results["data_dir"], features)
    reference = results["reference"]
    names = [f"proba_{label}" for label in reference.classes_]
    proba = _read_table(results["predictions_dir"], names)
    assert proba.shape == (results["n"], results["k"])
    np.testing.assert_allclose(proba, reference.predict_proba(X), rtol=0, atol=1e-6)
    labels = reference.classes_[np.argmax(proba, axis=1)]
    np.testing.assert_array_equal(labels, reference.predict(X))
    assert results["label_mismatches"] == 0


def test_the_chunks_are_spread_and_every_worker_reports_its_peak_memory(results):
    workers = results["workers"]
    assert results["workers_lost"] == []
    assert len(workers) == 4
    # One chunk per file, each built once. The scheduler places them where
    # their files were read: one worker of four may be left without any.
    built = [w["chunks_built"] for w in workers]
    assert sum(built) == results["files"] > len(workers)
    assert sum(count > 0 for count in built) >= 2
    # The fit moves some of them to even the workers out, each at most once.
    assert sum(w["chunks_moved_in"] for w in workers) < results["files"]
    assert set(results["thresholds"]) == {w["address"] for w in workers}
    for w in workers:
        assert w["peak_rss"] >= w["peak_rss_fit"] >= w["started_rss"] > 0
        assert w["spilled_bytes"] is not None
    assert results["feature_bytes"] == results["n"] * results["d"] * 8
