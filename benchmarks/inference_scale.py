"""Inference at many parameters: time, peak memory and a check of the result.

Fits ``n`` rows of ``d`` Gaussian features and ``K`` classes, then runs
``inference`` on its ``(K - 1)(d + 1)`` contrasts and reports the time of each
step and the process's peak resident memory (which includes the data). The
check: ``cov_params`` times the Hessian of the contrast objective, formed
column by column with finite differences of the gradient along a few random
directions, is the identity there.

    python benchmarks/inference_scale.py [--n 10000] [--d 2000] [--K 11] [--C 1.0]
"""

import argparse
import resource
import time

import numpy as np

from sksoftmax import SoftmaxClassifier
from sksoftmax._engines import make_engine
from sksoftmax._inference import _Contrasts
from sksoftmax._penalty import ElasticNet

from _common import environment


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--d", type=int, default=2000)
    parser.add_argument("--K", type=int, default=11)
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--cov-type", default="nonrobust")
    args = parser.parse_args()
    print(environment())
    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.d))
    signal = X @ rng.standard_normal((args.d, args.K)) / np.sqrt(args.d)
    y = np.argmax(signal + rng.gumbel(size=(args.n, args.K)), axis=1)
    n_params = (args.K - 1) * (args.d + 1)
    print(f"n={args.n} d={args.d} K={args.K} C={args.C}: {n_params} parameters")

    start = time.perf_counter()
    clf = SoftmaxClassifier(C=args.C).fit(X, y)
    print(f"fit {time.perf_counter() - start:.1f} s ({clf.n_iter_} iterations)")
    start = time.perf_counter()
    result = clf.inference(X, y, cov_type=args.cov_type)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    data = X.nbytes / 2**30
    square = 8 * n_params**2 / 2**30
    print(
        f"inference {elapsed:.1f} s, {result.n_newton_steps} Newton steps; "
        f"peak resident memory {peak:.1f} GiB (data {data:.2f} GiB, "
        f"one square of the parameters {square:.2f} GiB)"
    )
    se = np.sqrt(np.diag(result.cov_params))
    print(
        f"standard errors: all finite {bool(np.all(np.isfinite(se)))}, "
        f"median {np.median(se):.4g}; H cov u = u to {inverse_error(X, y, result):.2g}"
    )


def inverse_error(X, y, result):
    """Largest relative error of ``H (cov u) = u`` over three random ``u``."""
    n, d = X.shape
    K = len(result.classes) + 1
    weight_sum = float(n)
    engine = make_engine(X, y, K, np.ones(n), True)
    contrasts = _Contrasts(d, K, 0, True)
    penalty = ElasticNet.from_C(result.C, 0.0, weight_sum)
    theta = np.column_stack([result.intercept, result.coef])
    _, _, hessp = engine.hessian_product(contrasts.to_engine(theta))
    errors = []
    for u in np.random.default_rng(1).standard_normal((3, theta.size)):
        step = contrasts.to_engine(result.cov_params @ u)
        product = hessp(step)
        n_coef = d * K
        product[:n_coef] += penalty.l2 * step[:n_coef]
        back = weight_sum * contrasts.to_contrasts(product)
        errors.append(np.linalg.norm(back - u) / np.linalg.norm(u))
    return max(errors)


if __name__ == "__main__":
    main()
