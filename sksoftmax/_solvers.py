"""Optimizers: an engine and a penalty in, a :class:`SolverResult` out.

A solver minimizes the engine's data term plus the penalty, starting from a
given point. It knows nothing of scikit-learn. Each solver declares whether
it handles the L1 part of a penalty; :func:`solve` refuses the others with
that declaration's message.
"""

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult, minimize
from scipy.sparse.linalg import LinearOperator, cg

from ._engines import LossEngine, epsilon
from ._penalty import ElasticNet


@dataclass
class SolverResult:
    """Outcome of one optimization.

    Attributes
    ----------
    params : ndarray
        The final flat parameter vector.
    value : float
        Objective at ``params``, penalty included.
    grad_max : float
        Largest absolute entry of the (minimum-norm sub)gradient at
        ``params``: the quantity ``tol`` bounds.
    n_iter : int
        Iterations taken.
    converged : bool
        Whether the stopping rule on ``tol`` was met.
    message : str
        The optimizer's own account of why it stopped.
    """

    params: np.ndarray
    value: float
    grad_max: float
    n_iter: int
    converged: bool
    message: str


# Typical curvature of the cross-entropy per unit of feature variance near a
# fit, p(1 - p) averaged over samples and classes; it sets how the penalty
# enters the preconditioner below. Chosen on digits, wine, iris and breast
# cancer, raw and rescaled: 1/64 took 5x fewer iterations than plain
# standardization and 1/4 or 1/256 were within 30% of it.
_CURVATURE = 1.0 / 64.0


class _Preconditioned:
    """Data term plus penalty in preconditioned coordinates, remembering its last point.

    With column means ``mu`` and scales ``sigma``, the change of variables
    ``W = W' / sigma`` (row-wise), ``b = b' - mu^T W`` gives
    ``X W + b = ((X - mu) / sigma) W' + b'``: the optimizer sees centred,
    scaled features, yet ``X`` is never copied (sparse input stays sparse).
    The objective is unchanged, penalty included, since it is evaluated on
    the original ``W``.

    ``sigma_j^2 = var_j + lambda_2 / c`` makes the diagonal of the Hessian,
    about ``c * var_j + lambda_2`` for column j, the same ``c`` for every
    column: plain standardization would make the penalty ``lambda_2 / var_j``
    stiff on nearly constant columns. Without an intercept there is nothing
    to absorb the centring, so the scale uses the raw second moment. The
    scale is formed as a hypotenuse of standard deviations, never of
    squares, so that features of 1e-300 or 1e300 and a ``lambda_2`` near the
    float maximum still give finite, positive scales.

    The L1 part of the penalty is not in the value returned to the
    optimizer (see :class:`_Split`), but it is in :attr:`objective` and
    :meth:`stationarity`.
    """

    second_order = False

    def __init__(self, engine: LossEngine, penalty: ElasticNet, *, second_order=False):
        self.engine = engine
        self.penalty = penalty
        self.second_order = second_order
        mean, std = engine.column_moments()
        rms = np.hypot(std, mean)
        # Features' own scale, capped at 1: the gradient with respect to a
        # coefficient of a feature of tiny scale is tiny everywhere, so tol
        # applies to it divided by that scale too.
        self._rms = np.where(rms > 0.0, np.minimum(rms, 1.0), 1.0)
        # A column constant to rounding is a second intercept: centring it
        # would scale it by its rounding noise, and the intercept's shift
        # b = b' - mu^T W would cancel catastrophically. It is scaled as is.
        # Centred, a column makes the logits X W + b, in X's dtype, cancel
        # with an error of about eps * rms / std of the feature's own
        # contribution. A column is centred only where that is at most a
        # quarter. On iris, wine and a synthetic problem with one column
        # offset until its spread was 0.3 to 25 units of eps * rms, float32
        # and float64, this left at most 0.10 of excess log-loss against a
        # fit on the same values near zero (where the column was scaled as
        # is and its information lost); centring from half a unit up left
        # up to 1.09 (wine, float32, 0.5 units), and so did the old fixed
        # 1e-8 of rms in float32. The moments are exact enough for this
        # (see LossEngine.column_moments).
        constant = std <= 4.0 * epsilon(engine.dtype) * rms
        mean = np.where(constant, 0.0, mean)
        std = np.where(constant, rms, std)
        if not engine.fit_intercept:
            std, mean = np.hypot(std, mean), np.zeros_like(mean)
        scale = np.hypot(std, np.sqrt(penalty.l2) / np.sqrt(_CURVATURE))
        self.mean = mean
        self.std = np.where(scale > 0.0, scale, 1.0)
        self.params = None
        self.data_value = None
        self.value = None
        self.grad = None
        self._hessp = None
        self.n_products = 0

    def to_original(self, params_std):
        """``M @ params_std``: standardized coordinates to W and b."""
        params = params_std.copy()
        W, b = self.engine.unpack(params)
        W /= self.std[:, None]
        b -= self.mean @ W
        return params

    def from_original(self, params):
        """The inverse of :meth:`to_original`."""
        params_std = params.copy()
        W, b = self.engine.unpack(params_std)
        b += self.mean @ W
        W *= self.std[:, None]
        return params_std

    def _transpose_map(self, grad):
        """``M^T @ grad``: a gradient in W and b to standardized coordinates."""
        grad_std = grad.copy()
        grad_W, grad_b = self.engine.unpack(grad_std)
        grad_W -= np.outer(self.mean, grad_b)
        grad_W /= self.std[:, None]
        return grad_std

    def _data_term(self):
        """The engine's value and gradient at ``self.params``."""
        if self.second_order:
            value, grad, self._hessp = self.engine.hessian_product(self.params)
            return value, grad
        return self.engine.loss_gradient(self.params)

    def __call__(self, params_std):
        """Value and gradient at ``params_std``; the last point's are kept."""
        params = self.to_original(params_std)
        if self.params is None or not np.array_equal(params, self.params):
            self.params = params
            self._hessp = None
            value, grad = self._data_term()
            self.data_value = value
            W, _ = self.engine.unpack(params)
            self.value = self.penalty.add_smooth(W, value, self.engine.unpack(grad)[0])
            self.grad = grad
        return self.value, self._transpose_map(self.grad)

    @property
    def scaled_grad(self):
        """The gradient at the last point, in the preconditioned coordinates."""
        return self._transpose_map(self.grad)

    def hessp(self, params_std, direction_std):
        """``M^T H M direction`` with H the Hessian at ``params_std``.

        Without ``second_order`` the products at a point are made at its
        first product: lbfgs checks its stop with a few of them.
        """
        self(params_std)
        if self._hessp is None:
            curvature_at = getattr(self.engine, "curvature_at", None)
            self._hessp = (
                curvature_at(self.params)
                if curvature_at is not None
                else self.engine.hessian_product(self.params)[2]
            )
        self.n_products += 1
        direction = self.to_original(direction_std)
        product = self._hessp(direction)
        self.penalty.add_smooth_hessp(
            self.engine.unpack(direction)[0], self.engine.unpack(product)[0]
        )
        return self._transpose_map(product)

    def make_exact(self):
        """Make the Hessian products exact from here on (here they already are)."""

    def penalty_ray_curvature(self):
        """The penalty's ``x^T H x`` at the last point ``x``: of the whole, a part.

        ``x`` maps to the coefficients ``W`` themselves, so this is the
        penalty's curvature along ``W``.
        """
        W = self.engine.unpack(self.params)[0]
        product = np.zeros_like(W)
        self.penalty.add_smooth_hessp(W, product)
        with np.errstate(over="ignore", invalid="ignore"):
            return float(np.vdot(W, product))

    def ray_curvature(self, params_std):
        """``x^T H x`` at ``x = params_std``: along the ray that scales every logit.

        One pass over the data where the engine computes it without a
        Hessian product, else one product (exact once :meth:`make_exact`).
        """
        self(params_std)
        ray_curvature = getattr(self.engine, "ray_curvature", None)
        if ray_curvature is None:
            return float(params_std @ self.hessp(params_std, params_std))
        return ray_curvature(self.params) + self.penalty_ray_curvature()

    def steepest_gain(self, params_std):
        """What the best step along the gradient promises at ``params_std``.

        On the quadratic model, ``(g^T g)^2 / (2 g^T H g)``: one product, no
        solve, and at most the model's whole gain. Infinite where the
        curvature along ``g`` is not positive, which only rounding makes.
        """
        self(params_std)
        grad = self.scaled_grad
        if not grad.any():
            return 0.0
        curvature = float(grad @ self.hessp(params_std, grad))
        return float(grad @ grad) ** 2 / (2.0 * curvature) if curvature > 0 else np.inf

    @property
    def objective(self):
        """Objective at the last point, penalty included, in original coordinates."""
        return self.data_value + self.penalty.value(self.engine.unpack(self.params)[0])

    def stationarity(self):
        """What ``tol`` bounds, at the last point.

        The largest entry of the minimum-norm subgradient (scikit-learn's
        rule), where the entries of a feature whose root mean square is
        below 1 are first divided by it: this keeps a fit on features of tiny
        scale, whose raw gradient is tiny everywhere, from stopping before it
        has moved, and is the raw rule for features of unit scale or more.
        """
        grad = self.grad.copy()
        grad_W, _ = self.engine.unpack(grad)
        W, _ = self.engine.unpack(self.params)
        grad_W[...] = self.penalty.min_norm_subgradient(W, grad_W) / self._rms[:, None]
        return float(np.max(np.abs(grad)))


class _SampledCurvature(_Preconditioned):
    """The objective and gradient on all rows, Hessian products on a sample.

    The sample (see the engine's ``curvature_sample``) is held in the
    preconditioned coordinates, so its products need no change of
    variables; the penalty's part is exact. Newton steps on this curvature
    reach the same optimum, since every value and gradient is exact; only
    their directions are approximate.

    Where the sample's curvature along a step is off from the data's by
    more than ``_SAMPLE_BAND`` (see :meth:`check_curvature`), the products
    are exact from then on, on every row: near separation the curvature
    sits on the few rows near the class boundaries, which a sample misses,
    and its steps converged linearly, 130 to 320 of them.
    """

    def __init__(self, engine: LossEngine, penalty: ElasticNet):
        super().__init__(engine, penalty)
        # Hessian products, though not the engine's exact ones.
        self.second_order = True
        self.sample = engine.curvature_sample(
            _SAMPLE_PER_PARAM * engine.n_params,
            _FEWEST_PER_PARAM * engine.n_params,
            self.mean,
            self.std,
        )
        self._curvature_at = None
        self._sample_terms = None
        self._sample_hessp = None
        self.exact = False

    @classmethod
    def of(cls, engine: LossEngine, penalty: ElasticNet):
        """The problem, or None when the engine gives no curvature sample."""
        if not hasattr(engine, "curvature_sample"):
            return None
        problem = cls(engine, penalty)
        return problem if problem.sample is not None else None

    def _data_term(self):
        if self.exact:
            return super()._data_term()
        return self.engine.loss_gradient(self.params)

    def _at(self, params_std):
        """The sample's data term and gradient at ``params_std``, its products set."""
        if self._curvature_at is None or not np.array_equal(
            params_std, self._curvature_at
        ):
            value, grad, self._sample_hessp = self.sample.hessian_product(params_std)
            self._sample_terms = value, grad
            self._curvature_at = params_std.copy()
        return self._sample_terms

    def sample_objective(self, params_std):
        """The objective on the sample alone, penalty included, and its gradient.

        In the preconditioned coordinates, where the sample's rows are.
        """
        value, grad = self._at(params_std)
        grad = grad.copy()
        W_std = self.engine.unpack(params_std)[0]
        value += self.penalty.value(W_std / self.std[:, None])
        # The penalty is quadratic (newton-cg takes no L1 part): its gradient
        # is its Hessian times the point.
        self._add_penalty_product(params_std, grad)
        return value, grad

    def _add_penalty_product(self, vector_std, out):
        """Add the penalty's Hessian, in these coordinates, times ``vector_std``.

        The penalty on ``W = W' / sigma`` has the Hessian ``lambda_2 / sigma^2``
        in ``W'``; divided by sigma twice, since its square can overflow.
        """
        self.penalty.add_smooth_hessp(
            self.engine.unpack(vector_std)[0] / self.std[:, None] / self.std[:, None],
            self.engine.unpack(out)[0],
        )

    def hessp(self, params_std, direction_std):
        """The sample's Hessian at ``params_std`` times ``direction_std``.

        Once the products are exact, the whole data's Hessian.
        """
        if self.exact:
            return super().hessp(params_std, direction_std)
        self._at(params_std)
        self.n_products += 1
        product = self._sample_hessp(direction_std)
        self._add_penalty_product(direction_std, product)
        # float32 rounding would give the products a small common shift.
        _drop_common_shift(product, self.engine, self.penalty)
        return product

    def check_curvature(self, params_std, step, curvature, gain):
        """Make the products exact if the sample misjudges the curvature along ``step``.

        ``curvature`` is ``step^T (g(params_std + step) - g(params_std))`` of
        the exact gradients, the data's mean curvature along the step, and
        ``gain`` the objective's decrease over it. The sample's curvature is
        taken at ``params_std``, one product (counted in ``n_products``).
        Steps that gain less than the square root of the data's float
        precision (relative to the objective, or to 1 below it) are not
        judged: their gradient changes are mostly rounding (in float32, the
        ratio jumped from 1.0 to 13.8 and 0.1 there). From the switch on,
        the products are the engine's exact ones and the sample is dropped.
        """
        resolution = np.sqrt(epsilon(self.engine.dtype))
        if self.exact or gain <= resolution * max(1.0, abs(self.objective)):
            return
        sampled = float(step @ self.hessp(params_std, step))
        if curvature / _SAMPLE_BAND <= sampled <= _SAMPLE_BAND * curvature:
            return
        self.make_exact()

    def make_exact(self):
        """Make the Hessian products exact from here on; the sample is dropped."""
        self.exact = True
        self.sample = self._sample_hessp = self._sample_terms = None
        self._curvature_at = None


class _Split:
    """The L1 part of the penalty through its bounded split, for L-BFGS-B.

    Wraps a :class:`_Preconditioned` problem, whose scaling keeps signs, so
    the bounds read the same in both coordinates; the L1 weight of row j
    becomes ``lambda_1 / sigma_j`` there.
    """

    second_order = False

    def __init__(self, problem: _Preconditioned):
        self.problem = problem
        n_classes = problem.engine.n_classes
        self._split = problem.penalty.bounded_split(
            np.repeat(problem.penalty.l1 / problem.std, n_classes)
        )
        self.bounds = self._split.bounds(n_classes)

    def from_original(self, params):
        return self._split.split(self.problem.from_original(params))

    def __call__(self, x):
        return self._split.value_gradient(x, *self.problem(self._split.merge(x)))

    @property
    def params(self):
        return self.problem.params

    @property
    def objective(self):
        return self.problem.objective

    def stationarity(self):
        return self.problem.stationarity()


class _GapEstimate:
    """The objective's distance to its minimum, estimated from the last steps.

    On a quadratic model, ``f - f* = g^T H^-1 g / 2``. The inverse Hessian is
    L-BFGS's own model of it, built from the last ``memory`` steps and
    gradient changes (the two-loop recursion), in the preconditioned
    coordinates, where the curvature is about even and the model good.
    Recording a step costs a few passes over the parameters and none over
    ``X``; the estimate costs four passes per pair, with many parameters a
    good part of an evaluation, so a fit asks for it only where the gradient
    rule already holds.

    The pairs are kept in float32: with many features they are half as
    large as L-BFGS-B's own memory, and on every benchmark problem, at tol
    from 1e-4 to 1e-2, float64 pairs stopped every fit at the same iteration
    with the same objective. (Five pairs instead of ten did too, except with
    500 classes at tol=1e-4: 65 iterations instead of 62.)

    The model is local. Near separation the objective falls along flat
    directions for many steps after it says little is left (20000 x 5, 4
    classes, C=1e4: 3e-6 estimated, 4.4e-4 left), and L-BFGS's steps do not
    see it. With a ``window``, the estimate is at least what the objective's
    decreases over the last ``window`` steps add up to when continued at the
    rate they fell from the ``window`` steps before (infinite where they did
    not fall). Newton steps converge faster than that rate says: on digits,
    such an estimate held newton-cg two steps past a relative gap of 3e-7.
    """

    def __init__(self, memory=10, window=0):
        self._pairs = collections.deque(maxlen=memory)
        self._last = None
        # The initial inverse Hessian's scale, s^T y / y^T y of the last pair.
        self._scale = None
        # The objective's last decreases, the newest last.
        self._window = window
        self._decreases = collections.deque(maxlen=2 * window)

    def update(self, x, grad, value):
        """Record the iterate ``x``, its gradient and the objective there.

        Returns False where ``x`` is the last recorded iterate (a step the
        method rejected), which adds nothing to the estimate.
        """
        if self._last is not None and np.array_equal(x, self._last[0]):
            return False
        if self._last is not None:
            self._decreases.append(self._last[2] - value)
            step, change = x - self._last[0], grad - self._last[1]
            curvature = step @ change
            # A convex objective has positive curvature along every step;
            # a non-positive one is rounding, which would spoil the model.
            # So is one beyond float32's range, where the pair cannot be kept.
            with np.errstate(over="ignore"):
                step, change = step.astype(np.float32), change.astype(np.float32)
            finite = np.isfinite(step).all() and np.isfinite(change).all()
            # A change below float32's range is zero once kept: the scale
            # would be infinite and every later estimate NaN. The estimate
            # keeps to the earlier pairs instead. Only objectives below about
            # 1e-40 get there: unpenalized fits whose coefficients separate
            # the classes did, before they stopped at the gradient rule (iris's
            # first two classes at C=inf, with about 170 numpy warnings).
            squared = float(change @ change.astype(np.float64)) if finite else 0.0
            if 0.0 < curvature < np.inf and squared > 0.0:
                self._scale = float(curvature) / squared
                self._pairs.append((step, change, 1.0 / curvature))
        self._last = (x.copy(), grad.copy(), value)
        return True

    def estimate(self, grad):
        """The gap at the last recorded iterate, whose gradient is ``grad``."""
        if not self._pairs:
            return np.inf
        scaled = _two_loop(self._pairs, grad, lambda q: q * self._scale)
        return max(0.5 * float(grad @ scaled), self._still_to_fall())

    def _still_to_fall(self):
        """What the objective's recent decreases add up to, continued at their rate."""
        window = min(self._window, len(self._decreases) // 2)
        if not window:
            return 0.0
        decreases = list(self._decreases)[-2 * window :]
        before, last = sum(decreases[:window]), sum(decreases[window:])
        if last <= _rounding(self._last[2]):
            return 0.0
        if not 0.0 < last < before:
            return np.inf
        rate = last / before
        return last * rate / (1.0 - rate)


def _two_loop(pairs, vector, initial):
    """L-BFGS's inverse Hessian times ``vector`` (the two-loop recursion).

    ``pairs`` holds ``(step, gradient change, 1 / their inner product)``,
    oldest first; ``initial`` applies the inverse Hessian the pairs update.
    """
    q = np.array(vector, dtype=np.float64)
    alphas = []
    for step, change, rho in reversed(pairs):
        alphas.append(rho * (step @ q))
        q -= alphas[-1] * change
    r = initial(q)
    for (step, change, rho), alpha in zip(pairs, reversed(alphas), strict=True):
        r += step * (alpha - rho * (change @ r))
    return r


# The estimated gap (see _GapEstimate) a fit must also reach: this fraction
# of tol, relative to the objective. At the default tol every benchmark
# problem then ends within a relative gap of 6e-5; 0.1 took 69 iterations
# instead of 56 with 300 classes. A floor of 1 under the objective (an
# absolute gap for objectives below 1) let fits near separation, whose
# objective is a few hundredths, stop at a relative gap of 2e-2.
_GAP_PER_TOL = 0.3
# Steps per window of the objective's decreases that L-BFGS's gap estimate
# continues (see _GapEstimate). Its decreases vary several times from one
# step to the next: with windows of one step, of the 66 fits near separation
# of benchmarks/stopping.py 11 at C=1e4 and 20 at C=1e6 stopped above a
# relative gap of 3e-4 (worst 1.2e-3, 2.4e-2); with five, 1 and 6.
_FALL_WINDOW = 5
# Iterations per conjugate-gradient product that a fit may spend checking its
# gap estimate against the Newton decrement (see _decrement_above), beyond
# the one along its coefficients, and the fewest such products worth it. The
# 7 fits of benchmarks/stopping.py that stopped silently at C=1e6 had run 117
# to 607 iterations and needed 3 to 13 products. One product per 10
# iterations cost 12% and 15% on the default fits with 500 and 300 classes
# (69 and 56 iterations), where it proved nothing; these settings leave them
# that one product at most.
_CHECK_SHARE = 20
_FEWEST_CHECKED = 4
# Rows of a curvature sample per parameter. On float64 samples, before the
# secant correction below: 5 took 11 Newton steps to a relative gap of 1e-6 at
# 100000 x 100 with 10 classes, 10 took 7, 20 took 7 with fewer products each,
# but each product costs twice as much.
_SAMPLE_PER_PARAM = 10
# Rows per parameter below which a sample is not worth making.
_FEWEST_PER_PARAM = 4
# Relative residual of the Newton system on sampled curvature: 0.01 took as
# many steps as 0.1 there (same conditions), with 52 products instead of 32;
# 0.3 took 9 steps instead of 7.
_FORCING = 0.1
# Steps whose gradient changes correct the sampled curvature. At 100000 x 100
# with 10 classes, tol=1e-8 took 34 Newton steps without them, 15 with 3 or
# 5; a relative gap of 1e-6 took 8 either way.
_NEWTON_PAIRS = 5
# Share of n_params / n_sampled below which a Newton step on the curvature
# sample alone is not worth taking (see _sample_start). At 100000 x 100 with
# 10 classes, from the intercept-only start, steps on every row to a relative
# gap of 1e-6: 8 without the sample's steps; 0.1 took 5 on the sample and
# then 5; 0.3 took 3 and 5; 1.0 took 1 and 7.
_START_GAIN = 0.3
# Newton steps on the curvature sample alone, at most: a bound for a sample
# that its own coefficients separate, whose objective falls at every step.
# Every benchmark problem took 3.
_MAX_START_STEPS = 20
# Largest factor by which the sample's curvature along a step may differ
# from the data's before the products are made exact. Along the steps of the
# dense benchmark problems it was 0.5 to 1.4 of the data's (float32: down to
# 0.52); on nearly separable data it fell to 0.1 and below within ten steps.
_SAMPLE_BAND = 3.0
# Conjugate-gradient steps per Newton step on sampled curvature.
_MAX_CG = 50
# Halvings of a Newton step before the line search gives up.
_MAX_HALVINGS = 30
# Newton steps tried, after the first-order solver stalls above tol.
_MAX_POLISH_STEPS = 3
# Conjugate-gradient steps (exact Hessian products) per such Newton step, and
# per Newton step after lbfgs's check (see _minimize). The test suite's
# polishing solves that reached their residual took at most 61; one that
# cannot (float32 products, below float32's resolution) ran on to 4 n_params:
# at 100000 x 100 with 10 classes, tol=1e-8, 4040 products and 27 s.
_MAX_POLISH_PRODUCTS = 200
# Relative residual of the Newton steps after lbfgs's check, on exact
# curvature conditioned up to 1e9 near separation. At C=1e8 and tol=1e-3,
# _FORCING (and _MAX_CG products) left two fits of benchmarks/stopping.py
# silently 4.9e-2 and 1.9e-2 above the optimum, gaining little per step;
# 0.01 (and _MAX_POLISH_PRODUCTS) left 1e-5 and 5e-5; 0.001 (and 500) left
# 9e-5 and 3e-5, with more products per step.
_EXACT_FORCING = 0.01
# Relative changes of the objective below this are rounding, not progress.
_ROUNDING = 16 * np.finfo(np.float64).eps


def _rounding(value):
    """The rounding of an objective of ``value``: relative, or absolute below 1."""
    return _ROUNDING * max(1.0, abs(value))


def _decrement_above(problem, x, bound, max_products):
    """A lower bound of the Newton decrement at ``x`` that exceeds ``bound``, or None.

    The decrement ``g^T H^-1 g / 2`` on exact curvature is the quadratic
    model's largest gain, so the model's gain at any step ``s``,
    ``g^T s - s^T H s / 2``, bounds it from below. First along ``x`` itself,
    which scales every logit: near separation the objective falls most that
    way, and the gain there, ``(g^T x)^2 / (2 x^T H x)``, is looked at only
    where the penalty's part of the curvature along ``x`` leaves room for
    more than ``bound``. With ``max_products`` of 0 its curvature takes one
    pass over the data (see ``ray_curvature``); otherwise one Hessian
    product, and that many steps of conjugate gradients follow from the
    best point on the line, at each of which the gain, ``(g^T s + s^T r) / 2``
    with ``r`` the residual, rises. Returns the first gain above ``bound``;
    None where none is (unproven, not disproven).

    Written out rather than with scipy's ``cg``: the bound holds only while
    every step's curvature is positive, which ``cg`` does not report (along
    the singular directions of an unpenalized fit, rounding can make it
    zero or negative, and its iterates then run off).
    """
    grad = problem(x)[1]
    solution = np.zeros_like(grad)
    residual = grad.copy()
    along = float(grad @ x)
    if along**2 > 2.0 * bound * problem.penalty_ray_curvature():
        if max_products:
            product = problem.hessp(x, x)
            curvature = float(x @ product)
        else:
            curvature = problem.ray_curvature(x)
        # Only rounding makes the curvature of a convex objective non-positive.
        if 0.0 < curvature < np.inf:
            if along**2 / (2.0 * curvature) > bound:
                return along**2 / (2.0 * curvature)
            if max_products:
                solution += (along / curvature) * x
                residual -= (along / curvature) * product
    direction = residual.copy()
    squared = float(residual @ residual)
    for _ in range(max_products):
        if squared == 0.0:
            return None
        product = problem.hessp(x, direction)
        curvature = float(direction @ product)
        if not 0.0 < curvature < np.inf:
            return None
        step = squared / curvature
        solution += step * direction
        residual -= step * product
        decrement = 0.5 * float(grad @ solution + solution @ residual)
        if decrement > bound:
            return decrement
        squared, previous = float(residual @ residual), squared
        direction = residual + (squared / previous) * direction
    return None


# scipy's words for why a method stopped, and ours: the warnings quote them.
_STOP_REASONS = [
    # L-BFGS-B's failed line search: "ABNORMAL_TERMINATION_IN_LNSRCH"
    # before scipy 1.15, then "ABNORMAL: " with no reason given.
    ("ABNORMAL", "L-BFGS-B's line search found no acceptable step"),
    # Its ftol rule ("REL_REDUCTION_OF_F_<=_FACTR*EPSMCH" before scipy 1.15),
    # which it calls "CONVERGENCE" whatever the gradient.
    (
        "FACTR",
        "L-BFGS-B's steps stopped lowering the objective by more than its rounding",
    ),
    ("ITERATIONS REACHED LIMIT", "max_iter was reached"),
    ("EVALUATIONS EXCEEDS LIMIT", "L-BFGS-B used up its objective evaluations"),
    # trust-ncg, which runs newton-cg on exact curvature.
    ("bad approximation", "the Newton model of the objective foresaw no decrease"),
    ("Maximum number of iterations", "max_iter was reached"),
    # Our callback, which stops a run only where the gradient met tol.
    ("StopIteration", "the gradient met tol"),
]


def _stop_reason(result):
    """scipy's message for why ``result``'s run stopped, in words a user can act on."""
    message = str(result.message)
    for words, reason in _STOP_REASONS:
        if words in message:
            return reason
    return message


def _minimize(
    problem, params0, *, method, tol, max_iter, verbose, tag, options, gap=None
):
    """Run scipy's ``method`` on ``problem``, stopping on the original gradient.

    With a :class:`_GapEstimate` as ``gap``, an iterate whose gradient meets
    ``tol`` stops the run only once the estimated gap is at most
    ``_GAP_PER_TOL * tol * |f|`` too: the largest gradient entry
    alone lets a fit stop far from the optimum when most features are rare
    (their gradient entries are small however far off their coefficients
    are). This only ever stops later; convergence is still the gradient
    rule. Without a penalty, coefficients that separate the classes have no
    optimum and the gradient rule alone stops the fit; that is looked for at
    the 1st, 2nd, 4th, ... iteration the gap rule holds back.

    Where such a fit would stop (or where L-BFGS-B stops itself, with the
    gap rule unmet), it first checks the estimate against a lower bound of
    the Newton decrement on exact curvature (see :func:`_decrement_above`):
    along the coefficients themselves, where the penalty leaves room for a
    gain above the rule, and in a fit of many iterations with one Hessian
    product per ``_CHECK_SHARE`` iterations. Near separation
    the objective falls like an exponential along flat directions, which
    the methods' models miss: at ``C=1e6`` L-BFGS's estimates were up to
    1e3 times too low, and the decrement within a factor of 3 of the gap;
    warm-started fits from ``C=1e4`` stopped after 2 iterations up to 1.2
    above the optimum, relative, and newton-cg's from ``C=1e6`` at ``1e8``
    up to 3.5, its trust region holding back its steps. Where the bound
    exceeds the rule, Newton steps on exact curvature
    (:func:`_sampled_newton`) continue until the last one gained, and the
    next one promises, at most what the rule allows.

    scipy's methods also stop by rules of their own: L-BFGS-B on a small
    relative decrease of the objective or a failed line search, trust-ncg
    when its trust region shrinks to float precision. Each such stop above
    ``tol`` with iterations left is followed by up to three Newton steps on
    exact Hessian products. (Restarting L-BFGS-B there, with a fresh memory
    and the relative-decrease rule off, gained one iteration each on iris
    and wine with a column offset by 1e6 to 1e9 times its spread, and still
    warned; at ``tol=1e-10`` on a small problem it added 9 to 20 iterations
    before the Newton steps that alone met ``tol``.) Only a gradient at most
    ``tol`` counts as converged, and not where ``max_iter`` ends the run
    before the gap rule holds.
    """
    iteration = 0
    start = time.perf_counter()
    # The estimated gap at the last iterate, where the gradient rule held and
    # the gap rule did not.
    gap_left = None
    # A lower bound of the Newton decrement, once that has shown the gap
    # estimate wrong; Newton steps on exact curvature then finish the fit.
    decrement = None
    # Iterations that met the gradient rule and not the gap rule, and the
    # next of them to look for a separation at: a look is a product with X,
    # and at every one of them an lbfgs fit at C=inf (50000 x 20, 4
    # classes, 93 iterations) took 1.5 times as long.
    held, look_at = 0, 1

    def allowed_gap():
        return _GAP_PER_TOL * tol * abs(problem.objective)

    def callback(intermediate_result):
        nonlocal iteration, gap_left, decrement, held, look_at
        iteration += 1
        problem(intermediate_result.x)
        grad_max = problem.stationarity()
        estimate = None
        moved = True
        if gap is not None and decrement is None:
            scaled_grad = problem.scaled_grad
            moved = gap.update(intermediate_result.x, scaled_grad, problem.objective)
            if verbose or grad_max <= tol:
                estimate = gap.estimate(scaled_grad)
        if verbose:
            products = ""
            if verbose > 1 and problem.second_order:
                # trust-ncg's inner conjugate-gradient steps, one product each.
                products = f"  Hessian products {problem.n_products:d}"
            print(
                f"{tag}iter {iteration:5d}  objective {problem.objective:.12g}  "
                f"max|grad| {grad_max:.3e} (tol {tol:g})  "
                f"{'' if estimate is None else f'gap~{estimate:.1e}  '}"
                f"{time.perf_counter() - start:.2f}s{products}",
                flush=True,
            )
        gap_left = None
        # The Newton steps that follow a check stop by their own rule.
        if grad_max > tol or decrement is not None:
            return
        if (
            gap is None
            or estimate <= allowed_gap()
            or (not moved and rounding_hides_the_gain(intermediate_result.x))
        ):
            decrement = check(intermediate_result.x)
            raise StopIteration
        held += 1
        if held == look_at:
            look_at *= 2
            if separated_without_penalty():
                raise StopIteration
        gap_left = estimate

    def separated_without_penalty():
        # Coefficients without a penalty that separate the classes have no
        # optimum to approach: the objective falls towards 0, a gap rule
        # relative to it never holds, and the gradient rule alone stops the
        # fit. Held to the gap rule, newton-cg on digits at C=inf ran past 60
        # iterations and a minute instead of 12, and Newton steps after a
        # check ran until the objective underflowed (iris's first two
        # classes: 1827 products, 11 times the fit's time).
        return problem.penalty.l2 == 0.0 and problem.engine.separates(
            *problem.engine.unpack(problem.params)
        )

    def check(x):
        # Where the fit would stop: a lower bound of the Newton decrement
        # there, if one exceeds the gap rule. One pass along x; in a long fit
        # one Hessian product per _CHECK_SHARE iterations. Not where no
        # iteration is left to act on it, nor where the classes are separated
        # without a penalty.
        if gap is None or iteration >= max_iter or separated_without_penalty():
            return None
        # The bound needs exact products; a fit that ends here needs no others.
        problem.make_exact()
        budget = iteration // _CHECK_SHARE
        found = _decrement_above(
            problem, x, allowed_gap(), budget if budget >= _FEWEST_CHECKED else 0
        )
        if verbose and found is not None:
            print(
                f"{tag}the Newton decrement is at least {found:.1e}, "
                f"above {_GAP_PER_TOL:g} tol times the objective: "
                "Newton steps on exact curvature follow",
                flush=True,
            )
        return found

    def rounding_hides_the_gain(x):
        # trust-ncg reports the steps it rejects too, from the point it stays
        # at, which informs no gap estimate: a warm start at the optimum took
        # 14 iterations there. A rejection ends the fit only where even the
        # steepest step promises less than the objective's rounding (in
        # float32 data, the evaluation's). Near separation, far from the
        # optimum, the quadratic model errs: stopping at every rejection left
        # fits at up to twice the optimum's objective. L-BFGS-B reports an
        # unmoved iterate only where its line search found nothing.
        if not problem.second_order:
            return True
        objective = problem.objective
        rounding = max(
            _rounding(objective), 16 * epsilon(problem.engine.dtype) * abs(objective)
        )
        return problem.steepest_gain(x) <= rounding

    x = problem.from_original(params0)
    problem(x)
    grad_max = problem.stationarity()
    message = "the start is stationary"
    # A (sub)gradient of exactly zero makes the start the optimum of this
    # convex objective, where trust-ncg would divide by a step of length 0.
    if grad_max > 0.0:
        result = minimize(
            problem,
            x,
            method=method,
            jac=True,
            hessp=problem.hessp if problem.second_order else None,
            bounds=getattr(problem, "bounds", None),
            callback=callback,
            options={"maxiter": max_iter, **options},
        )
        x, message = result.x, _stop_reason(result)
        problem(x)
        grad_max = problem.stationarity()
    # L-BFGS-B's own stops (a failed line search, a small relative decrease)
    # come with the gradient rule met and the gap rule not: in float32 near
    # separation (C=1e6) its line search failed 1.4e-2 above the optimum.
    if decrement is None and gap_left is not None and iteration < max_iter:
        decrement = check(x)
    # Newton steps that ran to max_iter, none stopped by their rule.
    still_gaining = False
    if decrement is not None:
        # They stop before a step that promises at most the gap rule, and
        # after one that gained at most that: the promise, from a solve cut
        # short, is a lower bound too. With the promise alone, raw breast
        # cancer at C=1e8 and tol=1e-2 stopped with the gradient above tol,
        # 4.2e-2 above the optimum (with both rules and _EXACT_FORCING,
        # within tol and 3.1e-5).
        result = minimize(
            problem,
            x,
            method=_sampled_newton,
            jac=True,
            hessp=problem.hessp,
            callback=callback,
            options={
                "maxiter": max_iter - iteration,
                "least_gain": allowed_gap(),
                "gained_too": True,
                "forcing": _EXACT_FORCING,
                "max_cg": _MAX_POLISH_PRODUCTS,
            },
        )
        x, message = (
            result.x,
            f"{message}, but the Newton decrement was at least {decrement:.1e}; "
            f"Newton steps on exact curvature followed, until {result.message}",
        )
        problem(x)
        grad_max = problem.stationarity()
        still_gaining = not result.success and iteration >= max_iter
        if still_gaining:
            message = (
                "Newton steps on exact curvature, which followed a Newton "
                f"decrement of at least {decrement:.1e}, were still gaining more "
                f"than {_GAP_PER_TOL:g} tol times the objective"
            )
    # The Newton steps are for a solver that stalled: a fit that used up
    # max_iter stops there, as the caller's budget says.
    if grad_max > tol and iteration < max_iter:
        grad_max = _newton_polish(problem, tol)
        message += "; Newton steps on exact curvature from there did not reach tol"
    converged = grad_max <= tol and not still_gaining
    if converged and iteration >= max_iter and gap_left is not None:
        # max_iter ended a fit whose objective was still falling: near
        # separation lbfgs ran 1000 iterations to a relative gap of 0.1.
        converged = False
        message = (
            f"the estimated objective gap of {gap_left:.1e} was above "
            f"{_GAP_PER_TOL:g} tol times the objective: it was still falling"
            if np.isfinite(gap_left)
            else "the objective was still falling, and its gap could not be "
            "estimated yet"
        )
    if verbose:
        verdict = "converged" if converged else "not converged"
        print(
            f"{tag}{verdict}: max|grad| {grad_max:.3e} "
            f"{'<=' if grad_max <= tol else '>'} tol {tol:g} after "
            f"{min(iteration, max_iter)} iterations in "
            f"{time.perf_counter() - start:.2f}s",
            flush=True,
        )
    return SolverResult(
        params=problem.params,
        value=problem.objective,
        grad_max=grad_max,
        n_iter=int(min(iteration, max_iter)),
        converged=converged,
        message="gradient below tol" if converged else message,
    )


def _drop_common_shift(flat, engine, penalty):
    """Remove, in place, the part of ``flat`` that shifts every class alike.

    The softmax ignores a common shift of every class's logit: the Hessian
    is singular along it, and rounding in CG would move the intercepts
    (and, unpenalized, each coefficient row) along it.
    """
    rows = flat.reshape(engine.n_features + 1, engine.n_classes)
    shifted = slice(None) if penalty.l2 == penalty.l1 == 0.0 else slice(-1, None)
    rows[shifted] -= rows[shifted].mean(axis=1, keepdims=True)


def _newton_polish(problem, tol):
    """Newton steps from the problem's last point while they reduce its gradient.

    Each step solves ``H d = -g`` by conjugate gradients on exact Hessian
    products, in the preconditioned coordinates, over the free coordinates:
    all of them for a smooth penalty; with an L1 part, the intercepts and
    the non-zero coefficients, whose L1 term is smooth while their signs
    hold (a coefficient the step carries across zero is set to zero). Near
    the optimum, where first-order methods stall at float precision, one
    step usually gains several digits; a step is kept only if the largest
    entry of the minimum-norm subgradient falls. Returns that entry at the
    point the problem is left at.
    """
    base = problem.problem if isinstance(problem, _Split) else problem
    engine, penalty = base.engine, base.penalty
    second = _Preconditioned(engine, penalty, second_order=True)
    n_coef = engine.n_features * engine.n_classes
    l1_std = np.repeat(penalty.l1 / second.std, engine.n_classes)

    def gradient(x):
        _, grad = second(x)
        grad = grad.copy()
        grad[:n_coef] += l1_std * np.sign(x[:n_coef])
        return grad

    x = second.from_original(base.params)
    grad = gradient(x)
    best = second.stationarity()
    value = base.objective
    for _ in range(_MAX_POLISH_STEPS):
        free = np.ones(x.size, dtype=bool)
        if not penalty.smooth:
            free[:n_coef] = x[:n_coef] != 0.0

        def product(direction, x=x, free=free):
            return second.hessp(x, direction * free) * free

        operator = LinearOperator((x.size, x.size), matvec=product, dtype=np.float64)
        # Unpenalized, the Hessian can be singular (collinear or constant
        # columns): CG may then divide by zero; such a step is not taken.
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # A residual of 1e-6 of the gradient gains six digits per step;
            # asking for much less lets rounding in the products derail CG.
            step, _ = cg(
                operator,
                -grad * free,
                rtol=1e-6,
                maxiter=min(4 * x.size, _MAX_POLISH_PRODUCTS),
            )
        if not np.all(np.isfinite(step)):
            break
        _drop_common_shift(step, engine, penalty)
        trial = x + step
        if not penalty.smooth:
            crossed = np.sign(trial[:n_coef]) != np.sign(x[:n_coef])
            trial[:n_coef][crossed] = 0.0
        trial_grad = gradient(trial)
        trial_best = second.stationarity()
        # Along a direction the objective cannot see (a singular Hessian) a
        # step may shrink a gradient made of rounding while cancellation
        # ruins the model: the objective must not rise beyond rounding.
        trial_value = second.objective
        if not (trial_best < best and trial_value <= value + _rounding(value)):
            break
        x, grad, best, value = trial, trial_grad, trial_best, trial_value
        if best <= tol:
            break
    base(x)
    return base.stationarity()


def lbfgs(
    engine: LossEngine,
    penalty: ElasticNet,
    params0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    verbose: int = 0,
    tag: str = "",
) -> SolverResult:
    """Minimize with scipy's L-BFGS-B on one fused value+gradient call.

    The iterations run in preconditioned coordinates (see
    :class:`_Preconditioned`); the stopping rule is on the gradient in the
    original ones, scikit-learn's ``tol``. With an L1 part the coefficients
    are split into bounded halves (see :class:`_Split`).

    Parameters
    ----------
    engine : LossEngine
    penalty : ElasticNet
    params0 : ndarray of shape (engine.n_params,)
        Starting point.
    tol : float
        Stop once the largest absolute gradient entry is at most ``tol``;
        with an L1 part, the largest entry of the minimum-norm subgradient.
    max_iter : int
        Maximum number of iterations.
    verbose : int
        When positive, print one line per iteration.
    tag : str
        Printed before each of those lines.

    Returns
    -------
    SolverResult
    """
    problem = _Preconditioned(engine, penalty)
    if not penalty.smooth:
        problem = _Split(problem)
    return _minimize(
        problem,
        params0,
        method="L-BFGS-B",
        tol=tol,
        max_iter=max_iter,
        verbose=verbose,
        tag=tag,
        # gtol=0: the callback applies tol to the original gradient. ftol as
        # scikit-learn: stop on relative decrease only at float precision.
        options={"maxls": 50, "gtol": 0.0, "ftol": 64 * np.finfo(float).eps},
        gap=_GapEstimate(window=_FALL_WINDOW) if penalty.smooth else None,
    )


def _sampled_newton(
    fun,
    x0,
    *,
    jac,
    hessp,
    callback,
    maxiter,
    least_gain=0.0,
    gained_too=False,
    forcing=_FORCING,
    max_cg=_MAX_CG,
    check_curvature=None,
    args=(),
    **_,
):  # scipy.optimize.minimize's interface for a method of one's own
    """Newton steps on approximate curvature, each with a backtracking line search.

    The step solves ``H d = -g`` to a relative residual of ``forcing`` by at
    most ``max_cg`` conjugate-gradient steps: with curvature from a sample of
    rows, a finer solve than the default's buys no better direction. The
    exact gradients' changes over the last ``_NEWTON_PAIRS`` steps then
    correct that curvature along those steps, as L-BFGS corrects its
    initial matrix (two-loop recursion with the solve as the initial
    inverse): Newton steps on approximate curvature alone converge
    linearly, at the rate of its error.

    The step length halves from 1 until the objective falls by at least
    ``1e-4`` of what the slope promises, or, where the objective changes by
    no more than its rounding, until the gradient's 1-norm falls. Returns
    when ``callback`` raises StopIteration, after ``maxiter`` steps (where a
    positive ``least_gain`` is still tested after the last one), or when
    no step length does either, or before a step whose slope promises a
    decrease (``-slope / 2``) of at most ``least_gain``: with the default 0,
    only at a gradient of exactly zero, where no step gains anything. With
    ``gained_too``, such a stop also waits for a step that lowered the
    objective by at most ``least_gain``, and the first step is always
    taken. The result's ``nit`` counts the steps taken. After each step,
    ``check_curvature(x, step, curvature, gain)``, if given, sees the exact
    gradients' curvature along it and the objective's decrease.
    """
    x = np.array(x0, dtype=np.float64)
    value, grad = fun(x, *args), jac(x, *args)
    n = x.size
    pairs = collections.deque(maxlen=_NEWTON_PAIRS)
    message, success = "maximum number of iterations reached", False
    steps = 0
    # What the last step lowered the objective by, for ``gained_too``.
    gained = np.inf if gained_too else 0.0
    for steps_left in range(maxiter, -1, -1):
        # After the last step, its rule is still looked at where it can hold:
        # otherwise a fit whose last allowed step met it warned as if not.
        if not steps_left and not (least_gain > 0.0 and gained <= least_gain):
            break
        operator = LinearOperator(
            (n, n), matvec=lambda v, x=x: hessp(x, v, *args), dtype=np.float64
        )

        def solve(rhs, operator=operator):
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return cg(operator, rhs, rtol=forcing, maxiter=max_cg)[0]

        step = -_two_loop(pairs, grad, solve)
        slope = float(grad @ step)
        if not (np.all(np.isfinite(step)) and slope < 0.0):
            step, slope = -grad, -float(grad @ grad)
        if -slope / 2.0 <= least_gain and gained <= least_gain:
            message, success = "the next step promises too little", True
            break
        if not steps_left:
            break
        length = 1.0
        for _ in range(_MAX_HALVINGS):
            trial = x + length * step
            trial_value = fun(trial, *args)
            change = trial_value - value
            if change <= 1e-4 * length * slope:
                break
            # Near the optimum the objective changes by less than its
            # rounding; a step that shrinks the gradient is progress there.
            if abs(change) <= _rounding(value) and np.sum(
                np.abs(jac(trial, *args))
            ) < np.sum(np.abs(grad)):
                break
            length /= 2.0
        else:
            message = "no step length lowered the objective or the gradient"
            break
        trial_grad = jac(trial, *args)
        curvature = float((trial - x) @ (trial_grad - grad))
        if curvature > 0.0:
            pairs.append((trial - x, trial_grad - grad, 1.0 / curvature))
            if check_curvature is not None:
                check_curvature(x, trial - x, curvature, value - trial_value)
        if gained_too:
            gained = value - trial_value
        x, value, grad = trial, trial_value, trial_grad
        steps += 1
        try:
            callback(OptimizeResult(x=x, fun=value, nit=steps))
        except StopIteration:
            message, success = "stopped by the callback", True
            break
    return OptimizeResult(
        x=x, fun=value, jac=grad, nit=steps, success=success, message=message
    )


def _sample_start(problem: _SampledCurvature, params0):
    """Where Newton steps on the curvature sample's own objective lead.

    Far from the optimum a step on the sample gains about what one on every
    row gains, at a fraction of the cost. The steps stop before one whose
    slope promises less than ``_START_GAIN * n_params / n_sampled``: the
    sample's optimum is expected to lie about ``n_params / (2 n_sampled)``
    above the whole data's (a well-specified model's excess), so finer
    steps fit the sample's noise. Only from a start without coefficients
    (``W = 0``, as every cold fit starts): there each sampled class keeps
    its total weight, so the sample's objective is the whole data's. The
    sample's optimum is kept only where it lowers the whole data's
    objective, which a sample that its coefficients separate would not.

    Returns the start for the whole data, in the original coordinates, and
    the number of steps on the sample.
    """
    W0, _ = problem.engine.unpack(params0)
    if np.any(W0):
        return params0, 0
    x0 = problem.from_original(params0)
    start_value = problem.sample_objective(x0)[0]
    result = _sampled_newton(
        lambda x: problem.sample_objective(x)[0],
        x0,
        jac=lambda x: problem.sample_objective(x)[1],
        hessp=problem.hessp,
        callback=lambda _: None,
        maxiter=_MAX_START_STEPS,
        least_gain=_START_GAIN * x0.size / problem.sample.X.shape[0],
    )
    if result.nit == 0:
        return params0, 0
    start = problem.to_original(result.x)
    # At the very point the whole data's fit starts from, which is then
    # not evaluated again.
    if not problem(problem.from_original(start))[0] < start_value:
        return params0, 0
    return start, result.nit


def newton_cg(
    engine: LossEngine,
    penalty: ElasticNet,
    params0: np.ndarray,
    *,
    tol: float,
    max_iter: int,
    verbose: int = 0,
    tag: str = "",
) -> SolverResult:
    """Minimize with truncated Newton steps.

    Each step solves the Newton system approximately by conjugate gradients
    on Hessian-vector products, in the same preconditioned coordinates as
    :func:`lbfgs`.

    On data with many rows per parameter (see :class:`_SampledCurvature`)
    the products run on a stratified sample of ``_SAMPLE_PER_PARAM`` rows
    per parameter, while values and gradients use every row, so the
    optimum is the same; the steps then take a line search
    (:func:`_sampled_newton`). scipy's ``trust-ncg`` on the sampled
    products took 12 steps to tol=1e-5 on the dense benchmark problem (the
    line search: 10 before the secant correction, 9 with it), its trust
    radius holding back the first steps and its conjugate gradients solving
    far more finely than a sample deserves.

    Otherwise the products are exact, two passes over X each, in scipy's
    ``trust-ncg``: its line-search ``Newton-CG`` was up to 2x faster on
    digits but declared success with gradients far above a tight tol on
    breast cancer, and ``trust-krylov`` stopped early there too.

    Either way the fit also waits for the gap estimate, and checks it, as
    :func:`lbfgs` does: on exact products near separation (30000 x 20, 4
    classes, C=100) the gradient rule alone stopped 5e-3 above the optimum,
    with the estimate 7e-5; warm-started from C=1e6 at C=1e8, trust-ncg's
    region held its steps back and the estimate let it stop 3.5 above,
    relative. Parameters and return value as for :func:`lbfgs`; the
    penalty must be smooth.
    """
    sampled = _SampledCurvature.of(engine, penalty)
    if sampled is not None:
        params0, steps = _sample_start(sampled, params0)
        if verbose and steps:
            print(
                f"{tag}start: {steps} Newton step{'s' * (steps > 1)} on the "
                f"curvature sample of {sampled.sample.X.shape[0]} rows",
                flush=True,
            )
        problem, method = sampled, _sampled_newton
        options = {"check_curvature": sampled.check_curvature}
    else:
        # gtol=0: the callback applies tol to the original gradient.
        problem, method, options = (
            _Preconditioned(engine, penalty, second_order=True),
            "trust-ncg",
            {"gtol": 0.0},
        )
    return _minimize(
        problem,
        params0,
        method=method,
        tol=tol,
        max_iter=max_iter,
        verbose=verbose,
        tag=tag,
        options=options,
        gap=_GapEstimate(),
    )


@dataclass(frozen=True)
class Solver:
    """A minimizer and what it can handle.

    Attributes
    ----------
    name : str
        The name the estimators' ``solver`` parameter takes.
    minimize : callable
        ``minimize(engine, penalty, params0, *, tol, max_iter, verbose, tag)``
        returning a :class:`SolverResult`.
    handles_l1 : bool
        Whether it minimizes penalties with an L1 part.
    """

    name: str
    minimize: Callable[..., SolverResult]
    handles_l1: bool


SOLVERS = {
    "lbfgs": Solver("lbfgs", lbfgs, handles_l1=True),
    "newton-cg": Solver("newton-cg", newton_cg, handles_l1=False),
}


def check_solver(name: str, penalty: ElasticNet) -> Solver:
    """The solver called ``name``, refusing a penalty it does not handle."""
    solver = SOLVERS[name]
    if not penalty.smooth and not solver.handles_l1:
        able = " or ".join(repr(s.name) for s in SOLVERS.values() if s.handles_l1)
        raise ValueError(
            f"l1_ratio={penalty.l1_ratio:g} needs solver={able}; "
            f"solver={name!r} supports only the L2 penalty (l1_ratio=0)."
        )
    return solver


def solve(
    engine: LossEngine,
    penalty: ElasticNet,
    params0: np.ndarray,
    *,
    solver: str,
    tol: float,
    max_iter: int,
    verbose: int = 0,
    tag: str = "",
) -> SolverResult:
    """Minimize the engine's data term plus ``penalty`` from ``params0``.

    Inside a fit's ``blas_threads`` context (see :func:`~._path.fit_path`).

    Parameters
    ----------
    engine : LossEngine
    penalty : ElasticNet
    params0 : ndarray of shape (engine.n_params,)
    solver : {"lbfgs", "newton-cg"}
    tol, max_iter, verbose, tag
        As for :func:`lbfgs`.

    Returns
    -------
    SolverResult
    """
    minimizer = check_solver(solver, penalty).minimize
    dominated = _penalty_dominated(engine, penalty)
    if dominated is not None:
        problem = _Preconditioned(engine, penalty)
        problem(problem.from_original(dominated))
        grad_max = problem.stationarity()
        if grad_max <= tol:
            return SolverResult(
                params=problem.params,
                value=problem.objective,
                grad_max=grad_max,
                n_iter=0,
                converged=True,
                message="penalty-dominated: first-order solution",
            )
        params0 = dominated
    return minimizer(
        engine, penalty, params0, tol=tol, max_iter=max_iter, verbose=verbose, tag=tag
    )


# Ratio of the L2 strength to the data term's curvature above which the
# first-order solution is exact to float64 precision.
_DOMINANCE = 1e16


def _penalty_dominated(engine: LossEngine, penalty: ElasticNet):
    r"""The solution when the L2 penalty dwarfs the data term, else None.

    The data term's Hessian with respect to ``W`` is at most
    :math:`L = \sum_j E[x_j^2]` (the softmax's curvature is at most 1). Where
    :math:`\lambda_2 \geq 10^{16} L`, the optimum is
    :math:`W = -\operatorname{soft}(\nabla_W f(0, b_0), \lambda_1) / \lambda_2`
    with ``b_0`` the intercept-only fit, to float64 precision: over such
    ``W`` the gradient changes by a relative ``L / lambda_2``. There the
    preconditioned objective is flat to float precision (its decrease is
    ``|g|^2 / lambda_2``), so iterative solvers stop where they start; a
    ``C`` of 1e-300 or weights of 1e-310 get this solution instead.
    """
    if not penalty.l2 > 0.0:
        return None
    mean, std = engine.column_moments()
    # Features of 1e300 overflow the bound to inf, which no penalty dominates.
    with np.errstate(over="ignore"):
        curvature = float(np.sum(np.hypot(std, mean) ** 2))
    if not penalty.l2 >= _DOMINANCE * curvature:
        return None
    params = np.zeros(engine.n_params)
    _, b = engine.unpack(params)
    if engine.fit_intercept:
        # At W = 0, b = 0 every probability is 1 / K, so the intercepts'
        # gradient there, 1 / K - prior_k, gives the class priors.
        _, grad = engine.loss_gradient(params)
        priors = 1.0 / engine.n_classes - engine.unpack(grad)[1]
        log_priors = np.log(np.maximum(priors, np.finfo(np.float64).tiny))
        b[...] = log_priors - log_priors.mean()
    _, grad = engine.loss_gradient(params)
    grad_W = engine.unpack(grad)[0]
    W, _ = engine.unpack(params)
    W[...] = -np.sign(grad_W) * np.maximum(np.abs(grad_W) - penalty.l1, 0.0)
    W /= penalty.l2
    return params


@dataclass
class NewtonResult:
    """Where :func:`newton` stopped.

    Attributes
    ----------
    x : ndarray
        The last point.
    n_steps : int
        Steps taken.
    converged : bool
        Whether the last step was negligible by the caller's rule.
    step : Any
        What ``step`` returned at ``x``: the caller's account of the
        curvature there.
    """

    x: np.ndarray
    n_steps: int
    converged: bool
    step: Any


def newton(
    value: Callable[[np.ndarray], float],
    derivatives: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]],
    x0: np.ndarray,
    *,
    step: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, bool, Any]],
    max_steps: int,
) -> NewtonResult:
    """Damped Newton's method with backtracking, for a convex smooth function.

    Each step moves by ``-t d`` where ``d`` is what ``step(grad, hessian)``
    returns (the Newton direction, possibly on a subspace the caller
    chooses) and ``t`` halves from 1 until the Armijo condition holds.

    Parameters
    ----------
    value : callable
        ``value(x)``, the function.
    derivatives : callable
        ``derivatives(x) -> (value, gradient, hessian)``.
    x0 : ndarray
        Starting point.
    step : callable
        ``step(gradient, hessian) -> (d, negligible, info)``; stops when
        ``negligible``.
    max_steps : int
        Steps allowed.

    Returns
    -------
    NewtonResult
        Also when the line search finds no decrease (then not converged).
    """
    x, n_steps = x0, 0
    while True:
        # Drop the last step's curvature before the next Hessian is formed:
        # at the sizes inference allows, each is gigabytes.
        info = None
        current, grad, hessian = derivatives(x)
        direction, negligible, info = step(grad, hessian)
        del hessian
        if negligible or n_steps == max_steps:
            break
        slope = float(grad @ direction)
        t = 1.0
        while t > 1e-10:
            trial = x - t * direction
            if value(trial) <= current - 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break
        x = trial
        n_steps += 1
    return NewtonResult(x, n_steps, negligible, info)
