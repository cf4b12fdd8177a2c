r"""Standard errors, tests and a summary table for a fitted softmax model.

The symmetric parameterization the estimator fits (one coefficient row per
class) is not identified without a penalty, so inference is on the contrasts
against a reference class ``r``: ``beta_k = W_k - W_r`` and
``c_k = b_k - b_r`` for the ``K - 1`` other classes. Parameters travel as an
array of shape ``(K - 1, q)``: one row per non-reference class holding
``[c_k, beta_k]`` (just ``beta_k`` without an intercept).

The contrasts ``theta`` map linearly to symmetric parameters: put a zero row
for the reference class and centre each column over the classes,
``W = (I - 1 1^T / K) [theta; 0]``. The logits differ from those of
``theta`` by a common shift, which the softmax ignores, and among all
symmetric parameters with these contrasts the centred ones have the smallest
penalty (the fitted model is centred too: the penalty's gradient keeps every
row of ``W`` summing to zero). So the fitted model minimizes

.. math::

    G(\theta) = S \left[f(A\theta) + R(A\theta)\right],

with ``f`` the loss engine's weighted mean cross-entropy, ``R`` the L2
penalty of ``C`` and ``A`` the centring map; with ``R = ||W||^2 / (2 C S)``,
``S R`` is ``1 / (2 C) [sum_k beta_jk^2 - (sum_k beta_jk)^2 / K]`` per
feature, the exact marginal, over the common shift, of the Gaussian prior
``W_jk ~ N(0, C)`` on all K classes. Its gradient is ``S A^T grad``, its
Hessian ``S A^T H A``, and the sandwich's middle ``S A^T M A`` with ``M`` the
engine's weighted outer products of per-sample scores: everything comes from
the engine the fit used.
"""

import functools
import numbers
import os
import warnings
from collections import namedtuple

import numpy as np
from scipy import linalg, sparse
from scipy.special import expit, log_softmax, softmax
from scipy.stats import chi2, norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array

from ._engines._numpy import NumPyEngine
from ._penalty import ElasticNet
from ._separation import overlaps, separating_shift
from ._solvers import lbfgs, newton
from ._symmetric import cholesky, invert_factored, solve_factored
from ._validation import sample_weights

# Polish until the Newton step is below this many standard errors.
_STEP_TOL_SE = 1e-6
_MAX_NEWTON_STEPS = 20
# Eigenvalues of the Hessian or Gram matrix, in the units of standardized
# columns, below this fraction of the largest are taken as zero: at about 1e4
# times the rounding error of their computation, they carry no information.
_RCOND = 1e-12
# Entries of a unit null vector above this are parameters it involves.
_LOADING_TOL = 1e-6
# A Cholesky factor of the scaled Hessian is used when its smallest
# eigenvalue, as the condition estimate bounds it, is at least this times the
# larger of its norm and 1: well above _RCOND, as the estimate can be off by
# a factor of the dimension.
_CHOLESKY_RCOND = 1e-9
# Up to this many parameters a Hessian that is singular, or nearly, goes to
# an eigen-decomposition (about 10 s at 3000 on 2 cores).
_EIGH_MAX_PARAMS = 3000
# The separation LP on a dense 1000 x 50 design with 11 classes (1e6 nonzeros)
# takes about a minute with HiGHS; beyond that it is skipped, with a warning.
_SEPARATION_LP_MAX_NONZEROS = 1_000_000
# Above _EIGH_MAX_PARAMS parameters the fit is tightened by L-BFGS before the
# Newton polish: to this gradient tolerance, in at most this many iterations.
_TIGHTEN_TOL = 1e-10
_TIGHTEN_ITER = 1000


ChiSquaredTest = namedtuple("ChiSquaredTest", ["statistic", "df", "pvalue"])
ChiSquaredTest.__doc__ = (
    """A chi-squared test: its statistic, degrees of freedom and p-value."""
)


def _check_alpha(alpha):
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}.")
    return alpha


def _pvalue(z):
    """Two-sided normal p-value of a z statistic."""
    return 2.0 * norm.sf(np.abs(z))


def _interval(estimate, se, alpha):
    """Normal confidence bounds, stacked on a last axis of length 2."""
    half = norm.ppf(1.0 - alpha / 2.0) * se
    return np.stack([estimate - half, estimate + half], axis=-1)


def _wald_table(rows, alpha):
    """Add z, p-value and interval to each ``(class, term, estimate, se)``."""
    q = norm.ppf(1.0 - alpha / 2.0)
    table = []
    for label, term, est, se in rows:
        z = est / se
        table.append((label, term, est, se, z, _pvalue(z), est - q * se, est + q * se))
    return table


def _class_tables(table, alpha, names, estimate):
    """Text lines of one block per class of a :func:`_wald_table`."""
    width = 78
    lo, hi = f"[{alpha / 2:.3g}", f"{1 - alpha / 2:.3g}]"
    term_width = max([12] + [len(str(name)) + 2 for name in names])
    lines = []
    current = object()
    for label, term, est, se, z, p, low, high in table:
        if label != current:
            current = label
            lines.append("=" * width)
            lines.append(
                f"{'class = ' + str(label):<{term_width}}{estimate:>10}"
                f"{'std err':>11}{'z':>9}{'P>|z|':>9}{lo:>11}{hi:>11}"
            )
            lines.append("-" * width)
        lines.append(
            f"{str(term):<{term_width}}{est:>10.4f}{se:>11.4f}{z:>9.3f}"
            f"{p:>9.3f}{low:>11.4f}{high:>11.4f}"
        )
    lines.append("=" * width)
    return lines


def _data_frame(rows, columns, method):
    try:
        import pandas as pd
    except ImportError:
        raise ImportError(
            f"{method} requires pandas; install it with `pip install pandas`, "
            "or use summary() for a text table."
        ) from None
    return pd.DataFrame(rows, columns=columns)


def _wald_frame(rows, alpha, estimate, method):
    """A :func:`_wald_table` as a DataFrame; ``estimate`` names its third column."""
    columns = ["class", "term", estimate, "std_err", "z", "p_value"]
    return _data_frame(
        _wald_table(rows, alpha), columns + ["ci_lower", "ci_upper"], method
    )


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
    cov_type : {"nonrobust", "HC0", "HC1", "cluster"}
        Inverse Hessian, or the sandwich ``H^-1 M H^-1`` with ``M`` the sum of
        the weighted outer products of the per-sample scores (``"HC0"``),
        times ``nobs / (nobs - n_params)`` (``"HC1"``), or of the summed
        scores of each cluster with statsmodels' small-sample correction
        (``"cluster"``).
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
    n_params : int
        Number of identified parameters.
    aic, bic : float
        ``-2 llf + 2 n_params`` and ``-2 llf + log(nobs) n_params``.
    prsquared : float
        McFadden's pseudo R-squared, ``1 - llf / llnull``.
    polished : bool
        Whether the results come from a copy of the estimator's parameters
        moved toward the optimum: by Newton steps, when the estimator's were
        more than ``1e-6`` standard errors from it, and above 3000 parameters
        first by L-BFGS iterations (cheap next to a Newton step there).
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
        all_classes,
        reference,
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
        self.n_params = n_params
        self.n_newton_steps = n_newton_steps
        self.polished = polish_shift > 0
        self.polish_shift = polish_shift
        self._fit_intercept = fit_intercept
        self._all_classes = all_classes
        self._reference = reference

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
        return _pvalue(self.coef_z)

    @property
    def intercept_pvalue(self):
        return _pvalue(self.intercept_z)

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
        return (
            _interval(self.coef, self.coef_se, alpha),
            _interval(self.intercept, self.intercept_se, alpha),
        )

    def _rows(self):
        """(class, term, coef, se) per parameter, in ``cov_params`` order."""
        for k, label in enumerate(self.classes):
            if self._fit_intercept:
                yield label, "intercept", self.intercept[k], self.intercept_se[k]
            for j, name in enumerate(self.feature_names):
                yield label, name, self.coef[k, j], self.coef_se[k, j]

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
            The report, lines separated by newlines.
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
        lines += _class_tables(
            _wald_table(self._rows(), alpha), alpha, self.feature_names, "coef"
        )
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def _params(self):
        """All parameters, flat, in ``cov_params`` order."""
        if self._fit_intercept:
            return np.column_stack([self.intercept, self.coef]).ravel()
        return self.coef.ravel()

    def wald_test(self, R, q=None):
        """Wald test of the linear restrictions ``R theta = q``.

        Parameters
        ----------
        R : array-like of shape (n_restrictions, n_params) or (n_params,)
            One restriction per row, on the parameters in ``cov_params``
            order: class by class, each class as ``[intercept, coef...]``.
            The rows must be linearly independent.
        q : array-like of shape (n_restrictions,), default=None
            Right-hand side; ``None`` means zeros.

        Returns
        -------
        test : ChiSquaredTest
            The statistic ``(R theta - q)^T (R V R^T)^-1 (R theta - q)``,
            with ``V`` the covariance ``cov_params``, its degrees of freedom
            (the number of restrictions) and its chi-squared p-value.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import load_iris
        >>> from sksoftmax import SoftmaxClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> res = SoftmaxClassifier(C=10.0).fit(X, y).inference(X, y)
        >>> R = np.zeros((1, res.cov_params.shape[0]))
        >>> R[0, 1] = 1.0  # the first coefficient of class 1 is zero
        >>> test = res.wald_test(R)
        >>> test.df, bool(np.isclose(test.statistic, res.coef_z[0, 0] ** 2))
        (1, True)
        """
        n = self.cov_params.shape[0]
        R = np.atleast_2d(np.asarray(R, dtype=np.float64))
        if R.ndim != 2 or R.shape[1] != n:
            raise ValueError(
                f"R must have {n} columns, one per parameter; got shape {R.shape}."
            )
        q = np.zeros(R.shape[0]) if q is None else np.asarray(q, dtype=np.float64)
        diff = R @ self._params() - q
        statistic = float(diff @ linalg.solve(R @ self.cov_params @ R.T, diff))
        df = R.shape[0]
        return ChiSquaredTest(statistic, df, float(chi2.sf(statistic, df)))

    def wald_test_terms(self):
        """Joint Wald test that a term has no effect on any class.

        For each term (the intercept and every feature) the test of its
        ``n_classes - 1`` contrasts being all zero: the multinomial analogue
        of a type-III table. The hypothesis does not depend on the reference
        class, nor does the test.

        Returns
        -------
        table : pandas.DataFrame
            One row per term, with columns ``term``, ``statistic``, ``df``
            and ``p_value``.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sksoftmax import SoftmaxClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> res = SoftmaxClassifier(C=10.0).fit(X, y).inference(X, y)
        >>> res.wald_test_terms()[["term", "df"]]
                term  df
        0  intercept   2
        1         x0   2
        2         x1   2
        3         x2   2
        4         x3   2
        """
        terms = list(self.feature_names)
        if self._fit_intercept:
            terms = ["intercept", *terms]
        n_other, q = len(self.classes), len(terms)
        rows = []
        for a, term in enumerate(terms):
            R = np.zeros((n_other, n_other * q))
            R[np.arange(n_other), q * np.arange(n_other) + a] = 1.0
            rows.append((term, *self.wald_test(R)))
        return _data_frame(
            rows,
            ["term", "statistic", "df", "p_value"],
            "SoftmaxInferenceResults.wald_test_terms",
        )

    def lr_test(self, other):
        """Likelihood-ratio test against another, nested model.

        Both results must come from unpenalized fits (``C=np.inf``) on the
        same data, one model nested in the other (for instance, fitted on a
        subset of the columns); which one is larger is read from their
        numbers of parameters.

        Parameters
        ----------
        other : SoftmaxInferenceResults
            The results of the other model.

        Returns
        -------
        test : ChiSquaredTest
            ``2 (llf_large - llf_small)``, the difference of the numbers of
            identified parameters, and the chi-squared p-value.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn.datasets import make_classification
        >>> from sksoftmax import SoftmaxClassifier
        >>> X, y = make_classification(
        ...     n_features=3, n_informative=2, n_redundant=0, n_classes=3,
        ...     n_clusters_per_class=1, random_state=0)
        >>> clf = SoftmaxClassifier(C=np.inf)
        >>> full = clf.fit(X, y).inference(X, y)
        >>> small = clf.fit(X[:, :2], y).inference(X[:, :2], y)
        >>> full.lr_test(small).df  # the last column, in both contrasts
        2
        """
        if not isinstance(other, SoftmaxInferenceResults):
            raise TypeError(
                f"other must be SoftmaxInferenceResults, got {type(other).__name__}."
            )
        if np.isfinite(self.C) or np.isfinite(other.C):
            raise ValueError(
                "lr_test needs maximum likelihood fits (C=np.inf): the "
                "likelihood ratio of penalized fits is not chi-squared."
            )
        if self.nobs != other.nobs:
            raise ValueError(
                f"The models were fitted on different data ({self.nobs:g} and "
                f"{other.nobs:g} observations)."
            )
        small, large = sorted([self, other], key=lambda res: res.n_params)
        df = large.n_params - small.n_params
        if df == 0:
            raise ValueError(
                "The models have the same number of parameters; neither is "
                "nested in the other."
            )
        statistic = 2.0 * (large.llf - small.llf)
        return ChiSquaredTest(statistic, df, float(chi2.sf(statistic, df)))

    def predict(self, X, alpha=None):
        """Probabilities of every class with confidence intervals.

        The interval for ``P(y = k | x)`` is built on the log-odds scale
        ``logit p_k = log(p_k / (1 - p_k))``: a normal interval
        ``logit p_k +/- z_{1-alpha/2} se``, with ``se`` from the delta method
        (the gradient of ``logit p_k`` in the parameters is
        ``(d_km - p_m) [1, x] / (1 - p_k)`` for class ``m``), mapped back by
        the logistic function. The bounds lie in ``[0, 1]`` and are not
        symmetric around ``p_k``, as they should not be near 0 or 1.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        alpha : float, default=None
            The intervals cover with probability ``1 - alpha``; ``None`` uses
            the ``alpha`` given to ``inference``.

        Returns
        -------
        proba, ci_lower, ci_upper : ndarray of shape (n_samples, n_classes)
            The probabilities and the bounds of their intervals, one column
            per class, the reference included, in the estimator's
            ``classes_`` order.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sksoftmax import SoftmaxClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> res = SoftmaxClassifier(C=10.0).fit(X, y).inference(X, y)
        >>> proba, lower, upper = res.predict(X[:2])
        >>> bool(((lower <= proba) & (proba <= upper)).all())
        True
        """
        alpha = _check_alpha(self.alpha if alpha is None else alpha)
        Z = self._design(X)
        logits = Z @ self._full_params().T
        log_proba = log_softmax(logits, axis=1)
        proba = np.exp(log_proba)
        n, K = proba.shape
        # Gradient of logit p_ik in theta_ma, all K classes, then in
        # cov_params order.
        M = np.eye(K)[None] - proba[:, None, :]
        jacobian = M[..., None] * Z[:, None, None, :] / (1.0 - proba)[..., None, None]
        jacobian = self._to_cov_order(jacobian)
        se = np.sqrt(np.einsum("ikp,pq,ikq->ik", jacobian, self.cov_params, jacobian))
        bounds = expit(_interval(log_proba - np.log1p(-proba), se, alpha))
        return proba, bounds[..., 0], bounds[..., 1]

    def _full_params(self):
        """Contrasts of all K classes, shape ``(K, n_features + 1)``.

        Column 0 is the intercept (zero without one); the reference row is
        zero, so that its logit is the zero the others are measured from.
        """
        theta = np.zeros((len(self._all_classes), len(self.feature_names) + 1))
        others = np.delete(np.arange(len(self._all_classes)), self._reference)
        theta[others, 0] = self.intercept
        theta[others, 1:] = self.coef
        return theta

    def _to_cov_order(self, jacobian):
        """Keep the parameter axes ``(..., K, n_features + 1)`` of the
        covariance: no reference row, no intercept column without one."""
        others = np.delete(np.arange(len(self._all_classes)), self._reference)
        jacobian = jacobian[..., others, int(not self._fit_intercept) :]
        return jacobian.reshape(*jacobian.shape[:-2], -1)

    def _design(self, X):
        X = check_array(X, accept_sparse=["csr", "csc"], dtype=np.float64)
        if X.shape[1] != len(self.feature_names):
            raise ValueError(
                f"X has {X.shape[1]} features, but the model has "
                f"{len(self.feature_names)}."
            )
        X = X.toarray() if sparse.issparse(X) else X
        return np.column_stack([np.ones(X.shape[0]), X])

    def marginal_effects(
        self,
        X,
        at="overall",
        method="dydx",
        *,
        dummy=False,
        count=False,
        sample_weight=None,
    ):
        """Effects of the features on the probability of every class.

        The effect of feature j on class k is the derivative
        ``dP(y = k | x) / dx_j``, evaluated at each row of ``X`` and averaged
        (``at="overall"``, the average marginal effect), or evaluated once at
        the column means, medians, at zero or at chosen values. Standard
        errors come from the delta method with the exact Jacobian of the
        effects in the parameters; the effects of all classes sum to zero for
        each feature.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The rows to evaluate at, usually the training data.
        at : {"overall", "mean", "median", "zero"} or dict, default="overall"
            Average the effects over the rows, or evaluate them at the mean,
            the median of each column, or at all features zero. A dict maps
            features (names as in ``feature_names``, or column indices) to
            values: the effects at the column means with those features set
            to the given values.
        method : {"dydx", "eyex", "dyex", "eydx"}, default="dydx"
            ``"dydx"``: derivative of the probability; ``"eydx"``: of its
            logarithm (a semi-elasticity, ``dydx / p``); ``"dyex"``: with
            respect to the feature's logarithm (``dydx * x``); ``"eyex"``:
            the elasticity ``dydx * x / p``. The transform applies per row,
            before averaging.
        dummy : bool, default=False
            For the binary features (every value 0 or 1 in ``X``), report the
            discrete change from 0 to 1 instead of the derivative: the
            probability (``"dydx"``) or its logarithm (``"eydx"``) with the
            feature set to 1, minus the same with it set to 0.
        count : bool, default=False
            For the count features (non-negative integers, not binary, not
            constant), report the centred discrete change of one unit:
            half the change from ``x - 1`` to ``x + 1``. With ``dummy``,
            ``count`` allows only ``"dydx"`` and ``"eydx"`` evaluated
            ``"overall"``, at the mean or at a dict, as statsmodels does.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the average (``"overall"``) and in the
            column means (``"mean"`` and a dict); not with ``"median"``.

        Returns
        -------
        effects : MarginalEffects
            Effects, standard errors, z statistics, p-values, intervals,
            ``summary()`` and ``to_frame()``.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sksoftmax import SoftmaxClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> res = SoftmaxClassifier(C=10.0).fit(X, y).inference(X, y)
        >>> me = res.marginal_effects(X)
        >>> me.effects.shape  # classes by features
        (3, 4)
        >>> bool(abs(me.effects.sum(axis=0)).max() < 1e-12)
        True
        >>> at_petal = res.marginal_effects(X, at={"x2": 1.5})
        >>> at_petal.effects.shape
        (3, 4)
        """
        if not (isinstance(at, dict) or at in _AT):
            raise ValueError(
                f"at must be one of {sorted(_AT)} or a dict of feature values, "
                f"got {at!r}."
            )
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
        if (dummy or count) and (method.endswith("ex") or at in ("median", "zero")):
            raise ValueError(
                "dummy and count effects are discrete changes: they allow "
                "method 'dydx' or 'eydx' and at 'overall', 'mean' or a dict, "
                f"got method={method!r}, at={at!r}."
            )
        design = self._design(X)
        weights = self._row_weights(sample_weight, design.shape[0], at)
        Z, w = self._evaluation_rows(design, at, weights)
        theta = self._full_params()
        proba = softmax(Z @ theta.T, axis=1)
        effects, jacobian = _effects_jacobian(Z, w, theta, proba, method)
        for column, change in _discrete_columns(design[:, 1:], dummy, count):
            effects[:, column], jacobian[:, column] = _discrete_change(
                Z, w, theta, column + 1, change, method
            )
        jacobian = self._to_cov_order(jacobian)
        flat = jacobian.reshape(effects.size, -1)
        cov = flat @ self.cov_params @ flat.T
        return MarginalEffects(
            classes=self._all_classes,
            feature_names=self.feature_names,
            effects=effects,
            cov=cov,
            at=at,
            method=method,
            alpha=self.alpha,
        )

    @staticmethod
    def _row_weights(sample_weight, n_rows, at):
        if sample_weight is None:
            return np.full(n_rows, 1.0 / n_rows)
        if at == "median" or at == "zero":
            raise ValueError(
                f"sample_weight applies to at='overall', 'mean' or a dict, not {at!r}."
            )
        weights = sample_weights(sample_weight, n_rows)
        return weights / np.sum(weights)

    def _evaluation_rows(self, design, at, weights):
        """Rows of ``[1, X]`` to evaluate at, and their weights in the average."""
        if isinstance(at, dict):
            row = weights @ design
            for key, value in at.items():
                row[1 + self._feature_index(key)] = _finite_value(key, value)
            return row[None, :], np.ones(1)
        if at == "overall":
            return design, weights
        if at == "mean":
            return (weights @ design)[None, :], np.ones(1)
        if at == "median":
            return np.median(design, axis=0, keepdims=True), np.ones(1)
        return np.eye(1, design.shape[1]), np.ones(1)

    def _feature_index(self, key):
        names = list(self.feature_names)
        if isinstance(key, str):
            if key not in names:
                raise ValueError(f"at names a feature {key!r} the model does not have.")
            return names.index(key)
        if isinstance(key, numbers.Integral) and not isinstance(key, bool):
            if not -len(names) <= key < len(names):
                raise ValueError(
                    f"at has column index {key}, but the model has {len(names)} "
                    "features."
                )
            return int(key) % len(names)
        raise ValueError(
            f"at keys must be feature names or column indices, got {key!r}."
        )

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
        alpha = _check_alpha(self.alpha if alpha is None else alpha)
        return _wald_frame(
            self._rows(), alpha, "coef", "SoftmaxInferenceResults.to_frame"
        )


# Where the effects can be evaluated, besides a dict of feature values.
_AT = ("overall", "mean", "median", "zero")
_METHODS = ("dydx", "eyex", "dyex", "eydx")


def _effects_jacobian(Z, w, theta, proba, method):
    """Mean over the rows, weighted by ``w``, of the effects and their Jacobian.

    With ``B`` the slopes of ``theta`` (reference row zero) and
    ``D_ikj = B_kj - sum_l p_il B_lj``, the derivative of the probability is
    ``p_ik D_ikj``; each method is ``F_ik G_ij D_ikj`` with ``F`` the
    probabilities (``"dy"``) or one (``"ey"``, the logarithm) and ``G`` the
    features (``"ex"``) or one. The derivatives of ``p_ik`` and ``D_ikj``
    in ``theta_ma`` are ``p_ik (d_km - p_im) Z_ia`` and
    ``(d_km - p_im) [a = j + 1] - p_im Z_ia D_imj``.

    Returns the effects, shape ``(K, d)``, and the Jacobian, shape
    ``(K, d, K, d + 1)`` over all of ``theta``.
    """
    K = proba.shape[1]
    slopes = theta[:, 1:]
    D = slopes[None] - (proba @ slopes)[:, None, :]
    F = proba if method.startswith("dy") else np.ones_like(proba)
    G = Z[:, 1:] if method.endswith("ex") else np.ones_like(Z[:, 1:])
    effects = np.einsum("i,ik,ij,ikj->kj", w, F, G, D)
    # d_km - p_im, shape (n, K, K).
    M = np.eye(K)[None] - proba[:, None, :]
    jacobian = -np.einsum("i,ik,ij,im,ia,imj->kjma", w, F, G, proba, Z, D)
    slope_part = np.einsum("i,ik,ij,ikm->kjm", w, F, G, M)
    d = slopes.shape[1]
    jacobian[:, np.arange(d), :, np.arange(d) + 1] += slope_part.transpose(1, 0, 2)
    if method.startswith("dy"):
        jacobian += np.einsum("i,ij,ik,ikm,ia,ikj->kjma", w, G, proba, M, Z, D)
    return effects, jacobian


def _finite_value(key, value):
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(value)
    ):
        raise ValueError(f"at[{key!r}] must be a finite number, got {value!r}.")
    return float(value)


def _discrete_columns(features, dummy, count):
    """Columns with a discrete change, each with its change.

    Binary columns (every value 0 or 1, both present) go from 0 to 1; count
    columns (non-negative integers, not binary, not constant) from ``x - 1``
    to ``x + 1``, halved. statsmodels' rules.
    """
    integer = np.all(features % 1.0 == 0.0, axis=0)
    low, high = features.min(axis=0), features.max(axis=0)
    binary = integer & (low == 0.0) & (high == 1.0)
    counting = integer & (low >= 0.0) & (low < high) & ~binary
    changes = []
    if dummy:
        changes += [(j, ("set", 0.0, 1.0, 1.0)) for j in np.flatnonzero(binary)]
    if count:
        changes += [(j, ("add", -1.0, 1.0, 0.5)) for j in np.flatnonzero(counting)]
    return changes


def _discrete_change(Z, w, theta, column, change, method):
    """The weighted mean change of the probabilities (their logarithms for
    ``"eydx"``) when ``column`` of ``Z`` moves, and its Jacobian in ``theta``.

    ``change`` is ``(how, low, high, factor)``: the column is set to, or
    shifted by, ``low`` and ``high``, and the difference multiplied by
    ``factor``. The derivatives in ``theta_ma`` are ``p_k (d_km - p_m) Z_a``
    for the probability and ``(d_km - p_m) Z_a`` for its logarithm. Returns
    shapes ``(K,)`` and ``(K, K, q)``.
    """
    how, low, high, factor = change
    values, jacobians = [], []
    for value in (low, high):
        moved = Z.copy()
        moved[:, column] = value if how == "set" else Z[:, column] + value
        logits = moved @ theta.T
        proba = softmax(logits, axis=1)
        K = proba.shape[1]
        wz = w[:, None] * moved
        if method == "eydx":
            values.append(w @ log_softmax(logits, axis=1))
            jacobian = np.eye(K)[:, :, None] * wz.sum(axis=0) - (proba.T @ wz)[None]
        else:
            values.append(w @ proba)
            jacobian = np.einsum("ik,ia->ka", proba, wz)[:, None, :] * np.eye(K)[
                :, :, None
            ] - np.einsum("ik,im,ia->kma", proba, proba, wz, optimize=True)
        jacobians.append(jacobian)
    return factor * (values[1] - values[0]), factor * (jacobians[1] - jacobians[0])


class MarginalEffects:
    """Marginal effects of a softmax model with delta-method inference.

    Returned by :meth:`SoftmaxInferenceResults.marginal_effects`.

    Attributes
    ----------
    classes : ndarray of shape (n_classes,)
        All class labels, one per row of ``effects``, the reference included.
    feature_names : ndarray of shape (n_features,)
    effects, effects_se, effects_z, effects_pvalue : ndarray
        Effects, standard errors, z statistics and two-sided p-values, of
        shape (n_classes, n_features).
    cov : ndarray of shape (n_classes * n_features, n_classes * n_features)
        Covariance of the effects, class by class.
    at : str or dict
        Where the effects were evaluated.
    method : str
        How the effects were evaluated.
    alpha : float
        Default level of ``conf_int``, ``summary`` and ``to_frame``.
    """

    def __init__(self, *, classes, feature_names, effects, cov, at, method, alpha):
        self.classes = classes
        self.feature_names = feature_names
        self.effects = effects
        self.cov = cov
        self.at = at
        self.method = method
        self.alpha = alpha
        self.effects_se = np.sqrt(np.clip(np.diag(cov), 0.0, None)).reshape(
            effects.shape
        )

    @property
    def effects_z(self):
        return self.effects / self.effects_se

    @property
    def effects_pvalue(self):
        return _pvalue(self.effects_z)

    def conf_int(self, alpha=None):
        """Normal confidence intervals, shape ``(n_classes, n_features, 2)``.

        Parameters
        ----------
        alpha : float, default=None
            The intervals cover with probability ``1 - alpha``; ``None`` uses
            the ``alpha`` of the inference results.

        Returns
        -------
        ci : ndarray of shape (n_classes, n_features, 2)
            Lower and upper bounds for ``effects``.
        """
        alpha = _check_alpha(self.alpha if alpha is None else alpha)
        return _interval(self.effects, self.effects_se, alpha)

    def _rows(self):
        for k, label in enumerate(self.classes):
            for j, name in enumerate(self.feature_names):
                yield label, name, self.effects[k, j], self.effects_se[k, j]

    def summary(self, alpha=None):
        """A text report: one table of effects per class.

        Parameters
        ----------
        alpha : float, default=None
            Level of the confidence intervals; ``None`` uses the default.

        Returns
        -------
        text : str
            The report, lines separated by newlines.
        """
        alpha = _check_alpha(self.alpha if alpha is None else alpha)
        lines = [
            "Softmax marginal effects".center(78).rstrip(),
            f"Method: {self.method}    At: {self.at}",
        ]
        lines += _class_tables(
            _wald_table(self._rows(), alpha), alpha, self.feature_names, "effect"
        )
        return "\n".join(lines)

    def __str__(self):
        return self.summary()

    def to_frame(self, alpha=None):
        """The effects as one tidy pandas DataFrame.

        Parameters
        ----------
        alpha : float, default=None
            Level of the confidence intervals; ``None`` uses the default.

        Returns
        -------
        frame : pandas.DataFrame
            One row per class and feature, with columns ``class``, ``term``,
            ``effect``, ``std_err``, ``z``, ``p_value``, ``ci_lower`` and
            ``ci_upper``.
        """
        alpha = _check_alpha(self.alpha if alpha is None else alpha)
        return _wald_frame(self._rows(), alpha, "effect", "MarginalEffects.to_frame")


class _Contrasts:
    """The linear map ``A`` from contrasts to the engine's flat parameters.

    Parameters
    ----------
    n_features : int
    n_classes : int
    reference : int
        Code of the reference class.
    fit_intercept : bool
    """

    def __init__(self, n_features, n_classes, reference, fit_intercept):
        self.n_classes = n_classes
        self.others = np.delete(np.arange(n_classes), reference)
        # Engine rows (features, then the intercept) of the contrast columns.
        self.order = (
            np.r_[n_features, :n_features] if fit_intercept else np.arange(n_features)
        )
        self.shape = (n_classes - 1, self.order.shape[0])
        self._engine_rows = n_features + 1
        # Class centring restricted to the non-reference classes: (K, K - 1).
        self.centring = (np.eye(n_classes) - 1.0 / n_classes)[:, self.others]

    def to_engine(self, theta):
        """``A theta``: flat engine parameters of the contrasts ``theta``."""
        matrix = np.zeros((self._engine_rows, self.n_classes))
        matrix[self.order] = theta.reshape(self.shape).T @ self.centring.T
        return matrix.ravel()

    def to_contrasts(self, flat):
        """``A^T flat``: an engine gradient in contrast coordinates, flat."""
        matrix = flat.reshape(self._engine_rows, self.n_classes)[self.order]
        return (matrix @ self.centring).T.ravel()

    def square(self, engine_square):
        """``A^T M A`` for a symmetric square ``M`` over the engine parameters.

        With ``R_k = sum_l M_kl`` the sums of ``M``'s class blocks over one
        class and ``T = sum_k R_k``, the block of classes ``(m, n)`` is
        ``M_mn - (R_m + R_n^T) / K + T / K^2`` (the centring written out),
        filled one class row at a time: no temporary of the full size.
        """
        q_engine, K = self._engine_rows, self.n_classes
        M = engine_square.reshape(q_engine, K, q_engine, K)
        order, others = self.order, self.others
        row_sums = M.sum(axis=3)
        total = row_sums.sum(axis=1)[np.ix_(order, order)] / K**2
        # Entry (a, n, b) is R_n[b, a], over the non-reference classes n.
        transposed = row_sums[np.ix_(order, others, order)].transpose(2, 1, 0) / K
        n_other, q = self.shape
        out = np.empty((n_other, q, n_other, q))
        for m, k in enumerate(others):
            block = M[:, k][np.ix_(order, order, others)].transpose(0, 2, 1)
            block -= row_sums[:, k][np.ix_(order, order)][:, None, :] / K
            block -= transposed
            block += total[:, None, :]
            out[m] = block
        return out.reshape(n_other * q, n_other * q)

    def from_symmetric(self, coef, intercept, reference):
        """The contrasts of fitted symmetric parameters, shape ``(K - 1, q)``."""
        symmetric = np.column_stack([coef, intercept])[:, self.order]
        return (symmetric - symmetric[reference])[self.others]


class _ContrastProblem:
    """``G`` of the module docstring and its derivatives, through the engine."""

    def __init__(self, engine, contrasts, penalty, weight_sum):
        self.engine = engine
        self.contrasts = contrasts
        self.penalty = penalty
        self.weight_sum = weight_sum

    def neg_loglik(self, theta):
        """``S f(A theta)``, the negative log-likelihood."""
        value, _ = self.engine.loss_gradient(self.contrasts.to_engine(theta))
        return self.weight_sum * value

    def value(self, theta):
        params = self.contrasts.to_engine(theta)
        value, _ = self.engine.loss_gradient(params)
        W, _ = self.engine.unpack(params)
        return self.weight_sum * (value + self.penalty.value(W))

    def derivatives(self, theta):
        """Value, gradient and Hessian of ``G`` at flat ``theta``."""
        params = self.contrasts.to_engine(theta)
        value, grad = self.engine.loss_gradient(params)
        W, _ = self.engine.unpack(params)
        value = self.penalty.add_smooth(W, value, self.engine.unpack(grad)[0])
        hessian = self.engine.hessian(params)
        n_coef = W.size
        hessian[np.arange(n_coef), np.arange(n_coef)] += self.penalty.l2
        square = self.contrasts.square(hessian)
        del hessian
        S = self.weight_sum
        square *= S
        return S * value, S * self.contrasts.to_contrasts(grad), square

    def score_outer(self, theta):
        """``sum_i s_i g_i g_i^T`` with ``g_i`` the score of sample i."""
        outer = self.engine.score_outer(self.contrasts.to_engine(theta))
        square = self.contrasts.square(outer)
        del outer
        square *= self.weight_sum
        return square

    def gram(self):
        """``[1, X]^T diag(s) [1, X]`` (``X^T diag(s) X`` without an intercept)."""
        order = self.contrasts.order
        return self.weight_sum * self.engine.gram()[np.ix_(order, order)]


def _eigh(A):
    """Eigen-decomposition of a scaled matrix ``A``, relative to its size.

    In the units of ``A`` (standardized columns) a Gram matrix has a unit diagonal
    and an informative Hessian eigenvalues up to about 1/4, so eigenvalues
    are taken relative to the largest one or 1, whichever is larger: at the
    limit of a separation every curvature vanishes together, and relative to
    the largest alone none would look small. Returns the relative
    eigenvalues, the eigenvectors and the divisor.
    """
    eigval, eigvec = np.linalg.eigh(A)
    top = max(eigval[-1], 1.0) if eigval.size else 1.0
    return eigval / top, eigvec, top


class _Curvature:
    """The inverse Hessian on the parameters ``keep``, and what it leaves out.

    ``scale`` puts the parameters in the units of standardized columns, so
    that a small eigenvalue means weak information, not a large feature.
    ``hessian`` is overwritten. A well-conditioned Hessian is factored in
    place by Cholesky; otherwise, up to ``_EIGH_MAX_PARAMS`` parameters, an
    eigen-decomposition finds the directions the data do not inform. Above
    that size it would take too long, and a singular Hessian is an error.

    Attributes
    ----------
    inverse : ndarray of shape (len(keep), len(keep))
        Pseudo-inverse of the Hessian restricted to ``keep``, computed on
        first use.
    singular : ndarray
        Parameters (a subset of ``keep``) its numerical null space involves,
        which the inverse leaves out.
    step : ndarray
        The Newton step over all parameters (zero outside ``keep``).
    step_se : float
        The Newton decrement ``sqrt(g^T H^+ g)``: the step's length in the
        metric of the covariance. It bounds every parameter's move in
        standard errors.
    """

    def __init__(self, hessian, grad, keep, scale):
        self.keep = keep
        self._scale = scale = scale[keep]
        square = (
            hessian if keep.size == hessian.shape[0] else hessian[np.ix_(keep, keep)]
        )
        square /= scale[:, None]
        square /= scale
        g = grad[keep] / scale
        small = keep.size <= _EIGH_MAX_PARAMS
        self._factor = cholesky(square.copy() if small else square, _CHOLESKY_RCOND)
        self.singular = np.array([], dtype=int)
        if self._factor is not None:
            z = solve_factored(self._factor, g)
        elif small:
            self._scaled_inverse, null = _pseudo_inverse(square)
            self.singular = keep[null]
            z = self._scaled_inverse @ g
        else:
            raise ValueError(
                f"The Hessian of the {keep.size} parameters is singular or "
                "nearly so: some are not identified by the data (separated "
                "classes, or nearly collinear columns). Finding which needs an "
                f"eigen-decomposition, done up to {_EIGH_MAX_PARAMS} "
                "parameters. Fit with a finite C (a penalty identifies every "
                "parameter), or drop features."
            )
        self.step = np.zeros_like(grad)
        self.step[keep] = z / scale
        self.step_se = float(np.sqrt(max(g @ z, 0.0)))

    @functools.cached_property
    def inverse(self):
        if self._factor is not None:
            inverse = invert_factored(self._factor)
            self._factor = None
        else:
            inverse = self._scaled_inverse
        inverse /= self._scale[:, None]
        inverse /= self._scale
        return inverse


def _pseudo_inverse(square):
    """Pseudo-inverse of a scaled Hessian, and the parameters of its null space."""
    eigval, eigvec, top = _eigh(square)
    good = eigval > _RCOND
    inverse = (eigvec[:, good] / (eigval[good] * top)) @ eigvec[:, good].T
    null = np.any(np.abs(eigvec[:, ~good]) > _LOADING_TOL, axis=1)
    return inverse, null


def _polish(problem, theta, keep, scale):
    """Newton steps on the parameters ``keep`` until the step is negligible.

    Stops when the step is at most ``_STEP_TOL_SE`` standard errors, after
    ``_MAX_NEWTON_STEPS`` steps, or when a backtracking line search finds no
    decrease. Returns the :class:`~sksoftmax._solvers.NewtonResult`, whose
    ``step`` is the :class:`_Curvature` at its last point.
    """

    def step(grad, hessian):
        curvature = _Curvature(hessian, grad, keep, scale)
        return curvature.step, curvature.step_se <= _STEP_TOL_SE, curvature

    return newton(
        problem.value,
        problem.derivatives,
        theta.ravel(),
        step=step,
        max_steps=_MAX_NEWTON_STEPS,
    )


def _collinear_columns(gram, scale):
    """Columns of the design that are linearly dependent.

    Returns the involved columns (not identified) and a maximal independent
    subset of columns.
    """
    scaled = gram / np.outer(scale, scale)
    eigval, eigvec, _ = _eigh(scaled)
    null = eigval <= _RCOND
    q = gram.shape[0]
    if not np.any(null):
        return np.array([], dtype=int), np.arange(q)
    involved = np.flatnonzero(np.any(np.abs(eigvec[:, null]) > _LOADING_TOL, axis=1))
    # A pivoted QR keeps columns that span the others.
    _, _, pivots = linalg.qr(scaled, pivoting=True)
    independent = np.sort(pivots[: q - int(np.sum(null))])
    return involved, independent


def _term_list(params, classes, terms):
    q = len(terms)
    by_class = {}
    for idx in params:
        by_class.setdefault(classes[idx // q], []).append(str(terms[idx % q]))
    return "; ".join(
        f"class {label}: {', '.join(names)}" for label, names in by_class.items()
    )


def _identified(gram, column_scale, n_other, terms):
    """Parameters that collinear columns leave unidentified, without a penalty.

    Returns a mask of the unidentified parameters, the parameters to keep
    and the rank of the design.
    """
    q = gram.shape[0]
    involved, independent = _collinear_columns(gram, column_scale)
    undefined = np.zeros(n_other * q, dtype=bool)
    offsets = q * np.arange(n_other)[:, None]
    if involved.size:
        undefined[(offsets + involved).ravel()] = True
        warnings.warn(
            f"The columns {', '.join(map(str, terms[involved]))} of the design "
            "are collinear (linearly dependent): without a penalty their "
            "coefficients are not identified and are reported as NaN. Drop "
            "one of them, or fit with a finite C.",
            UserWarning,
            stacklevel=5,
        )
    return undefined, (offsets + independent).ravel(), len(independent)


def softmax_inference(
    engine,
    class_totals,
    coef,
    intercept,
    *,
    classes,
    reference,
    C,
    feature_names,
    cov_type,
    clusters,
    alpha,
):
    """Inference on the contrasts of a fitted softmax model.

    Every pass over the data runs in the engine (the Hessian, the scores'
    products and sums, the overlap certificate), so on Dask they are tree
    reductions over the chunks and only squares of the parameters reach
    this process.

    Parameters
    ----------
    engine : LossEngine
        The training data's engine, float64, with the frequency weights
        (sample weight times class weight).
    class_totals : ndarray of shape (n_classes,)
        The summed weight of each class, every one positive.
    coef, intercept : ndarray of shape (n_classes, n_features), (n_classes,)
        The fitted symmetric parameters, float64.
    classes : ndarray of shape (n_classes,)
    reference : int
        Code of the reference class.
    C : float
    feature_names : ndarray of shape (n_features,)
    cov_type : {"nonrobust", "HC0", "HC1", "cluster"}
    clusters : list of (float, int, array) or None
        For ``"cluster"``, the ways of clustering as ``(sign, n_clusters,
        codes)``: one way, or two and their intersection (sign -1); the
        codes (NumPy or dask, one per sample) number the clusters from 0.
    alpha : float

    Returns
    -------
    SoftmaxInferenceResults
    """
    n_classes, n_features = coef.shape
    fit_intercept = engine.fit_intercept
    weight_sum = float(np.sum(class_totals))
    contrasts = _Contrasts(n_features, n_classes, reference, fit_intercept)
    penalty = ElasticNet.from_C(C, 0.0, weight_sum)
    problem = _ContrastProblem(engine, contrasts, penalty, weight_sum)
    n_other, q = contrasts.shape
    terms = np.asarray(feature_names, dtype=object)
    if fit_intercept:
        terms = np.concatenate([["intercept"], terms]).astype(object)
    other_labels = classes[contrasts.others]

    gram = problem.gram()
    column_scale = np.sqrt(np.diag(gram))
    column_scale[column_scale == 0.0] = 1.0
    scale = np.tile(column_scale, n_other)
    if penalty.l2 == 0.0:
        undefined, keep, rank = _identified(gram, column_scale, n_other, terms)
    else:
        undefined, keep, rank = np.zeros(n_other * q, bool), np.arange(n_other * q), q

    _check_memory(engine.n_params, keep.size, n_classes, cov_type != "nonrobust")
    theta0 = contrasts.from_symmetric(coef, intercept, reference).ravel()
    start = theta0
    if keep.size > _EIGH_MAX_PARAMS:
        start = _tightened(engine, penalty, coef, intercept, contrasts, reference)
    point = _polish(problem, start, keep, scale)
    n_steps = point.n_steps
    separated = False
    if penalty.l2 == 0.0:
        # Without a penalty the estimate may not exist; a polish that looks
        # converged (large but finite steps) does not tell, the certificate
        # or the LP does.
        proven = overlaps(
            engine,
            point.x.reshape(n_other, q),
            contrasts.others,
            keep[:rank],
            column_scale[keep[:rank]],
        )
        shift = None
        if not proven:
            shift = _separating_shift(engine, contrasts.others, column_scale)
        if shift is not None:
            # Continue at the limit of the likelihood along the separation,
            # where the parameters it leaves uninformed have no curvature.
            separated = True
            restart = point.x + shift.ravel()
            point = None  # its curvature is a square of the parameters
            point = _polish(problem, restart, keep, scale)
            n_steps += point.n_steps
    curvature = point.step
    _warn_unidentified(separated, curvature, point, n_steps, other_labels, terms)
    undefined[curvature.singular] = True

    n_identified = n_other * rank
    cov = curvature.inverse
    if cov_type != "nonrobust":
        # With a penalty the bread is the penalized Hessian, the meat the
        # scores of the likelihood alone.
        meat = _meat(problem, point.x, cov_type, clusters)
        meat = meat(weight_sum, n_identified)
        if keep.size < meat.shape[0]:
            meat = meat[np.ix_(keep, keep)]
        half = cov @ meat
        cov = np.matmul(half, cov, out=meat)
        del half
    n_params = n_other * q
    if keep.size < n_params:
        inverse, cov = cov, np.full((n_params, n_params), np.nan)
        cov[np.ix_(keep, keep)] = inverse
    cov[undefined, :] = np.nan
    cov[:, undefined] = np.nan

    estimates = point.x.copy()
    moved = np.abs(estimates - theta0)[~undefined]
    estimates[undefined] = np.nan
    estimates = estimates.reshape(n_other, q)

    if fit_intercept:
        llnull = float(class_totals @ np.log(class_totals / weight_sum))
    else:
        # Nested in a model without intercepts: all parameters zero.
        llnull = -weight_sum * np.log(n_classes)
    return SoftmaxInferenceResults(
        classes=other_labels,
        reference_class=classes[reference],
        all_classes=classes,
        reference=reference,
        feature_names=np.asarray(feature_names, dtype=object),
        coef=estimates[:, int(fit_intercept) :],
        intercept=estimates[:, 0] if fit_intercept else np.zeros(n_other),
        cov_params=cov,
        fit_intercept=fit_intercept,
        cov_type=cov_type,
        alpha=alpha,
        C=C,
        nobs=weight_sum,
        llf=-problem.neg_loglik(point.x),
        llnull=llnull,
        df_model=n_identified - n_other * int(fit_intercept),
        n_params=n_identified,
        n_newton_steps=n_steps,
        polish_shift=float(np.max(moved, initial=0.0)),
    )


def _tightened(engine, penalty, coef, intercept, contrasts, reference):
    """The fit continued by L-BFGS to a tight tolerance, as contrasts.

    At many parameters a Newton step forms the Hessian, ``O(n K^2 d^2)``,
    while an L-BFGS iteration costs two passes over the data: at 10000 rows,
    2000 features and 11 classes a step took 2.7 min and 34 iterations 2.4 s.
    Starting the polish close to the optimum saves Newton steps; it need not
    converge, the polish finishes.
    """
    params = np.zeros(engine.n_params)
    W, b = engine.unpack(params)
    W[...] = coef.T
    b[...] = intercept
    result = lbfgs(engine, penalty, params, tol=_TIGHTEN_TOL, max_iter=_TIGHTEN_ITER)
    W, b = engine.unpack(result.params)
    return contrasts.from_symmetric(W.T, b, reference).ravel()


def _available_memory():
    """Bytes of memory the process can still get, or None where unknown.

    The system's available memory, and within a container also what its
    cgroup (v2) limit leaves.
    """
    available = []
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available.append(int(line.split()[1]) * 1024)
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as limit:
            text = limit.read().strip()
        if text != "max":
            with open("/sys/fs/cgroup/memory.current") as current:
                available.append(int(text) - int(current.read()))
    except (OSError, ValueError):
        pass
    if not available:
        try:
            available.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            return None
    return min(available)


def _check_memory(n_engine, n_params, n_classes, robust):
    """Refuse, before any work, inference whose dense squares do not fit.

    At its peak, inference holds the engine's Hessian (``n_engine`` square)
    and its contrast form, with the class sums and per-class blocks that
    forming it takes (a ``1 / K`` and three ``1 / (K - 1)`` parts of the
    squares, large only with few classes), and for a sandwich one more
    square of ``n_params``.
    """
    squares = (
        n_engine**2 * (1 + 1 / n_classes)
        + n_params**2 * (1 + 3 / (n_classes - 1))
        + (n_params**2 if robust else 0)
    )
    needed = 8 * squares
    available = _available_memory()
    if available is not None and needed > available:
        raise MemoryError(
            f"Inference on {n_params} parameters needs dense matrices of about "
            f"{needed / 2**30:.1f} GiB, more than the {available / 2**30:.1f} GiB "
            "of memory available. Reduce the number of features or classes "
            "(select features, merge rare classes), or run it on a machine with "
            "more memory."
        )


def _separating_shift(engine, others, column_scale):
    """:func:`separating_shift`, or None with a warning where the LP is not run.

    The linear program needs the samples in memory and is skipped, with
    the warning, when they are not (Dask) or when it is too large.
    """
    in_memory = isinstance(engine, NumPyEngine)
    if in_memory:
        X, codes, weights = engine.X, engine.y, engine.weights
        positive = weights > 0
        if not np.all(positive):
            X, codes = X[positive], codes[positive]
        design_nonzeros = (X.nnz if sparse.issparse(X) else X.size) + X.shape[0]
        nonzeros = 2 * len(others) * design_nonzeros
    if not in_memory or nonzeros > _SEPARATION_LP_MAX_NONZEROS:
        reason = (
            f"is too large to solve here ({nonzeros:.3g} nonzeros)"
            if in_memory
            else "needs the samples in one process, and they are on a Dask cluster"
        )
        warnings.warn(
            "The fitted model does not prove that the classes overlap, and the "
            f"linear program that tests for separation {reason}, so it was "
            "skipped. If some estimates and their standard errors are very "
            "large, the classes may be (quasi-)separated and those estimates do "
            "not exist; fit with a finite C for a penalized estimate.",
            UserWarning,
            stacklevel=4,
        )
        return None
    return separating_shift(X, codes, others, column_scale, engine.fit_intercept)


def _meat(problem, theta, cov_type, clusters):
    """The middle of the sandwich, a function of ``nobs`` and ``k``.

    ``nobs`` is the sum of the frequency weights and ``k`` the number of
    identified parameters; they enter the small-sample corrections, which
    are statsmodels': ``nobs / (nobs - k)`` for ``"HC1"`` and, for each way
    of clustering, ``G / (G - 1) (nobs - 1) / (nobs - k)`` with ``G``
    clusters. Two-way clustering adds the meats of both ways and subtracts
    that of their intersections (Cameron, Gelbach and Miller, 2011).
    """
    if cov_type in ("HC0", "HC1"):
        meat = problem.score_outer(theta)
        if cov_type == "HC0":
            return lambda nobs, k: meat
        return lambda nobs, k: meat * nobs / (nobs - k)
    contrasts = problem.contrasts
    W, b = problem.engine.unpack(contrasts.to_engine(theta))
    meats = []
    for sign, n_clusters, codes in clusters:
        (summed,) = problem.engine.row_sums(
            _cluster_score_sums,
            n_clusters,
            W,
            b,
            contrasts.others,
            contrasts.order,
            rows=codes,
        )
        meats.append((sign, n_clusters, summed.T @ summed))

    def corrected(nobs, k):
        return sum(
            sign * n_groups / (n_groups - 1.0) * (nobs - 1.0) / (nobs - k) * meat
            for sign, n_groups, meat in meats
        )

    return corrected


def _cluster_score_sums(X, codes, weights, clusters, n_clusters, W, b, others, order):
    """A block's per-sample scores summed within each cluster.

    The engine gives the weighted outer products of per-sample scores, not
    the scores, and a cluster's meat needs their sums: with frequency weights
    ``s_i``, the sum over its rows of ``s_i (e_{y_i} - p_i)`` (non-reference
    classes) times ``[1, x_i]``, so that a weight of 2 counts as two rows of
    the cluster. Returns an array of shape ``(n_clusters, n_params)`` in
    contrast order.
    """
    logits = X @ W + b
    residuals = np.eye(W.shape[1])[codes] - softmax(logits, axis=1)
    residuals = residuals[:, others] * weights[:, None]
    n = X.shape[0]
    design = sparse.hstack([sparse.csr_matrix(X), np.ones((n, 1))], format="csr")
    design = design[:, order]
    indicator = sparse.csr_matrix(
        (np.ones(n), (clusters, np.arange(n))), shape=(n_clusters, n)
    )
    blocks = [
        indicator @ design.multiply(residuals[:, [m]]).tocsr()
        for m in range(residuals.shape[1])
    ]
    return (np.asarray(sparse.hstack(blocks).todense()),)


def _warn_unidentified(separated, curvature, point, n_steps, labels, terms):
    """Warn about separation, singular directions and an unfinished polish."""
    if separated:
        warnings.warn(
            "The classes are (quasi-)completely separated: the likelihood keeps "
            "increasing along a direction that moves "
            f"{_term_list(curvature.singular, labels, terms)}. Their maximum "
            "likelihood estimates do not exist (they are infinite or not "
            "informed by the data) and are reported as NaN; the other estimates "
            "and standard errors are those of the limit. Fit with a finite C for "
            "a penalized estimate.",
            UserWarning,
            stacklevel=5,
        )
    elif curvature.singular.size:
        warnings.warn(
            "The Hessian is numerically singular in the directions of "
            f"{_term_list(curvature.singular, labels, terms)}; these are "
            "reported as NaN.",
            UserWarning,
            stacklevel=5,
        )
    if not point.converged:
        warnings.warn(
            f"Polishing stopped after {n_steps} Newton steps with a remaining "
            f"step of {curvature.step_se:.2g} standard errors; the results may be "
            "inaccurate.",
            ConvergenceWarning,
            stacklevel=5,
        )
