"""On a GPU: SoftmaxClassifier against LogisticRegression at equal accuracy.

Both estimators fit the same torch CUDA tensors under scikit-learn's Array
API dispatch. f* is the lower objective of our float64 lbfgs and newton-cg
fits at tol=1e-10; each contender (ours and scikit-learn's lbfgs, float32
and float64) is fitted at tol = 1e-1, 1e-2, ... until its objective,
recomputed in float64 on the device, is within ``--gap`` of f* (float32:
ten times that, about what its gradients resolve), and the median time of
that fit is reported; a sweep gives up once its fits took 100x ours or
``--sweep-limit`` seconds. The default-tol fits are reported with the gap each reached.

Then one loss-and-gradient evaluation, our engine's ``loss_gradient``
(host parameters in, host gradient out) against a floor of plain torch on
parameters already on the device (X @ W + b, log-softmax, X^T G), with the
CUDA kernels of each from the torch profiler; and the encoding of the
labels, on the device and on the host. Medians of interleaved repeats,
timed with CUDA synchronization.

    python benchmarks/gpu.py                # 1M x 256, 32 classes
    python benchmarks/gpu.py --device cpu   # a small smoke run on the CPU
"""

import argparse
import os
import platform
import sys
import time
import warnings

os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import sklearn  # noqa: E402
from sklearn import config_context  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import sksoftmax  # noqa: E402
from sksoftmax import SoftmaxClassifier  # noqa: E402
from sksoftmax._engines._array_api import ArrayAPIEngine  # noqa: E402
from sksoftmax._validation import encode_labels  # noqa: E402

TOLS = [10.0**-k for k in range(1, 11)]
GIVE_UP = 100


def median_times(cases, repeats, sync):
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, run in cases.items():
            sync()
            start = time.perf_counter()
            run()
            sync()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(t)) for name, t in times.items()}


def make_problem(torch, device, n, d, k, scales):
    """float32 features (columns scaled by exp(U(-2, 3)) unless unit) and labels."""
    generator = torch.Generator(device=device).manual_seed(0)
    X = torch.randn(n, d, device=device, dtype=torch.float32, generator=generator)
    W_true = torch.randn(d, k, device=device, generator=generator) * 4 / d**0.5
    gumbel = -torch.log(
        -torch.log(torch.rand(n, k, device=device, generator=generator))
    )
    y = torch.argmax(X @ W_true + gumbel, dim=1)
    if scales == "uneven":
        X *= torch.exp(torch.rand(d, device=device, generator=generator) * 5 - 2).to(
            torch.float32
        )
    return X, y


def objective(torch, X64, y, coef, intercept, C):
    """scikit-learn's multinomial objective in float64 on the device."""
    coef = torch.as_tensor(coef, device=X64.device).to(torch.float64)
    intercept = torch.as_tensor(intercept, device=X64.device).to(torch.float64)
    logits = torch.addmm(intercept, X64, coef.T)
    n = X64.shape[0]
    value = torch.logsumexp(logits, dim=1).sum() - logits[torch.arange(n), y].sum()
    return float(value / n + (coef**2).sum() / (2 * C * n))


def fit(estimator, X, y):
    with config_context(array_api_dispatch=True), warnings.catch_warnings():
        # The sweep over tol is the point here.
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X, y)


def make(kind, tol):
    if kind.startswith("ours"):
        solver = kind.split()[1]
        return SoftmaxClassifier(solver=solver, tol=tol, max_iter=100_000)
    return LogisticRegression(tol=tol, max_iter=100_000)


def n_iter(model):
    n_iter = model.n_iter_
    return int(np.max(n_iter.cpu().numpy() if hasattr(n_iter, "cpu") else n_iter))


def timed_fit(kind, tol, X, y, sync):
    model = make(kind, tol)
    sync()
    start = time.perf_counter()
    fit(model, X, y)
    sync()
    return time.perf_counter() - start, model


def to_accuracy(kind, X, y, gap_of, target, repeats, sync, budget):
    """Median seconds, tol and iterations of the first tol that reaches ``target``.

    The sweep gives up once one fit, or all of them together, took ``budget``.
    """
    spent = 0.0
    for tol in TOLS:
        seconds, model = timed_fit(kind, tol, X, y, sync)
        spent += seconds
        gap = gap_of(model)
        if gap <= target:
            times = [seconds]
            times += [timed_fit(kind, tol, X, y, sync)[0] for _ in range(repeats - 1)]
            return dict(time=float(np.median(times)), tol=tol, n_iter=n_iter(model))
        if budget is not None and spent > budget:
            break
    return dict(time=None, tol=tol, gap=gap, slowest=seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--n", type=int, help="samples (1,000,000; 20,000 on cpu)")
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--scales", choices=["uneven", "unit"], default="uneven")
    parser.add_argument("--gap", type=float, default=1e-6, help="float64 target")
    parser.add_argument("--repeats", type=int, help="fit repeats (3; 1 on cpu)")
    parser.add_argument(
        "--sweep-limit",
        type=float,
        default=120.0,
        help="seconds after which a peer's sweep gives up (default 120)",
    )
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args()

    try:
        import torch
    except ImportError:
        sys.exit("benchmarks/gpu.py needs PyTorch: pip install torch")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit(
            "No CUDA device is available to PyTorch "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}). "
            "Run on a machine with an NVIDIA GPU, or smoke-test with --device cpu."
        )
    on_cpu = device.type == "cpu"
    n = args.n or (20_000 if on_cpu else 1_000_000)
    repeats = args.repeats or (1 if on_cpu else 3)
    d, k, C = args.d, args.k, args.C

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    name = torch.cuda.get_device_name(device) if not on_cpu else platform.machine()
    print(
        f"device: {device} ({name}); torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, scipy {scipy.__version__}, "
        f"numpy {np.__version__}, sksoftmax {sksoftmax.__version__}"
    )
    X32, y = make_problem(torch, device, n, d, k, args.scales)
    X64 = X32.to(torch.float64)
    print(f"problem: {n} x {d}, {k} classes, C={C:g}, {args.scales} column scales")

    def gap_of(model):
        value = objective(torch, X64, y, model.coef_, model.intercept_, C)
        return (value - f_star) / abs(f_star)

    fit(make("ours lbfgs", 1e-4), X32, y)  # warm-up: kernels, caches, cuBLAS handles
    f_star = np.inf
    for solver in ["ours lbfgs", "ours newton-cg"]:
        model = fit(make(solver, 1e-10), X64, y)
        f_star = min(f_star, objective(torch, X64, y, model.coef_, model.intercept_, C))
    print(f"f* = {f_star:.12f}")

    print(
        f"\ntime to a relative gap <= {args.gap:g} from f* (float32: "
        f"{10 * args.gap:g}), median of {repeats}; ratio to ours lbfgs of the "
        "same dtype"
    )
    for dtype, X in [("float32", X32), ("float64", X64)]:
        target = args.gap * (10 if dtype == "float32" else 1)
        ours = None
        for kind in ["ours lbfgs", "ours newton-cg", "sklearn lbfgs"]:
            budget = (
                None if ours is None else min(GIVE_UP * ours["time"], args.sweep_limit)
            )
            result = to_accuracy(kind, X, y, gap_of, target, repeats, sync, budget)
            ours = ours or result
            if result["time"] is None:
                cell = (
                    f"not reached (gap {result['gap']:.1e} at tol {result['tol']:.0e}, "
                    f"{result['slowest']:.3g} s)"
                )
            else:
                cell = (
                    f"{result['time']:8.3f} s, {result['n_iter']:4d} it, tol "
                    f"{result['tol']:.0e} ({result['time'] / ours['time']:.2f}x)"
                )
            print(f"  {dtype} {kind:<15} {cell}", flush=True)
        for kind, model in [
            ("ours", SoftmaxClassifier()),
            ("sklearn lbfgs", LogisticRegression()),
        ]:
            seconds = median_times(
                {"": lambda m=model, X=X: fit(m, X, y)}, repeats, sync
            )[""]
            print(
                f"  {dtype} default {kind:<13} {seconds:8.3f} s, "
                f"{n_iter(model):4d} it, gap {gap_of(model):.1e}"
            )

    engine = ArrayAPIEngine(X32, y.cpu().numpy(), k, np.ones(n), True)
    params = np.random.default_rng(0).normal(size=engine.n_params) * 0.01
    W, b = (
        torch.asarray(p, dtype=torch.float32, device=device)
        for p in engine.unpack(params)
    )
    onehot = torch.nn.functional.one_hot(y, k).to(torch.float32)

    def floor():
        logits = torch.addmm(b, X32, W)
        log_proba = torch.log_softmax(logits, dim=1)
        value = -(log_proba * onehot).sum() / n
        G = (torch.exp(log_proba) - onehot) / n
        return value, X32.T @ G, G.sum(dim=0)

    cases = {"floor": floor, "ours": lambda: engine.loss_gradient(params)}
    evaluations = median_times(cases, max(20, 10 * repeats), sync)
    print(f"\none evaluation, float32 {n} x {d}, {k} classes")
    print(
        "  floor (torch, parameters on the device) "
        f"{evaluations['floor'] * 1e3:8.3f} ms"
    )
    print(
        f"  ours (loss_gradient, host to host)      {evaluations['ours'] * 1e3:8.3f} ms"
    )
    print(f"  ratio ours / floor: {evaluations['ours'] / evaluations['floor']:.2f}x")
    if not args.no_profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + (
            [] if on_cpu else [ProfilerActivity.CUDA]
        )
        for label, run in cases.items():
            with profile(activities=activities) as prof:
                for _ in range(10):
                    run()
                sync()
            sort = "self_cpu_time_total" if on_cpu else "self_cuda_time_total"
            print(f"\nprofile of 10 evaluations, {label}:")
            print(
                prof.key_averages().table(
                    sort_by=sort, row_limit=14, max_name_column_width=48
                )
            )

    y_host = y.cpu().numpy()
    with config_context(array_api_dispatch=True):
        labels = median_times(
            {
                "device": lambda: encode_labels(y),
                "host": lambda: encode_labels(y_host),
            },
            max(5, repeats),
            sync,
        )
    print(
        f"\nencoding {n} labels: on the device {labels['device'] * 1e3:.1f} ms, "
        f"on the host {labels['host'] * 1e3:.1f} ms"
    )


if __name__ == "__main__":
    main()
