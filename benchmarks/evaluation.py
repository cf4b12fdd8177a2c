"""Cost of one loss-and-gradient evaluation against its floor.

The floor is the work no implementation can skip: X @ W, one exp over the
n x K block and X^T @ G, here with numpy at its defaults. scikit-learn's
LinearModelLoss.loss_gradient (what its lbfgs calls) is timed alongside.
Medians of interleaved repeats, in float64 and float32.

"ours" is an evaluation outside a fit, its products on the BLAS's threads;
"ours in a fit" is the same evaluation as a fit runs it, its row blocks in
threads of its own and every BLAS single-threaded (timed apart, after the
others: a BLAS's idle threads spin for a while after each threaded call and
would take a core from those threads).

The "layout" and "gradient product" grids time, over numbers of features
and classes, two ways of writing one block's logits and two of forming its
``X^T G^T`` (G the residual, held K x rows), as each of a fit's threads
over blocks runs them (the engine's block, the BLAS single-threaded). The
ratios depend on the BLAS's kernels (OPENBLAS_CORETYPE): the NumPy loss
engine chooses by dtype, shape and whether OpenBLAS runs its AVX-512 kernels.

The "exp" lines time numpy's exp on one block of shifted logits spread
down to -1000 (most of them below the log of the smallest normal float, as
near separation), plainly and floored as the engine does.

The "products" lines time one exact Hessian product with the probabilities
kept from the evaluation at its point and with them recomputed per block, as
the engine does where keeping them would cost the fit an n x K array.

    python benchmarks/evaluation.py [--n 100000] [--d 100] [--k 10] [--repeats 15]
"""

import argparse
import time

import numpy as np
from sklearn._loss.loss import HalfMultinomialLoss
from sklearn.linear_model._linear_loss import LinearModelLoss
from threadpoolctl import threadpool_limits

from sksoftmax._engines._numpy import NumPyEngine, _block_rows, _exp_shifted
from sksoftmax._penalty import ElasticNet
from sksoftmax._threads import blas_threads

from _common import environment, settle

GRID_FEATURES = [5, 10, 20, 50, 100, 300, 1000]
GRID_CLASSES = [3, 5, 10, 20, 50, 100, 300]


def median_times(cases, repeats):
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def evaluation(n, d, k, dtype, repeats):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.integers(0, k, size=n)
    l2 = 1.0 / n
    engine = NumPyEngine(X, y, k, np.ones(n), True)
    penalty = ElasticNet(l2=l2)
    params = rng.normal(size=engine.n_params) * 0.1
    W = engine.unpack(params)[0].astype(dtype)

    def ours():
        # The data term plus the L2 penalty, as scikit-learn's call computes.
        value, grad = engine.loss_gradient(params)
        return penalty.add_smooth(
            engine.unpack(params)[0], value, engine.unpack(grad)[0]
        )

    block = np.empty((n, k), dtype=dtype)

    def floor():
        np.matmul(X, W, out=block)
        np.exp(block, out=block)
        return X.T @ block

    theirs = LinearModelLoss(
        base_loss=HalfMultinomialLoss(n_classes=k), fit_intercept=True
    )
    coef = np.asfortranarray(rng.normal(size=(k, d + 1)) * 0.1).astype(dtype).ravel("F")
    y_float = y.astype(dtype)
    cases = {
        "floor": floor,
        "ours": ours,
        "scikit-learn": lambda: theirs.loss_gradient(
            coef, X, y_float, None, l2_reg_strength=l2
        ),
    }
    times = median_times(cases, repeats)
    # Inside a fit's context, as the solver calls it: the first evaluation
    # leaves every BLAS single-threaded until the context ends. Started once
    # the threads of the calls above are idle, as a fit's evaluations are.
    settle()
    with blas_threads:
        times["ours in a fit"] = median_times({"ours": ours}, repeats)["ours"]
    return times


def block_grid(dtype, repeats, cases):
    """Time of the second of two ways over the first, on one block, per d and K.

    ``cases(X, k, rng)`` gives the two ways for the block ``X``, the
    engine's rows for ``k`` classes, drawing what else they need from
    ``rng``; timed as each of a fit's threads over blocks runs them, the
    BLAS single-threaded.
    """
    rng = np.random.default_rng(2)
    ratios = {}
    settle()
    with threadpool_limits(limits=1, user_api="blas"):
        for d in GRID_FEATURES:
            for k in GRID_CLASSES:
                X = rng.normal(size=(_block_rows(dtype, k), d)).astype(dtype)
                first, second = cases(X, k, rng)
                t = median_times(
                    {
                        "first": lambda f=first: [f() for _ in range(20)],
                        "second": lambda f=second: [f() for _ in range(20)],
                    },
                    repeats,
                )
                ratios[d, k] = t["second"] / t["first"]
    return ratios


def layout(X, k, rng):
    """Logits written rows x K then copied K x rows, or written K x rows."""
    W = rng.normal(size=(X.shape[1], k)).astype(X.dtype)
    class_major = np.empty((k, X.shape[0]), dtype=X.dtype)
    row_major = np.empty((X.shape[0], k), dtype=X.dtype)

    def via_rows():
        np.matmul(X, W, out=row_major)
        class_major[...] = row_major.T

    return via_rows, lambda: np.matmul(W.T, X.T, out=class_major)


def gradient_product(X, k, rng):
    """``X^T G^T`` as written, or as ``(G X)^T``."""
    G = rng.normal(size=(k, X.shape[0])).astype(X.dtype)
    return lambda: X.T @ G.T, lambda: (G @ X).T


def exp_floor(k, repeats, rows=3276):
    rng = np.random.default_rng(3)
    logits = rng.uniform(-1000.0, 0.0, size=(k, rows))
    work = np.empty_like(logits)

    def plain():
        np.exp(logits, out=work)

    def floored():
        work[...] = logits
        _exp_shifted(work, True)

    return median_times(
        {
            name: lambda f=f: [f() for _ in range(20)]
            for name, f in [("plain", plain), ("floored", floored)]
        },
        repeats,
    )


def products(n, d, k, dtype, repeats):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(n, d)).astype(dtype)
    y = rng.integers(0, k, size=n)
    params = rng.normal(size=(d + 1) * k) * 0.1
    direction = rng.normal(size=params.size)
    cases = {}
    for name, keep in [("kept", True), ("recomputed", False)]:
        engine = NumPyEngine(X, y, k, np.ones(n), True)
        engine.keeps_proba = keep
        hessp = engine.hessian_product(params)[2]
        cases[name] = lambda hessp=hessp: hessp(direction)
    settle()
    with blas_threads:
        return median_times(cases, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(environment())
    print(
        f"\none evaluation, {args.n} x {args.d}, {args.k} classes (ms, ratio to floor)"
    )
    for dtype in [np.float64, np.float32]:
        t = evaluation(args.n, args.d, args.k, dtype, args.repeats)
        cells = ", ".join(
            f"{name} {s * 1e3:.1f} ({s / t['floor']:.2f}x)" for name, s in t.items()
        )
        print(f"  {np.dtype(dtype).name}: {cells}")
    for title, cases in [
        (
            "layout of one block's logits: writing K x rows over rows x K and a copy",
            layout,
        ),
        ("gradient product of one block: (G X)^T over X^T G^T", gradient_product),
    ]:
        print(f"\n{title}\n(in a fit; rows: features, columns: classes)")
        for dtype in [np.float64, np.float32]:
            ratios = block_grid(dtype, args.repeats, cases)
            name = np.dtype(dtype).name
            print(f"  {name:>7}" + "".join(f"{k:6d}" for k in GRID_CLASSES))
            for d in GRID_FEATURES:
                print(
                    f"  {d:7d}" + "".join(f"{ratios[d, k]:6.2f}" for k in GRID_CLASSES)
                )
    t = exp_floor(args.k, args.repeats)
    print(
        "\nexp of one block's shifted logits, float64, 3276 rows, spread to -1000 "
        f"(ms per 20): plain {t['plain'] * 1e3:.2f}, floored {t['floored'] * 1e3:.2f}"
    )
    print("\none exact Hessian product in a fit, probabilities kept or recomputed (ms)")
    for n, d, k in [(args.n, args.d, args.k), (15_000, 40, 300)]:
        for dtype in [np.float64, np.float32]:
            t = products(n, d, k, dtype, args.repeats)
            print(
                f"  {n} x {d}, {k} classes, {np.dtype(dtype).name}: "
                f"kept {t['kept'] * 1e3:.1f}, recomputed {t['recomputed'] * 1e3:.1f} "
                f"({t['recomputed'] / t['kept']:.2f}x)"
            )


if __name__ == "__main__":
    main()
