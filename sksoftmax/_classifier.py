"""SoftmaxClassifier: the scikit-learn contract around the loss and its solver."""

import sys
import warnings
from numbers import Integral, Real

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import assert_all_finite
from sklearn.utils._array_api import (
    check_same_namespace,
    get_namespace,
    get_namespace_and_device,
    move_to,
)
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._array_api import softmax_loss
from ._inference import softmax_inference
from ._separation import PerfectSeparationWarning
from ._solvers import lbfgs, newton_cg

_SOLVERS = {"lbfgs": lbfgs, "newton-cg": newton_cg}


class SoftmaxClassifier(ClassifierMixin, BaseEstimator):
    """Softmax (multinomial logistic) regression fitted with L-BFGS.

    The model is ``P(y=k | x) = softmax(W^T x + b)_k``. It minimizes exactly
    the objective of scikit-learn's
    :class:`~sklearn.linear_model.LogisticRegression` with its multinomial
    loss: the weighted mean cross-entropy plus
    ``[(1 - l1_ratio) / 2 * ||W||^2 + l1_ratio * ||W||_1] / (C S)``, where
    ``S`` is the sum of the sample weights. Every class has its own row of
    coefficients (the symmetric parameterization) and the intercept is never
    penalized.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularization strength, a positive float. ``np.inf`` fits
        without a penalty.
    l1_ratio : float, default=0.0
        Elastic-net mixing in ``[0, 1]``: 0 is the L2 penalty, 1 the L1
        (lasso) penalty. With ``l1_ratio > 0`` many coefficients are exactly
        zero. Needs ``solver="lbfgs"``, which then optimizes the split
        ``W = U - V`` with ``U, V >= 0`` under bounds.
    fit_intercept : bool, default=True
        Whether to fit one intercept per class.
    class_weight : dict or "balanced", default=None
        Weights ``{label: weight}`` multiplying the sample weights of each
        class. ``"balanced"`` uses ``S / (n_classes * S_k)`` with ``S_k`` the
        summed sample weight of class k, as scikit-learn does.
    solver : {"lbfgs", "newton-cg"}, default="lbfgs"
        Optimizer; both iterate on internally centred and scaled coordinates
        and reach the same optimum. ``"lbfgs"`` is scipy's L-BFGS-B on one
        fused loss-and-gradient evaluation per step; the fastest in our
        benchmarks. ``"newton-cg"`` takes truncated Newton steps on exact
        Hessian-vector products: fewer, costlier iterations, and an extra
        ``n_samples x n_classes`` array of memory; it can win on
        ill-conditioned, nearly separable problems.
    tol : float, default=1e-4
        Stop once the largest absolute entry of the objective's gradient is at
        most ``tol`` (scikit-learn's meaning for ``lbfgs``).
    max_iter : int, default=1000
        Maximum number of solver iterations. Larger than scikit-learn's 100 so
        that unscaled real data converge without a warning.
    warm_start : bool, default=False
        Start from the previous fit's coefficients when its classes and
        features match.
    verbose : int, default=0
        When positive, print one line per iteration: iteration, objective and
        largest absolute gradient entry.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    coef_ : ndarray of shape (n_classes, n_features)
        One row of coefficients per class, also for binary problems. Only
        differences between rows matter to predictions.
    intercept_ : ndarray of shape (n_classes,)
        Intercept per class (zeros when ``fit_intercept=False``).
    n_iter_ : int
        Number of solver iterations of the last fit.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Feature names, when ``X`` had string column names.

    See Also
    --------
    sklearn.linear_model.LogisticRegression : The same objective, several
        solvers.

    Notes
    -----
    For two classes the softmax keeps two coefficient rows and penalizes both,
    so its margin ``coef_[1] - coef_[0]`` equals the binary
    ``LogisticRegression(C=2 * C)`` coefficient vector.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sksoftmax import SoftmaxClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SoftmaxClassifier(C=10.0).fit(X, y)
    >>> clf.coef_.shape
    (3, 4)
    >>> clf.predict(X[:2])
    array([0, 0])
    >>> clf.predict_proba(X[:1]).sum().round(6)
    np.float64(1.0)
    """

    _parameter_constraints: dict = {
        "C": [Interval(Real, 0, None, closed="right")],
        "l1_ratio": [Interval(Real, 0, 1, closed="both")],
        "fit_intercept": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "solver": [StrOptions(set(_SOLVERS))],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        C=1.0,
        *,
        l1_ratio=0.0,
        fit_intercept=True,
        class_weight=None,
        solver="lbfgs",
        tol=1e-4,
        max_iter=1000,
        warm_start=False,
        verbose=0,
    ):
        self.C = C
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.warm_start = warm_start
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.array_api_support = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to training data.

        Parameters
        ----------
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Training data. float32 stays float32; anything else becomes
            float64. Sparse input may be CSR or CSC. A dask array, chunked by
            rows, is fitted where its chunks live (see "Scaling out").
        y : array-like or dask array of shape (n_samples,)
            Class labels of any type; at least two distinct classes.
        sample_weight : array-like or dask array of shape (n_samples,), default=None
            Non-negative weight per sample; ``None`` means all ones.

        Returns
        -------
        self : SoftmaxClassifier
            The fitted estimator.
        """
        if _is_dask_array(X):
            xp, device = np, None
        else:
            xp, _, device = get_namespace_and_device(X)
            X, y = validate_data(
                self,
                X,
                y,
                accept_sparse=["csr", "csc"],
                dtype=[xp.float64, xp.float32],
                order="C",
            )
        loss, classes, class_totals = self._prepare(X, y, sample_weight)
        weight_sum = float(np.sum(class_totals))
        params0 = self._starting_point(loss, classes, class_totals / weight_sum)
        self.classes_ = classes
        result = self._solve(loss, params0, self.C, weight_sum)
        W, b = loss.unpack(result.params)
        if np.isinf(self.C):
            self._warn_if_separated(loss, W, b)
        # In the input's namespace and device; dask's chunks are NumPy.
        dtype = loss.dtype if _is_dask_array(X) else X.dtype
        self.coef_ = xp.asarray(np.ascontiguousarray(W.T), dtype=dtype, device=device)
        self.intercept_ = xp.asarray(b, dtype=dtype, device=device)
        self.n_iter_ = result.n_iter
        return self

    def _prepare(self, X, y, sample_weight):
        """Encode ``y``, weigh the samples and build the loss, penalty unset.

        ``X`` is validated data of any Array API namespace or sparse, or a
        dask array (validated here, chunk-wise). Labels and weights are
        bookkept on the host; X stays where it is and the loss engine runs
        there. Shared with the regularization path, which then calls
        :meth:`_solve` for each of its ``C``. Returns the loss, the classes
        and each class's total effective weight.
        """
        if _is_dask_array(X):
            # Imported here: dask is an optional dependency.
            from ._dask import DaskSoftmaxLoss as make_loss
            from ._dask import validate_fit_data

            X, y_codes, classes, sample_weight, class_totals = validate_fit_data(
                self, X, y, sample_weight
            )
        else:
            make_loss = softmax_loss
            y, sample_weight = move_to(y, sample_weight, xp=np, device="cpu")
            check_classification_targets(y)
            # Two steps rather than return_inverse, which holds several n-sized
            # temporaries at once: the peak memory of a float32 fit.
            classes = np.unique(y)
            y_codes = np.searchsorted(classes, y)
            _check_two_classes(classes)
            sample_weight = self._effective_weights(sample_weight, y, classes, y_codes)
            class_totals = np.bincount(
                y_codes, weights=sample_weight, minlength=classes.shape[0]
            )
        loss = make_loss(
            X,
            y_codes,
            n_classes=classes.shape[0],
            sample_weight=sample_weight,
            l2_reg_strength=0.0,
            fit_intercept=self.fit_intercept,
        )
        return loss, classes, class_totals

    def _solve(self, loss, params0, C, weight_sum):
        """Minimize ``loss`` with the penalty of ``C`` and ``self.l1_ratio``.

        Sets the loss's L2 strength, so one loss serves a whole path of ``C``;
        ``weight_sum`` is the sum of the effective sample weights.
        """
        penalty = 0.0 if np.isinf(C) else 1.0 / (C * float(weight_sum))
        l1_reg_strength = self.l1_ratio * penalty
        if l1_reg_strength > 0 and self.solver != "lbfgs":
            raise ValueError(
                f"l1_ratio={self.l1_ratio:g} needs solver='lbfgs'; "
                f"solver={self.solver!r} supports only the L2 penalty (l1_ratio=0)."
            )
        loss.l2_reg_strength = (1.0 - self.l1_ratio) * penalty
        options = {"l1_reg_strength": l1_reg_strength} if l1_reg_strength else {}
        result = _SOLVERS[self.solver](
            loss,
            params0,
            tol=self.tol,
            max_iter=self.max_iter,
            verbose=self.verbose,
            **options,
        )
        if not result.converged:
            warnings.warn(
                f"SoftmaxClassifier (solver={self.solver!r}, C={C:g}) stopped after "
                f"{result.n_iter} iterations with a largest gradient entry of "
                f"{result.grad_max:.2e}, above tol={self.tol:g} ({result.message}). "
                "Increase max_iter, scale the features (e.g. with StandardScaler), "
                "or loosen tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return result

    @validate_params(
        {
            "X": ["array-like", "sparse matrix"],
            "y": ["array-like"],
            "sample_weight": ["array-like", None],
            "cov_type": [StrOptions({"nonrobust", "HC0"})],
            "alpha": [Interval(Real, 0, 1, closed="neither")],
        },
        prefer_skip_nested_validation=True,
    )
    def inference(
        self, X, y, sample_weight=None, *, reference_class=None,
        cov_type="nonrobust", alpha=0.05,
    ):
        """Standard errors, tests and confidence intervals of the coefficients.

        Call it with the training data. The symmetric coefficients are not
        identified without a penalty, so the results are for contrasts
        against a reference class: ``coef_[k] - coef_[ref]``. The covariance
        is the inverse of the exact Hessian of the negative log-likelihood in
        that parameterization; with a finite ``C`` it includes the penalty
        and is the Laplace approximation of the posterior under the Gaussian
        prior ``W ~ N(0, C)``, not the covariance of a maximum likelihood
        estimate. If the fitted parameters are further than ``1e-6`` standard
        errors (one Newton step) from the optimum, Newton steps polish a copy
        of them first; the estimator is not modified.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The training data.
        y : array-like of shape (n_samples,)
            The training labels; every class of ``classes_`` must occur.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights: a weight of 2 counts like a duplicated row.
            Class weights multiply them, as in ``fit``.
        reference_class : label, default=None
            The class whose coefficients are fixed at zero; ``None`` means
            ``classes_[0]``.
        cov_type : {"nonrobust", "HC0"}, default="nonrobust"
            ``"nonrobust"``: inverse Hessian. ``"HC0"``: the sandwich
            estimator, robust to a misspecified model.
        alpha : float, default=0.05
            Default level of the confidence intervals in the results.

        Returns
        -------
        results : SoftmaxInferenceResults
            Estimates, standard errors, z statistics, p-values, confidence
            intervals, likelihood statistics, ``summary()`` and
            ``to_frame()``. Parameters that are not identified (collinear
            columns, separated classes) are NaN, with a warning.

        Examples
        --------
        >>> from sklearn.datasets import load_iris
        >>> from sksoftmax import SoftmaxClassifier
        >>> X, y = load_iris(return_X_y=True)
        >>> clf = SoftmaxClassifier(C=10.0).fit(X, y)
        >>> res = clf.inference(X, y)
        >>> res.coef.shape, res.intercept.shape
        ((2, 4), (2,))
        >>> res.coef_se.round(1)
        array([[3.2, 2.9, 2.2, 3.6],
               [3.3, 3.1, 2.6, 3.7]])
        """
        check_is_fitted(self)
        if _is_dask_array(X):
            raise TypeError(
                "inference does not take dask arrays; compute X (and y) into "
                "memory first: the covariance needs the full Hessian anyway."
            )
        if self.l1_ratio > 0 and np.isfinite(self.C):
            raise ValueError(
                f"inference needs a twice-differentiable objective, and the L1 part "
                f"of l1_ratio={self.l1_ratio:g} has no Hessian at its zeros; its "
                "standard errors would ignore that the zeros were selected from "
                "the data. Refit with l1_ratio=0 (on the selected features) first."
            )
        X, y = validate_data(
            self, X, y, accept_sparse=["csr", "csc"], dtype=np.float64, reset=False
        )
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(
                f"y has labels {unknown.tolist()} that the model was not fitted "
                f"on; its classes are {self.classes_.tolist()}."
            )
        codes = np.searchsorted(self.classes_, y)
        if reference_class is None:
            reference_class = self.classes_[0]
        reference = np.flatnonzero(self.classes_ == reference_class)
        if np.ndim(reference_class) != 0 or reference.size != 1:
            raise ValueError(
                f"reference_class={reference_class!r} is not one of the classes "
                f"{self.classes_.tolist()}."
            )
        sample_weight = self._effective_weights(
            sample_weight, y, self.classes_, codes
        )
        feature_names = getattr(self, "feature_names_in_", None)
        if feature_names is None:
            feature_names = np.array([f"x{j}" for j in range(self.n_features_in_)])
        return softmax_inference(
            X,
            codes,
            sample_weight,
            self.coef_.astype(np.float64),
            self.intercept_.astype(np.float64),
            classes=self.classes_,
            reference=int(reference[0]),
            C=self.C,
            fit_intercept=self.fit_intercept,
            feature_names=feature_names,
            cov_type=cov_type,
            alpha=alpha,
        )

    def _effective_weights(self, sample_weight, y, classes, y_codes):
        """Sample weight times class weight, validated.

        Every class needs a positive total weight: nothing else in the data
        bounds its unpenalized intercept, which would diverge to -inf.
        """
        sample_weight = _check_sample_weight(
            sample_weight, y, dtype=np.float64, ensure_non_negative=True
        )
        # A scalar sample_weight bypasses the array checks.
        assert_all_finite(sample_weight, input_name="sample_weight")
        _check_every_class_weighted(sample_weight, y_codes, classes, "sample_weight")
        if self.class_weight is not None:
            if isinstance(self.class_weight, dict):
                _check_class_weight_dict(self.class_weight, classes)
            per_class = compute_class_weight(
                self.class_weight, classes=classes, y=y, sample_weight=sample_weight
            )
            sample_weight = sample_weight * per_class[y_codes]
        # Overflow is reported below, not warned about.
        with np.errstate(over="ignore", divide="ignore"):
            weight_sum = np.sum(sample_weight)
            l2_reg_strength = 1.0 / (self.C * weight_sum)
        if not weight_sum > 0:
            raise ValueError(
                "The effective sample weights (sample_weight times class_weight) "
                "sum to zero; at least one sample needs a positive weight."
            )
        _check_every_class_weighted(
            sample_weight, y_codes, classes, "sample_weight times class_weight"
        )
        if not np.isfinite(weight_sum):
            raise ValueError(
                "The effective sample weights sum to infinity; divide them by a "
                "common factor (and C by the same factor to keep the fit)."
            )
        if not np.isfinite(l2_reg_strength):
            raise ValueError(
                f"C={self.C:g} times the sum of the effective sample weights, "
                f"{weight_sum:g}, is too small for the penalty strength "
                "1 / (C * sum) to be a finite float; increase C or the weights."
            )
        return sample_weight

    def _warn_if_separated(self, loss, W, b):
        """Issue a PerfectSeparationWarning when the unpenalized fit separates."""
        if loss.separates(W, b):
            warnings.warn(
                "The classes are perfectly separated: the fitted coefficients "
                "classify every training sample correctly, so with C=np.inf the "
                "maximum-likelihood estimate does not exist (the loss keeps "
                "falling as the coefficients grow). The coefficients returned are "
                "finite only because the solver stopped at tol; their size is "
                "arbitrary, though predictions are right. Use a finite C, e.g. "
                "C=1.0, for well-defined coefficients.",
                PerfectSeparationWarning,
                # Past this method, fit and its validation wrapper.
                stacklevel=4,
            )

    def _starting_point(self, loss, classes, priors):
        """Previous solution under warm_start, else W = 0 and b = log priors.

        ``priors`` are the weighted class frequencies, summing to one.
        """
        previous = getattr(self, "coef_", None)
        if (
            self.warm_start
            and previous is not None
            and np.array_equal(getattr(self, "classes_", None), classes)
            and previous.shape == (classes.shape[0], loss.n_features)
        ):
            coef, intercept = move_to(previous, self.intercept_, xp=np, device="cpu")
            return np.concatenate([coef.T.ravel(), intercept]).astype(np.float64)
        params0 = np.zeros(loss.n_params)
        if self.fit_intercept:
            log_priors = np.log(np.maximum(priors, np.finfo(np.float64).tiny))
            # Centred: the softmax ignores a common shift, and the unpenalized
            # intercept's gradient never changes the mean, so this is where
            # scikit-learn's zero start ends up too.
            _, b0 = loss.unpack(params0)
            b0[...] = log_priors - log_priors.mean()
        return params0

    def _predict_lazily(self, method, X):
        """``method`` mapped over the row chunks of a dask array, not computed."""
        check_is_fitted(self)
        from ._dask import predict_lazily

        return predict_lazily(self, method, X)

    def _logits(self, X, method):
        check_is_fitted(self)
        check_same_namespace(X, self, attribute="coef_", method=method)
        xp, _ = get_namespace(X)
        X = validate_data(
            self, X, accept_sparse=["csr", "csc"], dtype=[xp.float64, xp.float32],
            reset=False,
        )
        return self._linear(X)

    def _linear(self, X):
        """``X @ coef_.T + intercept_`` in the namespace and dtype of validated X."""
        xp, _ = get_namespace(X)
        coef = xp.astype(self.coef_, X.dtype, copy=False)
        return safe_sparse_dot(X, coef.T) + xp.astype(self.intercept_, X.dtype, copy=False)

    def decision_function(self, X):
        """Logits of each class, or the margin for two classes.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            ``X @ coef_.T + intercept_``; for two classes, the log-odds of the
            second class, ``scores[:, 1] - scores[:, 0]``.
        """
        if _is_dask_array(X):
            return self._predict_lazily("decision_function", X)
        logits = self._logits(X, "decision_function")
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict(self, X):
        """Most probable class of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        if _is_dask_array(X):
            return self._predict_lazily("predict", X)
        logits = self._logits(X, "predict")
        xp, _, device = get_namespace_and_device(logits)
        labels = self.classes_[move_to(xp.argmax(logits, axis=1), xp=np, device="cpu")]
        if labels.dtype.kind in "OSU":
            # Strings have no Array API dtype: such labels stay NumPy's.
            return labels
        return move_to(labels, xp=xp, device=device)

    def predict_proba(self, X):
        """Class probabilities, the softmax of the logits.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``; each row sums to one.
        """
        if _is_dask_array(X):
            return self._predict_lazily("predict_proba", X)
        return softmax(self._logits(X, "predict_proba"), axis=1)

    def predict_log_proba(self, X):
        """Log class probabilities, computed as a log-softmax.

        Exact in the tails, where the log of a rounded probability would be
        ``-inf``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        if _is_dask_array(X):
            return self._predict_lazily("predict_log_proba", X)
        return log_softmax(self._logits(X, "predict_log_proba"), axis=1)


def _is_dask_array(X):
    """Whether X is a dask array, without importing dask (an optional dependency)."""
    array = sys.modules.get("dask.array")
    return array is not None and isinstance(X, array.Array)


def _check_two_classes(classes):
    if classes.shape[0] < 2:
        raise ValueError(
            "SoftmaxClassifier needs samples of at least 2 classes in the data, "
            f"but the data contains only one class: {classes[0]!r}."
        )


def _check_class_weight_dict(class_weight, classes):
    unknown = set(class_weight) - set(classes.tolist())
    if unknown:
        raise ValueError(
            f"class_weight has keys {sorted(unknown, key=str)} that are "
            f"not labels of y; the labels are {classes.tolist()}."
        )
    bad = {
        label: weight
        for label, weight in class_weight.items()
        if not (isinstance(weight, Real) and np.isfinite(weight) and weight >= 0)
    }
    if bad:
        raise ValueError(
            f"class_weight values must be finite non-negative numbers; got {bad}."
        )


def _check_every_class_weighted(sample_weight, y_codes, classes, source):
    totals = np.bincount(y_codes, weights=sample_weight, minlength=classes.shape[0])
    empty = classes[totals == 0].tolist()
    if empty:
        which = f"class {empty[0]!r}" if len(empty) == 1 else f"classes {empty}"
        raise ValueError(
            f"The samples of {which} have zero total weight ({source}): nothing "
            "in the data determines that class's probability. Drop those samples "
            "or give them a positive weight."
        )
