"""L-BFGS of other libraries on scikit-learn's multinomial objective.

Each peer minimizes the same function as ``LogisticRegression`` and
``SoftmaxClassifier``: the mean cross-entropy plus ``||W||^2 / (2 C n)``,
intercepts unpenalized, in float64, on dense data, and stops when its
largest gradient entry is at most ``tol``. A peer whose library is not
installed is absent from ``PEERS``.
"""

import time

import numpy as np
from scipy import sparse

from _common import settle

PEERS = {}

try:
    import torch
except ImportError:
    torch = None

try:
    import jax
    import jax.numpy as jnp
    import optax
except ImportError:
    jax = None


def _codes(y):
    classes, codes = np.unique(y, return_inverse=True)
    return classes.shape[0], codes


if torch is not None:

    def torch_lbfgs(X, y, C, tol):
        """PyTorch's L-BFGS (strong Wolfe line search), full batch, float64.

        Returns seconds, coef (K, d), intercept (K,), iterations.
        """
        n_classes, codes = _codes(y)
        settle()
        start = time.perf_counter()
        X_t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))
        y_t = torch.from_numpy(codes)
        W = torch.zeros(X.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS(
            [W, b],
            lr=1.0,
            max_iter=100_000,
            max_eval=200_000,
            tolerance_grad=tol,
            tolerance_change=0.0,
            history_size=10,
            line_search_fn="strong_wolfe",
        )
        scale = 1.0 / (2.0 * C * X.shape[0])

        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(X_t @ W + b, y_t)
            loss = loss + scale * torch.sum(W * W)
            loss.backward()
            return loss

        optimizer.step(closure)
        seconds = time.perf_counter() - start
        n_iter = optimizer.state[optimizer._params[0]]["n_iter"]
        return seconds, W.detach().numpy().T.copy(), b.detach().numpy().copy(), n_iter

    PEERS["torch lbfgs"] = torch_lbfgs


if jax is not None:
    jax.config.update("jax_enable_x64", True)

    def _jax_solver(n_features, n_classes, C, n_samples):
        scale = 1.0 / (2.0 * C * n_samples)

        def loss(params, X, codes):
            W, b = params
            logits = X @ W + b
            true = jnp.take_along_axis(logits, codes[:, None], axis=1)[:, 0]
            data = jnp.mean(jax.nn.logsumexp(logits, axis=1) - true)
            return data + scale * jnp.sum(W * W)

        optimizer = optax.lbfgs(memory_size=10)
        value_and_grad = optax.value_and_grad_from_state(loss)

        @jax.jit
        def run(X, codes, tol, max_iter):
            params = (
                jnp.zeros((n_features, n_classes)),
                jnp.zeros(n_classes),
            )
            state = optimizer.init(params)

            def step(carry):
                params, state, _, count = carry
                value, grad = value_and_grad(params, X, codes, state=state)
                updates, state = optimizer.update(
                    grad,
                    state,
                    params,
                    value=value,
                    grad=grad,
                    value_fn=loss,
                    X=X,
                    codes=codes,
                )
                params = optax.apply_updates(params, updates)
                largest = jnp.max(
                    jnp.asarray([jnp.max(jnp.abs(g)) for g in jax.tree.leaves(grad)])
                )
                return params, state, largest, count + 1

            def going(carry):
                _, _, largest, count = carry
                return (largest > tol) & (count < max_iter)

            params, _, _, count = jax.lax.while_loop(
                going, step, (params, state, jnp.inf, 0)
            )
            return params, count

        return run

    def jax_lbfgs(X, y, C, tol):
        """optax's L-BFGS (zoom line search) in one jit-compiled loop, float64.

        The first call for a problem's shapes compiles; the time returned is
        that of a second, compiled run. Returns seconds, coef, intercept,
        iterations.
        """
        n_classes, codes = _codes(y)
        X_j = jnp.asarray(np.asarray(X, dtype=np.float64))
        codes_j = jnp.asarray(codes)
        run = _jax_solver(X.shape[1], n_classes, C, X.shape[0])
        jax.block_until_ready(run(X_j, codes_j, tol, 100_000))
        settle()
        start = time.perf_counter()
        (W, b), count = jax.block_until_ready(run(X_j, codes_j, tol, 100_000))
        seconds = time.perf_counter() - start
        return seconds, np.asarray(W).T, np.asarray(b), int(count)

    PEERS["jax lbfgs (jit)"] = jax_lbfgs


def dense_only(X):
    """Whether the peers take ``X``: they run on dense arrays."""
    return not sparse.issparse(X)
