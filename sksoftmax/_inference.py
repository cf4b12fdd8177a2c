"""Standard errors, tests and a summary table for a fitted softmax model.

The symmetric parameterization the estimator fits (one coefficient row per
class) is not identified without a penalty, so inference is on the contrasts
against a reference class ``r``: ``beta_k = W_k - W_r`` and
``c_k = b_k - b_r`` for the ``K - 1`` other classes. On the summed scale
(``S`` times the estimator's objective) the fitted model minimizes

    G(beta, c) = sum_i s_i [logsumexp(a_i) - a_{i, y_i}] + penalty(beta),

with ``a_{i, r} = 0`` and ``a_{i, k} = x_i^T beta_k + c_k``. The estimator
penalizes ``||W||^2 / (2 C)`` over all K classes; for given contrasts the
smallest such penalty is that of the class-centred ``W`` (the fitted one:
the penalty's gradient keeps every row of ``W`` summing to zero), so, per
feature j,

    penalty(beta) = 1 / (2 C) * [sum_k beta_jk^2 - (sum_k beta_jk)^2 / K].

This is also the exact marginal, over the common shift, of the Gaussian prior
``W_jk ~ N(0, C)`` on all K classes: G is the negative log-posterior of the
contrasts, whatever the reference class. It differs from penalizing
``||beta||^2 / (2 C)``, whose minimizer is not the fitted model. Parameters
travel as an array of shape ``(K - 1, q)``: one row per non-reference class
holding ``[c_k, beta_k]`` (just ``beta_k`` without an intercept).
"""

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import linalg, sparse
from scipy.optimize import linprog
from scipy.special import log_softmax
from scipy.stats import chi2, norm
from sklearn.exceptions import ConvergenceWarning

# Polish until the Newton step is below this many standard errors.
_STEP_TOL_SE = 1e-6
_MAX_NEWTON_STEPS = 20
# Eigenvalues of the Hessian or Gram matrix, in the units of standardized
# columns, below this fraction of the largest are taken as zero: at about 1e4
# times the rounding error of their computation, they carry no information.
_RCOND = 1e-12
# Below this ratio, without a penalty, check for separation before trusting
# the Hessian.
_RCOND_SUSPECT = 1e-10
# Entries of a unit null vector above this are parameters it involves.
_LOADING_TOL = 1e-6


def _check_alpha(alpha):
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    return alpha


class SoftmaxInferenceResults:
    """Estimates, standard errors and tests of a softmax model's contrasts.

    Returned by :meth:`SoftmaxClassifier.inference`; not meant to be built
    directly. Parameters are contrasts against ``reference_class``: row k of
    ``coef`` is ``W_k - W_ref`` for the k-th label in ``classes``. Entries
    that are not identified (collinear columns, separated classes) are NaN.

    Attributes
    ----------
    classes : ndarray of shape (n_classes - 1,)
        Labels of the non-reference classes, one per row of ``coef``.
    reference_class : object
        The label whose coefficients are fixed at zero.
    feature_names : ndarray of shape (n_features,)
        Term names: ``feature_names_in_`` of the estimator, else
        ``x0, x1, ...``.
    coef, coef_se, coef_z, coef_pvalue : ndarray of shape (n_classes - 1, n_features)
        Estimates, standard errors, z statistics and two-sided p-values.
    intercept, intercept_se, intercept_z, intercept_pvalue : ndarray
        The same for the intercepts, of shape (n_classes - 1,). Without an
        intercept, ``intercept`` is zero and the others are NaN.
    cov_params : ndarray of shape (n_params, n_params)
        Covariance of all parameters, ordered class by class following
        ``classes``, each class as ``[intercept, coef...]`` (no intercept
        entry when the model has none).
    cov_type : {"nonrobust", "HC0"}
        Inverse Hessian, or the sandwich ``H^-1 M H^-1`` with ``M`` the sum of
        the weighted outer products of the per-sample scores.
    alpha : float
        Default level of ``conf_int``, ``summary`` and ``to_frame``.
    C : float
        The estimator's ``C``. When finite, the Hessian includes the penalty
        and the covariance is the Laplace approximation of the posterior
        under the prior ``W ~ N(0, C)``; see the user guide.
    nobs : float
        Number of observations: the sum of the sample weights (frequency
        weights) times the class weights.
    llf : float
        Log-likelihood at the estimates (without the penalty).
    llnull : float
        Log-likelihood of the null model: intercepts only, or all
        probabilities ``1 / n_classes`` for a model without intercepts.
    llr, llr_pvalue : float
        Likelihood-ratio statistic ``2 (llf - llnull)`` and its chi-squared
        p-value with ``df_model`` degrees of freedom.
    df_model : int
        Number of identified parameters other than the intercepts: the
        degrees of freedom of ``llr``.
    aic, bic : float
        ``-2 llf + 2 k`` and ``-2 llf + log(nobs) k``, with ``k`` the number of
        identified parameters.
    prsquared : float
        McFadden's pseudo R-squared, ``1 - llf / llnull``.
    polished : bool
        Whether the estimator's parameters were more than ``1e-6`` standard
        errors (one Newton step) from the optimum, so that the results come
        from a copy polished by Newton steps.
    n_newton_steps : int
        Number of Newton steps taken.
    polish_shift : float
        Largest absolute change of a parameter by the polishing.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sksoftmax import SoftmaxClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> res = SoftmaxClassifier(C=10.0).fit(X, y).inference(X, y)
    >>> res.coef.shape, res.coef_se.shape
    ((2, 4), (2, 4))
    >>> bool(res.prsquared > 0.9)
    True
    """

    def __init__(
        self,
        *,
        classes,
        reference_class,
        feature_names,
        coef,
        intercept,
        cov_params,
        fit_intercept,
        cov_type,
        alpha,
        C,
        nobs,
        llf,
        llnull,
        df_model,
        n_params,
        n_newton_steps,
        polish_shift,
    ):
        self.classes = classes
        self.reference_class = reference_class
        self.feature_names = feature_names
        self.coef = coef
        self.intercept = intercept
        self.cov_params = cov_params
        self.cov_type = cov_type
        self.alpha = alpha
        self.C = C
        self.nobs = nobs
        self.llf = llf
        self.llnull = llnull
        self.df_model = df_model
        self.n_newton_steps = n_newton_steps
        self.polished = n_newton_steps > 0
        self.polish_shift = polish_shift
        self._fit_intercept = fit_intercept

        se = np.sqrt(np.diag(cov_params)).reshape(len(classes), -1)
        if fit_intercept:
            self.intercept_se, self.coef_se = se[:, 0], se[:, 1:]
        else:
            self.intercept_se, self.coef_se = np.full(len(classes), np.nan), se
        self.llr = 2.0 * (llf - llnull)
        self.llr_pvalue = float(chi2.sf(self.llr, df_model))
        self.aic = -2.0 * llf + 2.0 * n_params
        self.bic = -2.0 * llf + np.log(nobs) * n_params
        self.prsquared = 1.0 - llf / llnull

    @property
    def coef_z(self):
        return self.coef / self.coef_se

    @property
    def intercept_z(self):
        return self.intercept / self.intercept_se

    @property
    def coef_pvalue(self):
        return 2.0 * norm.sf(np.abs(self.coef_z))

    @property
    def intercept_pvalue(self):
        return 2.0 * norm.sf(np.abs(self.intercept_z))

    def conf_int(self, alpha=None):
        """Normal (Wald) confidence intervals.

        Parameters
        ----------
        alpha : float, default=None
            The intervals cover with probability ``1 - alpha``; ``None`` uses
            the ``alpha`` given to ``inference``.

        Returns
        -------
        coef_ci : ndarray of shape (n_classes - 1, n_features, 2)
            Lower and upper bounds for ``coef``.
        intercept_ci : ndarray of shape (n_classes - 1, 2)
            Lower and upper bounds for ``intercept``.
        """
        alpha = _check_alpha(self.alpha if alpha is None else alpha)
        q = norm.ppf(1.0 - alpha / 2.0)
        return tuple(
            np.stack([est - q * se, est + q * se], axis=-1)
            for est, se in [
                (self.coef, self.coef_se),
                (self.intercept, self.intercept_se),
            ]
        )

    def _rows(self):
        """(class, term, coef, se) per parameter, in ``cov_params`` order."""
        for k, label in enumerate(self.classes):
            if self._fit_intercept:
                yield label, "intercept", self.intercept[k], self.intercept_se[k]
            for j, name in enumerate(self.feature_names):
                yield label, name, self.coef[k, j], self.coef_se[k, j]

    def _table(self, alpha):
        q = norm.ppf(1.0 - alpha / 2.0)
        rows = []
        for label, term, est, se in self._rows():
            z = est / se
            rows.append(
                (
                    label,
                    term,
                    est,
                    se,
                    z,
                    2.0 * norm.sf(abs(z)),
                    est - q * se,
                    est + q * se,
                )
            )
        return rows

    def summary(self, alpha=None):
        """A text report: fit statistics, then one coefficient table per class.

        Parameters
        ----------
        alpha : float, default=None
            Level of the confidence intervals; ``None`` uses the ``alpha``
            given to ``inference``.

        Returns
        -------
        text : str
        """
        alpha = _check_alpha(self.alpha if alpha is None else alpha)
        width = 78
        penalty = "none" if np.isinf(self.C) else f"C={self.C:g} (Laplace approx.)"
        steps = "step" if self.n_newton_steps == 1 else "steps"
        left = [
            ("Reference class:", str(self.reference_class)),
            ("Covariance:", self.cov_type),
            ("Penalty:", penalty),
            (
                "Newton polish:",
                f"{self.n_newton_steps} {steps}, moved {self.polish_shift:.2e}",
            ),
        ]
        right = [
            ("No. observations:", f"{self.nobs:g}"),
            ("Df model:", f"{self.df_model}"),
            ("Log-likelihood:", f"{self.llf:.4f}"),
            ("LL-null:", f"{self.llnull:.4f}"),
            ("LLR p-value:", f"{self.llr_pvalue:.4g}"),
            ("Pseudo R-squ.:", f"{self.prsquared:.4f}"),
            ("AIC:", f"{self.aic:.4f}"),
            ("BIC:", f"{self.bic:.4f}"),
        ]
        lines = ["Softmax regression results".center(width).rstrip(), "=" * width]
        for i in range(max(len(left), len(right))):
            lk, lv = left[i] if i < len(left) else ("", "")
            rk, rv = right[i] if i < len(right) else ("", "")
            lines.append(f"{lk:<17}{lv:<27}{rk:<18}{rv:>16}".rstrip())
        lo, hi = f"[{alpha / 2:.3g}", f"{1 - alpha / 2:.3g}]"
        term_width = max([12] + [len(str(name)) + 2 for name in self.feature_names])
        current = object()
        for label, term, est, se, z, p, low, high in self._table(alpha):
            if label != current:
                current = label
                lines.append("=" * width)
                lines.append(
                    f"{'class = ' + str(label):<{term_width}}{'coef':>10}"
                    f"{'std err':>11}{'z':>9}{'P>|z|':>9}{lo:>11}{hi:>11}"
                )
                lines.append("-" * width)
            lines.append(
                f"{str(term):<{term_width}}{est:>10.4f}{se:>11.4f}{z:>9.3f}"
                f"{p:>9.3f}{low:>11.4f}{high:>11.4f}"
            )
        lines.append("=" * width)
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def to_frame(self, alpha=None):
        """The coefficient tables as one tidy pandas DataFrame.

        Parameters
        ----------
        alpha : float, default=None
            Level of the confidence intervals; ``None`` uses the ``alpha``
            given to ``inference``.

        Returns
        -------
        frame : pandas.DataFrame
            One row per parameter, with columns ``class``, ``term``, ``coef``,
            ``std_err``, ``z``, ``p_value``, ``ci_lower`` and ``ci_upper``.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "SoftmaxInferenceResults.to_frame requires pandas; install it "
                "with `pip install pandas`, or use summary() for a text table."
            ) from None
        alpha = _check_alpha(self.alpha if alpha is None else alpha)
        columns = [
            "class",
            "term",
            "coef",
            "std_err",
            "z",
            "p_value",
            "ci_lower",
            "ci_upper",
        ]
        return pd.DataFrame(self._table(alpha), columns=columns)


class _ContrastObjective:
    """G of the module docstring, its gradient, Hessian and score outer product.

    Works on the design ``Xt`` (``[1, X]`` with an intercept) of shape
    ``(n, q)``, dense or sparse, and float64 frequency weights.
    """

    def __init__(self, Xt, codes, weights, n_classes, reference, l2, fit_intercept):
        self.Xt = Xt
        self.codes = codes
        self.weights = weights
        self.n_classes = n_classes
        self.others = np.delete(np.arange(n_classes), reference)
        self.l2 = l2
        # Indices, within a class row, of the penalized coefficients.
        self.penalized = np.arange(int(fit_intercept), Xt.shape[1])
        self._rows = np.arange(Xt.shape[0])

    def _log_proba(self, theta):
        logits = np.zeros((self.Xt.shape[0], self.n_classes))
        logits[:, self.others] = self.Xt @ theta.T
        return log_softmax(logits, axis=1)

    def loglik(self, theta):
        log_proba = self._log_proba(theta)
        return float(self.weights @ log_proba[self._rows, self.codes])

    def value(self, theta):
        beta = theta[:, self.penalized]
        penalty = np.sum(beta**2) - np.sum(beta.sum(axis=0) ** 2) / self.n_classes
        return -self.loglik(theta) + 0.5 * self.l2 * penalty

    def _residual(self, theta):
        """P - Y for the non-reference classes, and P, both (n, K - 1)."""
        proba = np.exp(self._log_proba(theta))[:, self.others]
        residual = proba.copy()
        hit = self.codes[:, None] == self.others[None, :]
        residual[hit] -= 1.0
        return residual, proba

    def gradient(self, theta):
        residual, _ = self._residual(theta)
        grad = np.asarray((self.Xt.T @ (residual * self.weights[:, None])).T)
        beta = theta[:, self.penalized]
        grad[:, self.penalized] += self.l2 * (beta - beta.sum(axis=0) / self.n_classes)
        return grad

    def gram(self, w):
        """``Xt^T diag(w) Xt`` as a dense array."""
        if sparse.issparse(self.Xt):
            return (self.Xt.T @ sparse.diags(w) @ self.Xt).toarray()
        return (self.Xt * w[:, None]).T @ self.Xt

    def _block_matrix(self, weight):
        """Assemble ``[Xt^T diag(weight(k, l)) Xt]_{k, l}`` as (p, p)."""
        n_other, q = len(self.others), self.Xt.shape[1]
        out = np.empty((n_other, q, n_other, q))
        for k in range(n_other):
            for l in range(k, n_other):
                out[k, :, l, :] = self.gram(weight(k, l))
                out[l, :, k, :] = out[k, :, l, :].T
        return out

    def hessian(self, theta):
        """Exact Hessian of G, shape (p, p) with p = (K - 1) q."""
        _, proba = self._residual(theta)
        s = self.weights

        def weight(k, l):
            return s * proba[:, k] * (float(k == l) - proba[:, l])

        H = self._block_matrix(weight)
        if self.l2:
            idx = self.penalized
            for k in range(len(self.others)):
                for l in range(len(self.others)):
                    H[k, idx, l, idx] += self.l2 * (
                        float(k == l) - 1.0 / self.n_classes
                    )
        return H.reshape(theta.size, theta.size)

    def score_outer(self, theta):
        """``sum_i s_i g_i g_i^T`` with ``g_i`` the score of sample i."""
        residual, _ = self._residual(theta)
        s = self.weights
        M = self._block_matrix(lambda k, l: s * residual[:, k] * residual[:, l])
        return M.reshape(theta.size, theta.size)


def _eigh(A, scale):
    """Eigen-decomposition of ``A / outer(scale, scale)``, largest eigenvalue 1.

    Returns the relative eigenvalues, the eigenvectors and the largest
    eigenvalue.
    """
    eigval, eigvec = np.linalg.eigh(A / np.outer(scale, scale))
    top = eigval[-1] if eigval.size and eigval[-1] > 0 else 1.0
    return eigval / top, eigvec, top


def _inverse_on(H, keep, scale):
    """Inverse of ``H`` restricted to the parameters ``keep``.

    ``scale`` puts the parameters in the units of standardized columns, so
    that a small eigenvalue means weak information, not a large feature.
    Returns the (len(keep), len(keep)) pseudo-inverse, the parameters (a
    subset of ``keep``) its numerical null space involves, which it leaves
    out, and the smallest relative eigenvalue.
    """
    if keep.size == 0:
        return np.zeros((0, 0)), keep, 1.0
    scale = scale[keep]
    eigval, eigvec, top = _eigh(H[np.ix_(keep, keep)], scale)
    good = eigval > _RCOND
    inverse = (eigvec[:, good] / (eigval[good] * top)) @ eigvec[:, good].T
    inverse /= np.outer(scale, scale)
    null = np.any(np.abs(eigvec[:, ~good]) > _LOADING_TOL, axis=1)
    return inverse, keep[null], float(eigval[0])


def _collinear_columns(gram, scale):
    """Columns of the design that are linearly dependent.

    Returns the involved columns (not identified) and a maximal independent
    subset of columns.
    """
    eigval, eigvec, _ = _eigh(gram, scale)
    null = eigval <= _RCOND
    q = gram.shape[0]
    if not np.any(null):
        return np.array([], dtype=int), np.arange(q)
    involved = np.flatnonzero(np.any(np.abs(eigvec[:, null]) > _LOADING_TOL, axis=1))
    # A pivoted QR keeps columns that span the others.
    _, _, pivots = linalg.qr(gram / np.outer(scale, scale), pivoting=True)
    independent = np.sort(pivots[: q - int(np.sum(null))])
    return involved, independent


def _separating_shift(obj, column_scale):
    """A shift of the parameters to the limit of a separation, or None.

    With margins ``m_ik = a_{i, y_i} - a_{i, k}`` (k != y_i), solves the
    linear program: maximize ``sum t_ik`` subject to ``0 <= t_ik <= 1``,
    ``t_ik <= m_ik`` and ``m_ik >= 0``. Its optimum is 0 when the classes
    overlap. Otherwise they are (quasi-)completely separated: along the
    optimal direction no likelihood term falls and some rise without bound,
    so the maximum likelihood estimate does not exist. Any pair that some
    direction separates is separated by the optimal one (adding a little of
    that direction would raise the sum), and scaling makes every such margin
    at least 1. The returned shift goes far enough along it that the
    separated terms are 1 to machine precision.
    """
    Xt = sparse.csr_matrix(obj.Xt) @ sparse.diags(1.0 / column_scale)
    blocks = []
    for k in range(obj.n_classes):
        rows = obj.codes != k
        Xr, yr = Xt[rows], obj.codes[rows]
        blocks.append(
            sparse.hstack(
                [
                    sparse.diags((yr == c).astype(float)) @ Xr - float(c == k) * Xr
                    for c in obj.others
                ]
            )
        )
    A = sparse.vstack(blocks).tocsr()
    n_pairs, n_params = A.shape
    identity = sparse.eye(n_pairs)
    result = linprog(
        np.concatenate([np.zeros(n_params), -np.ones(n_pairs)]),
        A_ub=sparse.vstack(
            [
                sparse.hstack([-A, identity]),
                sparse.hstack([-A, sparse.csr_matrix((n_pairs, n_pairs))]),
            ]
        ),
        b_ub=np.zeros(2 * n_pairs),
        bounds=[(None, None)] * n_params + [(0.0, 1.0)] * n_pairs,
        method="highs",
    )
    if result.status != 0 or -result.fun < 0.5:
        return None
    direction = result.x[:n_params]
    # exp(-50) is below float64 resolution next to 1.
    length = 50.0 / np.min((A @ direction)[result.x[n_params:] > 0.5])
    return length * direction.reshape(-1, Xt.shape[1]) / column_scale


@dataclass
class _Point:
    """Where the Newton polish stopped, and the curvature there."""

    theta: np.ndarray
    n_steps: int
    converged: bool
    step_se: float  # the last Newton step, in standard errors
    inverse: np.ndarray  # of the Hessian restricted to the kept parameters
    singular: np.ndarray  # parameters the inverse leaves out
    min_eig: float


def _polish(obj, theta, keep, scale):
    """Newton steps on the parameters ``keep`` until the step is negligible.

    Stops when the step is at most ``_STEP_TOL_SE`` standard errors, after
    ``_MAX_NEWTON_STEPS`` steps, or when a backtracking line search finds no
    decrease.
    """
    n_steps = 0
    while True:
        value, grad = obj.value(theta), obj.gradient(theta).ravel()
        hessian = obj.hessian(theta)
        inverse, singular, min_eig = _inverse_on(hessian, keep, scale)
        step = inverse @ grad[keep]
        se = np.sqrt(np.diag(inverse))
        regular = ~np.isin(keep, singular)
        step_se = float(np.max(np.abs(step[regular]) / se[regular], initial=0.0))
        converged = step_se <= _STEP_TOL_SE
        if converged or n_steps == _MAX_NEWTON_STEPS:
            break
        slope = float(grad[keep] @ step)
        t = 1.0
        while t > 1e-10:
            trial = theta.ravel().copy()
            trial[keep] -= t * step
            trial = trial.reshape(theta.shape)
            if obj.value(trial) <= value - 1e-4 * t * slope:
                break
            t *= 0.5
        else:
            break
        theta = trial
        n_steps += 1
    return _Point(theta, n_steps, converged, step_se, inverse, singular, min_eig)


def _term_list(params, classes, terms):
    q = len(terms)
    by_class = {}
    for idx in params:
        by_class.setdefault(classes[idx // q], []).append(str(terms[idx % q]))
    return "; ".join(
        f"class {label}: {', '.join(names)}" for label, names in by_class.items()
    )


def softmax_inference(
    X,
    codes,
    sample_weight,
    coef,
    intercept,
    *,
    classes,
    reference,
    C,
    fit_intercept,
    feature_names,
    cov_type,
    alpha,
):
    """Inference on the contrasts of a fitted softmax model.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features), float64
    codes : ndarray of shape (n_samples,)
        Class codes in ``[0, n_classes)``, every class with positive weight.
    sample_weight : ndarray of shape (n_samples,)
        Frequency weights (sample weight times class weight).
    coef, intercept : ndarray of shape (n_classes, n_features), (n_classes,)
        The fitted symmetric parameters.
    classes : ndarray of shape (n_classes,)
    reference : int
        Code of the reference class.
    C : float
    fit_intercept : bool
    feature_names : ndarray of shape (n_features,)
    cov_type : {"nonrobust", "HC0"}
    alpha : float

    Returns
    -------
    SoftmaxInferenceResults
    """
    positive = sample_weight > 0
    X, codes, sample_weight = X[positive], codes[positive], sample_weight[positive]
    n_classes = len(classes)
    if fit_intercept:
        ones = np.ones((X.shape[0], 1))
        Xt = (
            sparse.hstack([ones, X], format="csr")
            if sparse.issparse(X)
            else np.hstack([ones, X])
        )
        terms = np.concatenate([["intercept"], feature_names]).astype(object)
    else:
        Xt, terms = X, np.asarray(feature_names, dtype=object)
    l2 = 0.0 if np.isinf(C) else 1.0 / C
    obj = _ContrastObjective(
        Xt, codes, sample_weight, n_classes, reference, l2, fit_intercept
    )
    n_other, q = n_classes - 1, Xt.shape[1]
    n_params = n_other * q
    other_labels = classes[obj.others]

    gram = obj.gram(sample_weight)
    column_scale = np.sqrt(np.diag(gram))
    column_scale[column_scale == 0.0] = 1.0
    scale = np.tile(column_scale, n_other)

    undefined = np.zeros(n_params, dtype=bool)
    keep = np.arange(n_params)
    rank = q
    if l2 == 0.0:
        involved, independent = _collinear_columns(gram, column_scale)
        rank = len(independent)
        if involved.size:
            offsets = q * np.arange(n_other)[:, None]
            undefined[(offsets + involved).ravel()] = True
            keep = (offsets + independent).ravel()
            warnings.warn(
                f"The columns {', '.join(map(str, terms[involved]))} of the design "
                "are collinear (linearly dependent): without a penalty their "
                "coefficients are not identified and are reported as NaN. Drop "
                "one of them, or fit with a finite C.",
                UserWarning,
                stacklevel=4,
            )

    symmetric = (
        np.column_stack([intercept, coef]) if fit_intercept else np.asarray(coef)
    )
    theta0 = (symmetric - symmetric[reference])[obj.others]
    point = _polish(obj, theta0, keep, scale)
    n_steps = point.n_steps
    separated = False
    if l2 == 0.0 and (not point.converged or point.min_eig < _RCOND_SUSPECT):
        shift = _separating_shift(obj, column_scale)
        if shift is not None:
            # Continue at the limit of the likelihood along the separation,
            # where the parameters it leaves uninformed have no curvature.
            separated = True
            point = _polish(obj, point.theta + shift, keep, scale)
            n_steps += point.n_steps
    if separated:
        warnings.warn(
            "The classes are (quasi-)completely separated: the likelihood keeps "
            "increasing along a direction that moves "
            f"{_term_list(point.singular, other_labels, terms)}. Their maximum "
            "likelihood estimates do not exist (they are infinite or not "
            "informed by the data) and are reported as NaN; the other estimates "
            "and standard errors are those of the limit. Fit with a finite C for "
            "a penalized estimate.",
            UserWarning,
            stacklevel=4,
        )
    elif point.singular.size:
        warnings.warn(
            "The Hessian is numerically singular in the directions of "
            f"{_term_list(point.singular, other_labels, terms)}; these are "
            "reported as NaN.",
            UserWarning,
            stacklevel=4,
        )
    undefined[point.singular] = True
    if not point.converged:
        warnings.warn(
            f"Polishing stopped after {n_steps} Newton steps with a remaining "
            f"step of {point.step_se:.2g} standard errors; the results may be "
            "inaccurate.",
            ConvergenceWarning,
            stacklevel=4,
        )

    inverse = point.inverse
    if cov_type == "HC0":
        # With a penalty the bread is the penalized Hessian, the meat the
        # scores of the likelihood alone.
        meat = obj.score_outer(point.theta)[np.ix_(keep, keep)]
        inverse = inverse @ meat @ inverse
    cov = np.full((n_params, n_params), np.nan)
    cov[np.ix_(keep, keep)] = inverse
    cov[undefined, :] = np.nan
    cov[:, undefined] = np.nan

    estimates = point.theta.ravel().copy()
    moved = np.abs(estimates - theta0.ravel())[~undefined]
    estimates[undefined] = np.nan
    estimates = estimates.reshape(n_other, q)

    nobs = float(np.sum(sample_weight))
    if fit_intercept:
        weight_by_class = np.bincount(codes, weights=sample_weight, minlength=n_classes)
        llnull = float(weight_by_class @ np.log(weight_by_class / nobs))
    else:
        # Nested in a model without intercepts: all parameters zero.
        llnull = -nobs * np.log(n_classes)
    n_identified = n_other * rank
    return SoftmaxInferenceResults(
        classes=other_labels,
        reference_class=classes[reference],
        feature_names=np.asarray(feature_names, dtype=object),
        coef=estimates[:, int(fit_intercept) :],
        intercept=estimates[:, 0] if fit_intercept else np.zeros(n_other),
        cov_params=cov,
        fit_intercept=fit_intercept,
        cov_type=cov_type,
        alpha=alpha,
        C=C,
        nobs=nobs,
        llf=obj.loglik(point.theta),
        llnull=llnull,
        df_model=n_identified - n_other * int(fit_intercept),
        n_params=n_identified,
        n_newton_steps=n_steps,
        polish_shift=float(np.max(moved, initial=0.0)),
    )
