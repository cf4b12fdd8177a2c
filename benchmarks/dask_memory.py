"""Dask: a fit on more data than any one worker may hold, with its peak memory.

A synthetic problem of Gaussian features is written to Parquet file by file
(the writer never holds the whole data set). A local cluster of worker
processes, each with a ``memory_limit`` below the size of the data, reads it
with ``dask.dataframe.read_parquet`` and fits ``SoftmaxClassifier`` on the
frame's columns: the fit persists the row chunks across the workers, so each
should hold about its share. Reported: the wall time of each step; for every
worker its peak resident memory (``ru_maxrss``), how many chunks it built,
how many the fit moved to it to even out the workers' shares, the most it
held at once (more than it built and was given: chunks were copied to it),
how often it was paused for memory and the bytes it spilled to disk; then the
time to write the lazy ``predict_proba`` back to Parquet. The cluster is
closed and the same data are fitted in memory in this process: coefficients,
intercepts, objectives and the written probabilities are compared with that
reference.

    python benchmarks/dask_memory.py [--small] [--n 10000000] [--d 100] [--k 10]
                                     [--workers 4] [--memory-limit 1.5GB]
                                     [--memory-target F] [--memory-spill F]
                                     [--memory-pause F] [--arrow-pool POOL]
                                     [--partition-mb 64] [--dtype float32]
                                     [--C 1.0] [--tol 1e-6] [--dir DIR]

``--small`` runs the same pipeline on a tiny problem in float64 (the test
suite runs it); ``--dir`` keeps the data and predictions there instead of in
a temporary directory. ``--memory-target``, ``--memory-spill`` and
``--memory-pause`` set the workers' thresholds
(``distributed.worker.memory.target``, ``.spill``, ``.pause``) as fractions
of ``--memory-limit``; dask's own (0.6, 0.7, 0.8 unless configured) when not
given. The cluster line prints the thresholds the workers run with.
``--arrow-pool`` sets the workers' Arrow memory pool
(``ARROW_DEFAULT_MEMORY_POOL``: ``system``, ``jemalloc`` or ``mimalloc``);
pyarrow's default when not given. The default pool of this pyarrow,
mimalloc, kept about 0.45 GiB per worker resident after the Parquet reads,
none of it allocated (a worker that read eight of these files); ``system``
gave it back.
"""

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

# benchmarks/dask.py, next to this file, would shadow the dask package.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]
import dask  # noqa: E402
import dask.dataframe as dd  # noqa: E402
from dask.utils import format_bytes, parse_bytes  # noqa: E402
from distributed import (  # noqa: E402
    Client,
    KilledWorker,
    LocalCluster,
    get_task_stream,
)

sys.path.append(_here)

import numpy as np  # noqa: E402
import psutil  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from sksoftmax import SoftmaxClassifier  # noqa: E402

from _common import environment, objective  # noqa: E402

FULL = dict(
    n=10_000_000,
    d=100,
    k=10,
    workers=4,
    memory_limit="1.5GB",
    partition_mb=64.0,
    dtype="float32",
)
# Eight files of 5000 rows, two chunks per worker. float64, in which both fits
# reach the same optimum to 1e-6; float32 resolves it only to its precision.
SMALL = dict(
    n=40_000,
    d=20,
    k=5,
    workers=4,
    memory_limit="600MB",
    partition_mb=0.8,
    dtype="float64",
)
# float32 evaluations resolve the largest gradient entry to about 2e-7 (1M
# rows, 100 features, 10 classes); below that L-BFGS stalls, and the Newton
# polish that follows runs conjugate gradients to their limit of 4 Hessian
# products per parameter, each a pass over the data.
DEFAULT_TOL = {"float32": 1e-6, "float64": 1e-8}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a tiny problem")
    parser.add_argument("--n", type=int, help="rows")
    parser.add_argument("--d", type=int, help="features")
    parser.add_argument("--k", type=int, help="classes")
    parser.add_argument("--workers", type=int, help="worker processes")
    parser.add_argument("--memory-limit", help="per worker, e.g. 1.5GB")
    for name, default in (("target", 0.6), ("spill", 0.7), ("pause", 0.8)):
        parser.add_argument(
            f"--memory-{name}",
            type=float,
            help=f"distributed.worker.memory.{name}, a fraction of --memory-limit "
            f"(dask's default: {default})",
        )
    parser.add_argument(
        "--arrow-pool",
        choices=["system", "jemalloc", "mimalloc"],
        help="the workers' ARROW_DEFAULT_MEMORY_POOL (default: pyarrow's)",
    )
    parser.add_argument("--partition-mb", type=float, help="MiB of features per file")
    parser.add_argument("--dtype", choices=sorted(DEFAULT_TOL), help="of the features")
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--tol", type=float, help="1e-6 in float32, 1e-8 in float64")
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", help="keep data and predictions here (must not exist)")
    args = parser.parse_args(argv)
    for name, value in (SMALL if args.small else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.tol is None:
        args.tol = DEFAULT_TOL[args.dtype]
    return args


def write_data(directory, n, d, k, dtype, rows_per_file, seed):
    """Parquet files of ``rows_per_file`` rows: columns f0..f{d-1} and label.

    Each file has its own seed, so the data do not depend on how many files
    are written at once, and only one file's rows are ever in memory.

    Returns
    -------
    files : int
    disk_bytes : int
        Size of the files on disk.
    """
    rng = np.random.default_rng(seed)
    # Logits of standard deviation 2: the classes overlap, so the unpenalized
    # optimum is finite and the labels are not a function of the features.
    coef = (rng.standard_normal((d, k)) * 2 / np.sqrt(d)).astype(dtype)
    intercept = rng.standard_normal(k).astype(dtype)
    names = [f"f{j}" for j in range(d)]
    starts = range(0, n, rows_per_file)
    for index, start in enumerate(starts):
        piece = np.random.default_rng([seed, index])
        rows = min(rows_per_file, n - start)
        # Drawn column-major: each column is one contiguous Arrow buffer.
        columns = piece.standard_normal((d, rows), dtype=dtype)
        logits = columns.T @ coef + intercept
        label = np.argmax(logits + piece.gumbel(size=logits.shape), axis=1)
        table = pa.table([*columns, label], names=[*names, "label"])
        # Random floats defeat dictionary encoding: it made the files half as
        # large again as the data, and their writing several times slower.
        pq.write_table(
            table, directory / f"part-{index:05d}.parquet", use_dictionary=["label"]
        )
    disk_bytes = sum(path.stat().st_size for path in directory.iterdir())
    return len(starts), disk_bytes


def read_data(directory, d, dtype):
    """All Parquet files of ``directory`` in name order: X (C order), y."""
    paths = sorted(directory.glob("*.parquet"))
    n = sum(pq.ParquetFile(path).metadata.num_rows for path in paths)
    X = np.empty((n, d), dtype=dtype)
    y = np.empty(n, dtype=np.int64)
    start = 0
    for path in paths:
        table = pq.read_table(path)
        stop = start + table.num_rows
        for j in range(d):
            X[start:stop, j] = table.column(f"f{j}").to_numpy()
        y[start:stop] = table.column("label").to_numpy()
        start = stop
    return X, y


def read_probabilities(directory):
    """The written probability columns, in file order, as one array."""
    tables = [pq.read_table(path) for path in sorted(directory.glob("*.parquet"))]
    return np.concatenate(
        [np.column_stack([column.to_numpy() for column in t.columns]) for t in tables]
    )


def _is_chunk(key):
    # The engine persists dask.delayed(_Chunk) calls, and dask.delayed(_moved)
    # calls for the chunks it moves to even out the workers; key_split would
    # drop the underscore of their names.
    return str(key).startswith(("_Chunk-", "_moved-"))


def _is_built(key):
    return str(key).startswith("_Chunk-")


def _is_moved(key):
    return str(key).startswith("_moved-")


MEMORY_THRESHOLDS = ("target", "spill", "pause", "terminate")


def _arrow_pool():
    return pa.default_memory_pool().backend_name


def _thresholds(dask_worker):
    """The fractions of its memory limit this worker acts at (False: never).

    Those of its memory manager; the nanny, which terminates it, was given
    the same configuration.
    """
    manager = dask_worker.memory_manager
    return {
        "target": manager.memory_target_fraction,
        "spill": manager.memory_spill_fraction,
        "pause": manager.memory_pause_fraction,
        "terminate": dask.config.get("distributed.worker.memory.terminate"),
    }


def _peak_rss():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss():
    return psutil.Process().memory_info().rss


def _spilled_bytes(dask_worker):
    """Bytes this worker wrote to its spill directory, or None if it cannot spill."""
    metrics = getattr(dask_worker.data, "cumulative_metrics", None)
    if metrics is None:
        return None
    return metrics.get(("disk-write", "bytes"), 0.0)


def _pauses(client, addresses):
    """How often each worker was paused for memory, from the scheduler's events."""
    return {
        address: sum(
            message.get("action") == "worker-status-change"
            and message.get("status") == "paused"
            for _, message in client.get_events(address)
        )
        for address in addresses
    }


class Sampler:
    """Polls the scheduler while the cluster works.

    Records per worker the most row chunks it held at once and the most
    process memory its heartbeats reported (also for a worker that was
    killed). A chunk held by two workers at once was copied between them:
    ``most_copies`` counts such replicas.
    """

    def __init__(self, client, interval):
        self.client = client
        self.interval = interval
        self.most_chunks = {}
        self.most_memory = {}
        self.most_copies = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        held = {
            worker: [key for key in keys if _is_chunk(key)]
            for worker, keys in self.client.has_what().items()
        }
        for worker, chunks in held.items():
            self.most_chunks[worker] = max(self.most_chunks.get(worker, 0), len(chunks))
        total = sum(len(chunks) for chunks in held.values())
        distinct = len({key for chunks in held.values() for key in chunks})
        self.most_copies = max(self.most_copies, total - distinct)
        for worker, info in self.client.scheduler_info()["workers"].items():
            memory = info["metrics"]["memory"]
            self.most_memory[worker] = max(self.most_memory.get(worker, 0), memory)

    def _run(self):
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()


def fit_on_cluster(args, data_dir, predictions_dir, scratch):
    """Fit on a local cluster from Parquet, then write predict_proba to Parquet.

    Returns
    -------
    dict
        ``model`` (None if the fit failed), ``failure``, ``fit_s``,
        ``predict_s``, ``workers`` (one dict each), ``workers_lost``,
        ``chunk_copies``, ``client_peak_rss`` and the fit's ``warnings``.
    """
    features = [f"f{j}" for j in range(args.d)]
    # A worker killed for memory fails the fit rather than having its chunks
    # recomputed on the others, which would overload them in turn.
    config = {"distributed.scheduler.allowed-failures": 0}
    for name in ("target", "spill", "pause"):
        fraction = getattr(args, f"memory_{name}")
        if fraction is not None:
            config[f"distributed.worker.memory.{name}"] = fraction
    if args.arrow_pool is not None:
        # Read when pyarrow is imported, which a worker may do as it starts.
        environ = "distributed.nanny.pre-spawn-environ"
        config[f"{environ}.ARROW_DEFAULT_MEMORY_POOL"] = args.arrow_pool
    # The nannies pass the configuration they were created with to their
    # worker processes; the thresholds are read back from the workers.
    with (
        dask.config.set(config),
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            host="127.0.0.1",
            dashboard_address=None,
            local_directory=str(scratch),
        ) as cluster,
        Client(cluster) as client,
        client.as_current(),
    ):
        started = client.run(_rss)
        thresholds = client.run(_thresholds)
        arrow_pools = client.run(_arrow_pool)
        frame = dd.read_parquet(str(data_dir))
        clf = SoftmaxClassifier(C=args.C, tol=args.tol, max_iter=args.max_iter)
        failure = fit_s = predict_s = None
        with (
            warnings.catch_warnings(record=True) as caught,
            get_task_stream(client) as stream,
            Sampler(client, interval=0.2) as sampler,
        ):
            warnings.simplefilter("always")
            start = time.perf_counter()
            try:
                clf.fit(frame[features], frame["label"])
                fit_s = time.perf_counter() - start
            except KilledWorker as error:
                failure = f"{type(error).__name__}: {error}"
                clf = None
        # A worker being restarted after a kill does not answer.
        peak_fit = client.run(_peak_rss, on_error="ignore")
        chunks_built, chunks_moved = {}, {}
        for task in stream.data:
            for counts, kind in ((chunks_built, _is_built), (chunks_moved, _is_moved)):
                if kind(task["key"]):
                    counts[task["worker"]] = counts.get(task["worker"], 0) + 1

        if clf is not None:
            start = time.perf_counter()
            proba = clf.predict_proba(frame[features])
            columns = [f"proba_{label}" for label in clf.classes_]
            dd.from_dask_array(proba, columns=columns).to_parquet(
                str(predictions_dir),
                write_index=False,
                name_function=lambda i: f"part-{i:05d}.parquet",
            )
            predict_s = time.perf_counter() - start
        peak_all = client.run(_peak_rss, on_error="ignore")
        spilled = client.run(_spilled_bytes, on_error="ignore")
        pauses = _pauses(client, set(started) | set(sampler.most_memory))

    workers = [
        dict(
            address=address,
            started_rss=started.get(address),
            peak_rss_fit=peak_fit.get(address),
            peak_rss=peak_all.get(address),
            most_memory=sampler.most_memory.get(address, 0),
            chunks_built=chunks_built.get(address, 0),
            chunks_moved_in=chunks_moved.get(address, 0),
            most_chunks_held=sampler.most_chunks.get(address, 0),
            spilled_bytes=spilled.get(address),
            pauses=pauses.get(address, 0),
        )
        for address in sorted(set(started) | set(sampler.most_memory))
    ]
    return dict(
        model=clf,
        failure=failure,
        fit_s=fit_s,
        predict_s=predict_s,
        workers=workers,
        thresholds=thresholds,
        arrow_pools=arrow_pools,
        # A worker restarted after being killed has a new address.
        workers_lost=sorted(set(started) - set(peak_all)),
        chunk_copies=sampler.most_copies,
        client_peak_rss=_peak_rss(),
        warnings=sorted({f"{w.category.__name__}: {w.message}" for w in caught}),
    )


def compare(X, y, model, reference, C, predictions_dir):
    """How far the cluster's fit and its written probabilities are from memory's."""
    f_dask = objective(X, y, model.coef_, model.intercept_, C)
    f_memory = objective(X, y, reference.coef_, reference.intercept_, C)
    written = read_probabilities(predictions_dir)
    predicted = model.classes_[np.argmax(written, axis=1)]
    return dict(
        coef_diff=float(np.abs(model.coef_ - reference.coef_).max()),
        intercept_diff=float(np.abs(model.intercept_ - reference.intercept_).max()),
        objective=f_memory,
        objective_rel_diff=(f_dask - f_memory) / abs(f_memory),
        proba_diff=float(np.abs(written - reference.predict_proba(X)).max()),
        label_mismatches=int(np.count_nonzero(predicted != reference.predict(X))),
    )


def _size(value):
    return "n/a" if value is None else format_bytes(value)


def _fraction(value):
    return "never" if value is False else f"{value:g}"


def print_cluster(args, results):
    # Every worker had the same thresholds unless the configuration failed to
    # reach them: then each distinct set is printed.
    distinct = {tuple(t.values()) for t in results["thresholds"].values()}
    thresholds = "; ".join(
        ", ".join(
            f"{name} {_fraction(value)}"
            for name, value in zip(MEMORY_THRESHOLDS, values, strict=True)
        )
        for values in sorted(distinct, key=str)
    )
    print(
        f"cluster: {args.workers} worker processes x 1 thread, memory_limit "
        f"{format_bytes(results['memory_limit'])} each; thresholds (fractions of "
        f"it, as the workers read them): {thresholds}; Arrow memory pool "
        f"{', '.join(sorted(set(results['arrow_pools'].values())))}"
    )
    if results["failure"] is None:
        print(
            f"dask fit {results['fit_s']:.1f} s ({results['model'].n_iter_} "
            f"iterations); lazy predict_proba to Parquet {results['predict_s']:.1f} s"
        )
    else:
        print(f"dask fit FAILED: {results['failure']}")
    print(
        f"{'worker':>22} {'start RSS':>10} {'peak fit':>10} {'peak all':>10} "
        f"{'heartbeat':>10} {'built':>6} {'moved in':>8} {'most held':>9} "
        f"{'spilled':>10} pauses"
    )
    for w in results["workers"]:
        print(
            f"{w['address']:>22} {_size(w['started_rss']):>10} "
            f"{_size(w['peak_rss_fit']):>10} {_size(w['peak_rss']):>10} "
            f"{_size(w['most_memory']):>10} {w['chunks_built']:>6} "
            f"{w['chunks_moved_in']:>8} {w['most_chunks_held']:>9} "
            f"{_size(w['spilled_bytes']):>10} {w['pauses']}"
        )
    print(
        f"most chunk replicas at once: {results['chunk_copies']}; workers lost: "
        f"{', '.join(results['workers_lost']) or 'none'}; client peak RSS "
        f"{format_bytes(results['client_peak_rss'])}"
    )
    for warning in results["warnings"]:
        print(f"warning during the dask fit: {warning}")


def run(args, root):
    """The whole benchmark under ``root``; returns its figures."""
    data_dir, predictions_dir, scratch = (
        root / "data",
        root / "predictions",
        root / "dask-scratch",
    )
    data_dir.mkdir(parents=True)
    itemsize = np.dtype(args.dtype).itemsize
    rows_per_file = max(1, int(args.partition_mb * 2**20) // (itemsize * args.d))
    start = time.perf_counter()
    files, disk_bytes = write_data(
        data_dir, args.n, args.d, args.k, args.dtype, rows_per_file, args.seed
    )
    results = dict(
        n=args.n,
        d=args.d,
        k=args.k,
        files=files,
        rows_per_file=rows_per_file,
        feature_bytes=itemsize * args.n * args.d,
        disk_bytes=disk_bytes,
        memory_limit=parse_bytes(args.memory_limit),
        write_s=time.perf_counter() - start,
        data_dir=data_dir,
        predictions_dir=predictions_dir,
    )
    print(
        f"data: {args.n} x {args.d} {args.dtype}, K={args.k}: "
        f"{format_bytes(results['feature_bytes'])} of features in {files} files of "
        f"{rows_per_file} rows ({format_bytes(disk_bytes)} on disk), written in "
        f"{results['write_s']:.1f} s",
        flush=True,
    )
    results.update(fit_on_cluster(args, data_dir, predictions_dir, scratch))
    print_cluster(args, results)
    if results["failure"] is not None:
        return results

    X, y = read_data(data_dir, args.d, args.dtype)
    reference = SoftmaxClassifier(C=args.C, tol=args.tol, max_iter=args.max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        reference.fit(X, y)
        results["reference_fit_s"] = time.perf_counter() - start
    results["reference"] = reference
    results.update(compare(X, y, results["model"], reference, args.C, predictions_dir))
    print(
        f"in-memory fit {results['reference_fit_s']:.1f} s ({reference.n_iter_} "
        f"iterations), tol={args.tol:g}, C={args.C:g}"
    )
    for warning in sorted({f"{w.category.__name__}: {w.message}" for w in caught}):
        print(f"warning during the in-memory fit: {warning}")
    print(
        f"dask - memory: max |coef| {results['coef_diff']:.2e}, max |intercept| "
        f"{results['intercept_diff']:.2e}, objective {results['objective']:.10f} "
        f"(relative difference {results['objective_rel_diff']:.2e}); written "
        f"probabilities max |diff| {results['proba_diff']:.2e}, "
        f"{results['label_mismatches']} predicted labels differ"
    )
    return results


def main(argv=None):
    """Run the benchmark; ``argv`` as on the command line.

    Returns
    -------
    results : dict
        Sizes, times (seconds), per-worker memory (bytes), both fitted models
        and their differences; ``failure`` is None unless a worker was killed.
        ``data_dir`` and ``predictions_dir`` exist afterwards only with
        ``--dir``.
    """
    args = parse_args(argv)
    print(environment())
    with contextlib.ExitStack() as stack:
        if args.dir is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        else:
            root = Path(args.dir)
        return run(args, root)


if __name__ == "__main__":
    if main()["failure"] is not None:
        sys.exit(1)
