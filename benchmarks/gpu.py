"""Fit on torch CUDA tensors: SoftmaxClassifier against LogisticRegression and a floor.

Both estimators fit the same float32 CUDA tensors under scikit-learn's Array
API dispatch, for a fixed number of L-BFGS iterations (tol=0), so the fit
times compare the same amount of optimization. The floor is one plain torch
loss-and-gradient evaluation (X @ W, log-softmax, X^T @ G) with the
parameters already on the device; "one evaluation" is our engine's
``loss_gradient`` including its host round trip. Medians of interleaved
repeats, timed with CUDA synchronization.

Targets: our fit at most 0.65x scikit-learn's time, one evaluation at most
1.3x the floor.

    SCIPY_ARRAY_API=1 python benchmarks/gpu.py            # 1M x 256, 32 classes
    SCIPY_ARRAY_API=1 python benchmarks/gpu.py --device cpu   # smaller smoke run
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


def synchronize(torch, device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="torch device (default cuda)")
    parser.add_argument("--n", type=int, help="samples (1,000,000; 20,000 on cpu)")
    parser.add_argument("--d", type=int, default=256)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--repeats", type=int, help="fit repeats (3; 1 on cpu)")
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
    d, k = args.d, args.k

    generator = torch.Generator(device=device).manual_seed(0)
    X = torch.randn(n, d, device=device, dtype=torch.float32, generator=generator)
    W_true = torch.randn(d, k, device=device, generator=generator) * 4 / d**0.5
    gumbel = -torch.log(
        -torch.log(torch.rand(n, k, device=device, generator=generator))
    )
    y = torch.argmax(X @ W_true + gumbel, dim=1)
    sync = lambda: synchronize(torch, device)  # noqa: E731

    def fit(estimator):
        with config_context(array_api_dispatch=True), warnings.catch_warnings():
            # A fixed number of iterations is the point here.
            warnings.simplefilter("ignore", ConvergenceWarning)
            return estimator.fit(X, y)

    ours = SoftmaxClassifier(tol=0.0, max_iter=args.iterations)
    theirs = LogisticRegression(tol=0.0, max_iter=args.iterations)
    fit(ours), fit(theirs)  # warm-up: kernels, caches, cuBLAS handles
    fits = median_times(
        {
            "SoftmaxClassifier": lambda: fit(ours),
            "LogisticRegression": lambda: fit(theirs),
        },
        repeats,
        sync,
    )

    loss = ArrayAPIEngine(X, y.cpu().numpy(), k, np.ones(n), True)
    params = np.random.default_rng(0).normal(size=loss.n_params) * 0.01
    W = torch.asarray(loss.unpack(params)[0], dtype=torch.float32, device=device)
    b = torch.asarray(loss.unpack(params)[1], dtype=torch.float32, device=device)
    onehot = torch.nn.functional.one_hot(y, k).to(torch.float32)

    def floor():
        logits = torch.addmm(b, X, W)
        log_proba = torch.log_softmax(logits, dim=1)
        value = -(log_proba * onehot).sum() / n
        G = (torch.exp(log_proba) - onehot) / n
        return value, X.T @ G, G.sum(dim=0)

    evaluations = median_times(
        {"floor": floor, "ours": lambda: loss.loss_gradient(params)},
        max(10, 5 * repeats),
        sync,
    )

    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.machine()
    )
    print(
        f"device: {device} ({name}); torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, scipy {scipy.__version__}, "
        f"numpy {np.__version__}, sksoftmax {sksoftmax.__version__}"
    )
    print(
        f"problem: {n} x {d}, {k} classes, float32, {args.iterations} L-BFGS iterations"
    )
    # Either may stop before max_iter once float32 allows no further decrease.
    n_iter_theirs = int(np.max(theirs.n_iter_.cpu().numpy()))
    for label, n_iter in [
        ("SoftmaxClassifier", ours.n_iter_),
        ("LogisticRegression", n_iter_theirs),
    ]:
        print(
            f"fit  {label:<19} {fits[label]:8.3f} s ({n_iter} iterations, "
            f"{fits[label] / max(n_iter, 1) * 1e3:.1f} ms each)"
        )
    ratio = fits["SoftmaxClassifier"] / fits["LogisticRegression"]
    print(f"     ratio ours / scikit-learn: {ratio:.2f}x (target <= 0.65x)")
    print(f"eval floor (torch)       {evaluations['floor'] * 1e3:8.2f} ms")
    print(f"eval ours (loss_gradient){evaluations['ours'] * 1e3:8.2f} ms")
    ratio = evaluations["ours"] / evaluations["floor"]
    print(f"     ratio ours / floor: {ratio:.2f}x (target <= 1.3x)")


if __name__ == "__main__":
    main()
