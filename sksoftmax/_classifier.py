"""SoftmaxClassifier: the scikit-learn contract around the loss and its solver."""

import warnings
from numbers import Integral, Real

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._loss import SoftmaxLoss
from ._solvers import lbfgs


class SoftmaxClassifier(ClassifierMixin, BaseEstimator):
    """Softmax (multinomial logistic) regression fitted with L-BFGS.

    The model is ``P(y=k | x) = softmax(W^T x + b)_k``. It minimizes exactly
    the objective of scikit-learn's
    :class:`~sklearn.linear_model.LogisticRegression` with its multinomial
    loss: the weighted mean cross-entropy plus ``||W||^2 / (2 C S)``, where
    ``S`` is the sum of the sample weights. Every class has its own row of
    coefficients (the symmetric parameterization) and the intercept is never
    penalized.

    Parameters
    ----------
    C : float, default=1.0
        Inverse regularization strength, a positive float. ``np.inf`` fits
        without a penalty.
    fit_intercept : bool, default=True
        Whether to fit one intercept per class.
    class_weight : dict or "balanced", default=None
        Weights ``{label: weight}`` multiplying the sample weights of each
        class. ``"balanced"`` uses ``S / (n_classes * S_k)`` with ``S_k`` the
        summed sample weight of class k, as scikit-learn does.
    solver : {"lbfgs"}, default="lbfgs"
        Optimizer. ``"lbfgs"`` is scipy's L-BFGS-B on one fused
        loss-and-gradient evaluation per step.
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
        "fit_intercept": ["boolean"],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "solver": [StrOptions({"lbfgs"})],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        C=1.0,
        *,
        fit_intercept=True,
        class_weight=None,
        solver="lbfgs",
        tol=1e-4,
        max_iter=1000,
        warm_start=False,
        verbose=0,
    ):
        self.C = C
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
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model to training data.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. float32 stays float32; anything else becomes
            float64. Sparse input may be CSR or CSC.
        y : array-like of shape (n_samples,)
            Class labels of any type; at least two distinct classes.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight per sample; ``None`` means all ones.

        Returns
        -------
        self : SoftmaxClassifier
            The fitted estimator.
        """
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            dtype=[np.float64, np.float32],
            order="C",
        )
        check_classification_targets(y)
        classes, y_codes = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(
                "SoftmaxClassifier needs samples of at least 2 classes in the data, "
                f"but the data contains only one class: {classes[0]!r}."
            )
        sample_weight = self._effective_weights(sample_weight, X, y, classes, y_codes)
        weight_sum = float(np.sum(sample_weight, dtype=np.float64))
        l2_reg_strength = 0.0 if np.isinf(self.C) else 1.0 / (self.C * weight_sum)

        loss = SoftmaxLoss(
            X,
            y_codes,
            n_classes=classes.shape[0],
            sample_weight=sample_weight,
            l2_reg_strength=l2_reg_strength,
            fit_intercept=self.fit_intercept,
        )
        params0 = self._starting_point(loss, classes, y_codes)
        self.classes_ = classes
        result = lbfgs(
            loss, params0, tol=self.tol, max_iter=self.max_iter, verbose=self.verbose
        )
        if not result.converged:
            warnings.warn(
                f"SoftmaxClassifier (solver={self.solver!r}) stopped after "
                f"{result.n_iter} iterations with a largest gradient entry of "
                f"{result.grad_max:.2e}, above tol={self.tol:g} ({result.message}). "
                "Increase max_iter, scale the features (e.g. with StandardScaler), "
                "or loosen tol.",
                ConvergenceWarning,
                stacklevel=2,
            )
        W, b = loss.unpack(result.params)
        self.coef_ = np.ascontiguousarray(W.T, dtype=X.dtype)
        self.intercept_ = b.astype(X.dtype)
        self.n_iter_ = result.n_iter
        return self

    def _effective_weights(self, sample_weight, X, y, classes, y_codes):
        """Sample weight times class weight, validated."""
        sample_weight = _check_sample_weight(
            sample_weight, X, dtype=np.float64, ensure_non_negative=True
        )
        if self.class_weight is not None:
            if isinstance(self.class_weight, dict):
                unknown = set(self.class_weight) - set(classes.tolist())
                if unknown:
                    raise ValueError(
                        f"class_weight has keys {sorted(unknown, key=str)} that are "
                        f"not labels of y; the labels are {classes.tolist()}."
                    )
            per_class = compute_class_weight(
                self.class_weight, classes=classes, y=y, sample_weight=sample_weight
            )
            sample_weight = sample_weight * per_class[y_codes]
        if not np.sum(sample_weight) > 0:
            raise ValueError(
                "The effective sample weights (sample_weight times class_weight) "
                "sum to zero; at least one sample needs a positive weight."
            )
        return sample_weight

    def _starting_point(self, loss, classes, y_codes):
        """Previous solution under warm_start, else W = 0 and b = log priors."""
        previous = getattr(self, "coef_", None)
        if (
            self.warm_start
            and previous is not None
            and np.array_equal(getattr(self, "classes_", None), classes)
            and previous.shape == (classes.shape[0], loss.n_features)
        ):
            return np.concatenate(
                [previous.T.ravel(), self.intercept_]
            ).astype(np.float64)
        params0 = np.zeros(loss.n_params)
        if self.fit_intercept:
            priors = np.bincount(y_codes, weights=loss.weights, minlength=loss.n_classes)
            log_priors = np.log(np.maximum(priors, np.finfo(np.float64).tiny))
            # Centred: the softmax ignores a common shift, and the unpenalized
            # intercept's gradient never changes the mean, so this is where
            # scikit-learn's zero start ends up too.
            _, b0 = loss.unpack(params0)
            b0[...] = log_priors - log_priors.mean()
        return params0

    def _logits(self, X):
        check_is_fitted(self)
        X = validate_data(
            self, X, accept_sparse=["csr", "csc"], dtype=[np.float64, np.float32],
            reset=False,
        )
        coef = self.coef_.astype(X.dtype, copy=False)
        return safe_sparse_dot(X, coef.T) + self.intercept_.astype(X.dtype, copy=False)

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
        logits = self._logits(X)
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
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]

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
        return softmax(self._logits(X), axis=1)

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
        return log_softmax(self._logits(X), axis=1)
