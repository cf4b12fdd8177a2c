"""Time to solution: SoftmaxClassifier against LogisticRegression, side by side.

Each problem is fitted with default settings by our solvers and by
scikit-learn's lbfgs, newton-cg and newton-cholesky (max_iter raised to
10000 so that every solver runs to its own convergence), interleaved, and
the median of the repeats is reported; a solver over 20x slower than ours
is timed once. The objective of each result is
recomputed independently in float64; "gap" is ours minus scikit-learn lbfgs's,
relative. Peak extra memory is traced with tracemalloc in a separate fit and
given in units of n_samples * n_classes * itemsize.

    python benchmarks/run.py [--repeats 3] [--quick] [--only NAME] [--rst FILE]
                             [--blas-threads N] [--equal-accuracy]

prints a Markdown table; --rst also writes it as a reStructuredText list-table
(docs/benchmarks_table.rst is the one the documentation includes).

With --equal-accuracy it compares times at equal accuracy instead: f* is the
lowest objective of our two solvers and (where its Hessian is under 200 MB)
scikit-learn's newton-cholesky at tol=1e-10, and each solver (ours,
scikit-learn's three, and PyTorch's and a jit-compiled JAX L-BFGS when
installed, on dense data) is fitted at tol = 1e-1, 10^-1.5, 1e-2, ... until its
objective is within a relative 1e-6 of f*; the median time of that fit is
reported, with the tol it took and the gap each default fit reached. The
last column puts defaults side by side at equal objective: scikit-learn's
lbfgs with all its defaults (max_iter=100), and ours at the first tol, by
half decades, whose fit reaches the objective scikit-learn's reached.
"""

import argparse
import tracemalloc

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from sksoftmax import SoftmaxClassifier

from _common import dense_problem, environment, objective, sparse_problem, timed_fit
from _peers import PEERS, dense_only

OURS = ["lbfgs", "newton-cg"]
THEIRS = ["lbfgs", "newton-cg", "newton-cholesky"]


def unscaled(rng, d):
    return np.exp(rng.uniform(-2, 3, size=d))


def problems(quick):
    s = 10 if quick else 1
    return {
        f"dense float64 {100_000 // s}x100, 10 classes": lambda: dense_problem(
            100_000 // s, 100, 10
        ),
        f"dense float32 {100_000 // s}x100, 10 classes": lambda: dense_problem(
            100_000 // s, 100, 10, dtype=np.float32
        ),
        f"unscaled columns {100_000 // s}x100, 10 classes": lambda: dense_problem(
            100_000 // s, 100, 10, column_scales=unscaled
        ),
        f"sparse CSR {50_000 // s}x{20_000 // s}, 0.2% nnz, 20 classes": lambda: (
            sparse_problem(50_000 // s, 20_000 // s, 20, 0.002)
        ),
        "digits 1797x64, 10 classes": lambda: load_digits(return_X_y=True),
        f"many classes {20_000 // s}x50, 500 classes": lambda: dense_problem(
            20_000 // s, 50, 500
        ),
    }


def make(kind, solver):
    if kind == "ours":
        return SoftmaxClassifier(solver=solver)
    return LogisticRegression(solver=solver, max_iter=10_000)


def feasible(kind, solver, X, n_classes, limit=2e9):
    """newton-cholesky forms the (K (d+1))^2 Hessian; skip it past ``limit`` bytes."""
    if kind == "theirs" and solver == "newton-cholesky":
        return (n_classes * (X.shape[1] + 1)) ** 2 * 8 <= limit
    return True


def peak_memory(model, X, y):
    tracemalloc.start()
    try:
        timed_fit(model, X, y)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run_problem(X, y, repeats):
    n_classes = len(np.unique(y))
    contenders = [("ours", s) for s in OURS] + [("theirs", s) for s in THEIRS]
    contenders = [c for c in contenders if feasible(*c, X, n_classes)]
    times = {c: [] for c in contenders}
    models = {}
    for repeat in range(repeats):
        for c in contenders:
            # A solver 20x slower than ours is timed once: repeats would not
            # change the ratio's verdict and cost minutes (newton-cholesky).
            if repeat and times[c][0] > 20 * times[("ours", "lbfgs")][0]:
                continue
            models[c] = make(*c)
            times[c].append(timed_fit(models[c], X, y))
    unit = X.shape[0] * n_classes * X.dtype.itemsize
    return {
        c: {
            "time": float(np.median(times[c])),
            "n_iter": int(np.max(models[c].n_iter_)),
            "objective": objective(X, y, models[c].coef_, models[c].intercept_, 1.0),
            "memory": peak_memory(make(*c), X, y) / unit
            if c in [("ours", "lbfgs"), ("theirs", "lbfgs")]
            else None,
        }
        for c in contenders
    }


def row(name, result):
    ours, ref = result[("ours", "lbfgs")], result[("theirs", "lbfgs")]
    theirs = {s: r for (kind, s), r in result.items() if kind == "theirs"}
    fastest = min(theirs, key=lambda s: theirs[s]["time"])
    newton = result[("ours", "newton-cg")]
    cells = [
        name,
        f"{ours['time']:.3g}",
        f"{newton['time']:.3g}",
        " / ".join(
            f"{theirs[s]['time']:.3g}" if s in theirs else "skip" for s in THEIRS
        ),
        f"**{ours['time'] / ref['time']:.2f}x**",
        f"{ours['time'] / theirs[fastest]['time']:.2f}x ({fastest})",
        f"{ours['n_iter']} / {newton['n_iter']} / {ref['n_iter']}",
        f"{(ours['objective'] - ref['objective']) / abs(ref['objective']):+.1e}",
        f"{ours['memory']:.2f} / {ref['memory']:.2f}",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| problem | ours lbfgs (s) | ours newton-cg (s) | sklearn lbfgs / newton-cg / "
    "newton-cholesky (s) | ours vs sklearn lbfgs | ours vs fastest sklearn | "
    "iterations ours lbfgs / newton-cg / sklearn lbfgs | objective gap vs sklearn "
    "lbfgs | peak extra memory ours / sklearn (n·K·itemsize) |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def to_rst(caption, markdown_rows):
    """The Markdown table as a reStructuredText list-table."""
    # Library file names end in "_" or hold "_x", which reStructuredText
    # reads as references.
    lines = [
        caption.replace("_", "\\_"),
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
    ]
    for markdown in markdown_rows:
        if set(markdown) <= set("|-"):
            continue
        cells = [
            cell.strip().replace("**", "") for cell in markdown.strip("| ").split(" | ")
        ]
        lines.append("   * - " + cells[0])
        lines.extend(f"     - {cell}" for cell in cells[1:])
    return "\n".join(lines) + "\n"


# Equal accuracy: a relative objective gap of at most GAP from f*.
GAP = 1e-6
# A sweep stops once one fit takes this many times ours to reach GAP.
GIVE_UP = 100


def equal_accuracy_problems(quick):
    s = 10 if quick else 1

    def digits():
        X, y = load_digits(return_X_y=True)
        return X / 16.0, y

    return {
        f"dense f64 {100_000 // s}x100, 10 classes": lambda: dense_problem(
            100_000 // s, 100, 10
        ),
        "digits /16, 10 classes": digits,
        f"unscaled columns {100_000 // s}x100, 10 classes": lambda: dense_problem(
            100_000 // s, 100, 10, column_scales=unscaled
        ),
        f"sparse CSR {50_000 // s}x{20_000 // s}, 0.2%, 20 classes": lambda: (
            sparse_problem(50_000 // s, 20_000 // s, 20, 0.002)
        ),
        f"{15_000 // s}x40, 300 classes": lambda: dense_problem(15_000 // s, 40, 300),
    }


def estimator_fit(kind, solver):
    def fit(X, y, tol):
        if kind == "ours":
            model = SoftmaxClassifier(solver=solver, tol=tol, max_iter=100_000)
        else:
            model = LogisticRegression(solver=solver, tol=tol, max_iter=100_000)
        seconds = timed_fit(model, X, y)
        return seconds, model.coef_, model.intercept_, int(np.max(model.n_iter_))

    return fit


# At equal accuracy newton-cholesky is swept over many tols: past a Hessian
# of 200 MB (5000 parameters) one sweep takes hours (15k x 40 x 300: 12300
# parameters, over 100 s an iteration).
HESSIAN_LIMIT = 2e8


def equal_accuracy_contenders(X, n_classes):
    contenders = {f"ours {s}": estimator_fit("ours", s) for s in OURS}
    for s in THEIRS:
        if feasible("theirs", s, X, n_classes, HESSIAN_LIMIT):
            contenders[f"sklearn {s}"] = estimator_fit("theirs", s)
    if dense_only(X):
        for name, peer in PEERS.items():
            contenders[name] = lambda X, y, tol, peer=peer: peer(X, y, 1.0, tol)
    return contenders


def to_accuracy(fit, X, y, f_star, repeats, budget):
    """Median seconds, tol and iterations of the first half-decade tol reaching GAP."""
    for tol in HALF_DECADES:
        seconds, coef, intercept, n_iter = fit(X, y, tol)
        gap = (objective(X, y, coef, intercept, 1.0) - f_star) / abs(f_star)
        if gap <= GAP:
            times = [seconds] + [fit(X, y, tol)[0] for _ in range(repeats - 1)]
            return {"time": float(np.median(times)), "tol": tol, "n_iter": n_iter}
        if budget is not None and seconds > budget:
            return {"time": None, "slowest": seconds, "gap": gap, "tol": tol}
    return {"time": None, "slowest": seconds, "gap": gap, "tol": tol}


def to_objective(fit, X, y, target, repeats):
    """Median seconds and tol of the first tol (by half decades) reaching ``target``."""
    for tol in HALF_DECADES:
        seconds, coef, intercept, n_iter = fit(X, y, tol)
        if objective(X, y, coef, intercept, 1.0) <= target:
            times = [seconds] + [fit(X, y, tol)[0] for _ in range(repeats - 1)]
            return float(np.median(times)), tol, n_iter
    return None, tol, n_iter


HALF_DECADES = [10.0 ** (-k / 2) for k in range(2, 25)]


def sklearn_default(X, y, repeats):
    """scikit-learn's lbfgs with every default: median seconds, objective, n_iter."""
    times = []
    for _ in range(repeats):
        model = LogisticRegression()
        times.append(timed_fit(model, X, y))
    value = objective(X, y, model.coef_, model.intercept_, 1.0)
    return float(np.median(times)), value, int(np.max(model.n_iter_))


def equal_accuracy_row(name, X, y, repeats):
    n_classes = len(np.unique(y))
    contenders = equal_accuracy_contenders(X, n_classes)
    # f*: the lowest objective of tight fits by three methods where
    # newton-cholesky is feasible, of our two solvers otherwise.
    references = [contenders[f"ours {s}"](X, y, 1e-10) for s in OURS]
    if "sklearn newton-cholesky" in contenders:
        references.append(contenders["sklearn newton-cholesky"](X, y, 1e-10))
    f_star = min(objective(X, y, r[1], r[2], 1.0) for r in references)
    defaults = {}
    for label, fit in [
        ("ours", contenders["ours lbfgs"]),
        ("sklearn lbfgs", contenders["sklearn lbfgs"]),
    ]:
        _, coef, intercept, _ = fit(X, y, 1e-4)
        defaults[label] = (objective(X, y, coef, intercept, 1.0) - f_star) / f_star
    # Default against default at equal objective: scikit-learn's lbfgs with
    # its defaults (max_iter=100), and ours at the first tol that reaches
    # the objective it reached.
    their_time, their_value, their_iter = sklearn_default(X, y, repeats)
    our_time, our_tol, our_iter = to_objective(
        contenders["ours lbfgs"], X, y, their_value, repeats
    )
    results = {}
    ours = to_accuracy(contenders.pop("ours lbfgs"), X, y, f_star, repeats, None)
    results["ours lbfgs"] = ours
    for label, fit in contenders.items():
        results[label] = to_accuracy(fit, X, y, f_star, repeats, GIVE_UP * ours["time"])
    cells = [name]
    for label in EQUAL_ACCURACY_COLUMNS:
        result = results.get(label)
        if result is None:
            cells.append("–")
        elif result["time"] is None:
            cells.append(
                f"not reached (gap {result['gap']:.0e} at tol {result['tol']:.0e}, "
                f"{result['slowest']:.3g} s)"
            )
        else:
            ratio = result["time"] / ours["time"]
            cells.append(
                f"{result['time']:.3g} s, {result['n_iter']} it, tol "
                f"{result['tol']:.0e} ({ratio:.2f}x)"
            )
    cells.append(f"{defaults['ours']:.1e} / {defaults['sklearn lbfgs']:.1e}")
    if our_time is None:
        cells.append(f"not reached; sklearn {their_time:.3g} s, {their_iter} it")
    else:
        cells.append(
            f"{our_time:.3g} s ({our_iter} it, tol {our_tol:.0e}) vs "
            f"{their_time:.3g} s ({their_iter} it): **{our_time / their_time:.2f}x**"
        )
    return "| " + " | ".join(cells) + " |"


EQUAL_ACCURACY_COLUMNS = [
    "ours lbfgs",
    "ours newton-cg",
    "sklearn lbfgs",
    "sklearn newton-cg",
    "sklearn newton-cholesky",
    "torch lbfgs",
    "jax lbfgs (jit)",
]
EQUAL_ACCURACY_HEADER = (
    "| problem | "
    + " | ".join(EQUAL_ACCURACY_COLUMNS)
    + " | default-tol gap from f*, ours / sklearn lbfgs | to sklearn lbfgs "
    "default's objective, ours vs sklearn |\n|"
    + "---|"
    * (len(EQUAL_ACCURACY_COLUMNS) + 3)
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10x smaller problems")
    parser.add_argument("--only", help="run the problems whose name contains this")
    parser.add_argument("--rst", help="also write the table as reStructuredText here")
    parser.add_argument(
        "--blas-threads",
        type=int,
        help="limit every BLAS to this many threads (default: as the machine has)",
    )
    parser.add_argument(
        "--equal-accuracy",
        action="store_true",
        help=f"time to a relative objective gap of {GAP:g} from f*, with peers",
    )
    args = parser.parse_args()

    if args.equal_accuracy:
        title = (
            f"Time to a relative objective gap <= {GAP:g} from f*, median of "
            f"{args.repeats}; (ratio to ours lbfgs). "
        )
        header, table = EQUAL_ACCURACY_HEADER, equal_accuracy_problems(args.quick)
        make_row = equal_accuracy_row
    else:
        title = (
            f"Median of {args.repeats} interleaved fits, default settings "
            "(scikit-learn: max_iter=10000). "
        )
        header, table = HEADER, problems(args.quick)

        def make_row(name, X, y, repeats):
            return row(name, run_problem(X, y, repeats))

    with threadpool_limits(args.blas_threads, user_api="blas"):
        lines = [title + environment(), "", header]
        print("\n".join(lines), flush=True)
        for name, load in table.items():
            if args.only and args.only not in name:
                continue
            X, y = load()
            lines.append(make_row(name, X, y, args.repeats))
            print(lines[-1], flush=True)
    if args.rst:
        with open(args.rst, "w") as f:
            f.write(to_rst(lines[0], [header.splitlines()[0], *lines[3:]]))


if __name__ == "__main__":
    main()
