"""SoftmaxClassifier: the scikit-learn contract around the loss and its solver."""

import copy
import functools
import inspect
from numbers import Integral, Real

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils._array_api import (
    check_same_namespace,
    get_namespace,
    get_namespace_and_device,
    move_to,
)
from sklearn.utils._param_validation import Interval, StrOptions, validate_params
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import (
    _check_feature_names,
    check_is_fitted,
    validate_data,
)

from ._engines import make_engine, training_data
from ._inference import softmax_inference
from ._path import fit_path
from ._solvers import SOLVERS
from ._validation import (
    canonical_sparse,
    check_dask_frame_names,
    check_inference_labels,
    check_label_values,
    cluster_codes,
    cluster_ways,
    dask_frame_to_array,
    effective_weights,
    is_dask_array,
    is_dask_frame,
    validate_training_X,
)


def _namespace_and_device(X):
    xp, _, device = get_namespace_and_device(X)
    return xp, device


def _lazy_on_dask(method):
    """Map ``method`` over the row chunks of a dask array, lazily; else call it."""

    @functools.wraps(method)
    def dispatch(self, X):
        if is_dask_frame(X):
            check_is_fitted(self)
            check_dask_frame_names(self, X, reset=False)
            X = dask_frame_to_array(X)
        elif is_dask_array(X):
            check_is_fitted(self)
            _check_feature_names(self, X, reset=False)
        if is_dask_array(X):
            # Imported here: dask is an optional dependency.
            from ._engines._dask import predict_lazily

            # The names were checked here, once; the blocks are unnamed
            # arrays, which the fitted names would warn about block by block.
            model = copy.copy(self)
            model.__dict__.pop("feature_names_in_", None)
            return predict_lazily(model, method.__name__, X)
        return method(self, X)

    return dispatch


def _inference_data(estimator, X, y, sample_weight, cov_type, groups):
    """The engine, class totals and clusters of in-memory training data."""
    X, y = validate_data(
        estimator, X, y, accept_sparse=["csr", "csc"], dtype=np.float64, reset=False
    )
    X = canonical_sparse(X)
    check_label_values(y)
    check_inference_labels(np.unique(y), estimator.classes_)
    codes = np.searchsorted(estimator.classes_, y)
    groups = cluster_codes(groups, cov_type, X.shape[0])
    weights, class_totals = effective_weights(
        sample_weight, codes, estimator.classes_, estimator.class_weight
    )
    engine = make_engine(
        X, codes, len(estimator.classes_), weights, estimator.fit_intercept
    )
    clusters = None if groups is None else cluster_ways(groups)
    return engine, class_totals, clusters


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
        fused loss-and-gradient evaluation per step, robust everywhere.
        ``"newton-cg"`` takes truncated Newton steps, fewer and costlier
        iterations. On NumPy or scipy.sparse data with at least 40 rows per
        parameter (``(n_features + 1) * n_classes`` parameters), and memory
        for a sample of 4 rows per parameter within half that of the
        ``n_samples x n_classes`` logits, its Hessian-vector products run on
        a stratified float32 sample of up to ten rows per parameter; values
        and gradients use every row, so the optimum is the same. A fit from
        zero coefficients first takes Newton steps on that sample alone,
        which ``n_iter_`` does not count. It is then the fastest on dense
        data (see the user guide). Otherwise its
        products are exact, with an extra ``n_samples x n_classes`` array
        of memory; it can then win on ill-conditioned, nearly separable
        problems.
    tol : float, default=1e-4
        Stop once the largest absolute entry of the objective's gradient (with
        ``l1_ratio > 0``, of its minimum-norm subgradient) is at most ``tol``,
        scikit-learn's meaning for ``lbfgs``; for a feature whose root mean
        square is below 1, its entries are first divided by that scale, so
        that features of tiny scale (whose raw gradient is tiny everywhere)
        are still fitted. ``solver="lbfgs"`` with an L2 penalty, and
        ``"newton-cg"``, also run on until their estimate of the remaining
        objective gap is at most ``0.3 * tol`` times the objective (see
        "What tol means" in the user guide): it may stop later, never
        earlier. A fit that stops before the gradient meets ``tol`` issues a
        ConvergenceWarning that says why.
    max_iter : int, default=1000
        Maximum number of solver iterations. Larger than scikit-learn's 100 so
        that unscaled real data converge without a warning.
    warm_start : bool, default=False
        Start from the previous fit's coefficients when its classes and
        features match (without an intercept, from its coefficients only);
        otherwise from scratch. The optimum does not depend on the start.
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
        Number of solver iterations of the last fit, each on every row.
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
        "solver": [StrOptions(set(SOLVERS))],
        "tol": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
    }

    def __new__(cls, *args, **kwargs):
        if "penalty" in kwargs:
            # What LogisticRegression users type first; say what means it here.
            raise TypeError(
                f"{cls.__name__} has no penalty parameter: its penalty is the "
                "elastic net, set by l1_ratio (0: L2, the default; 1: L1; in "
                "between: elastic net), and C=np.inf fits without one."
            )
        return super().__new__(cls)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.__signature__ = _init_signature(cls)

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
        X, y = validate_training_X(self, X, y)
        data = training_data(
            X,
            y,
            sample_weight,
            class_weight=self.class_weight,
            fit_intercept=self.fit_intercept,
        )
        (result,) = fit_path(
            data,
            [self.C],
            l1_ratio=self.l1_ratio,
            solver=self.solver,
            tol=self.tol,
            max_iter=self.max_iter,
            verbose=self.verbose,
            start=self._warm_start_params(data),
        )
        W, b = data.engine.unpack(result.params)
        self.classes_ = data.classes
        # In the input's namespace and device; a dask fit's results are NumPy.
        xp, device = (np, None) if is_dask_array(X) else _namespace_and_device(X)
        self.coef_ = xp.asarray(
            np.ascontiguousarray(W.T), dtype=data.engine.dtype, device=device
        )
        self.intercept_ = xp.asarray(b, dtype=data.engine.dtype, device=device)
        self.n_iter_ = result.n_iter
        return self

    def _warm_start_params(self, data):
        """The previous solution under warm_start, when classes and width match."""
        previous = getattr(self, "coef_", None)
        if not (
            self.warm_start
            and previous is not None
            and np.array_equal(getattr(self, "classes_", None), data.classes)
            and previous.shape == (data.classes.shape[0], data.engine.n_features)
        ):
            return None
        coef, intercept = move_to(previous, self.intercept_, xp=np, device="cpu")
        if not self.fit_intercept:
            # The engine holds b where it starts: a previous intercept would stay.
            intercept = np.zeros_like(intercept)
        return np.concatenate([coef.T.ravel(), intercept]).astype(np.float64)

    @validate_params(
        {
            "X": ["array-like", "sparse matrix"],
            "y": ["array-like"],
            "sample_weight": ["array-like", None],
            "cov_type": [StrOptions({"nonrobust", "HC0", "HC1", "cluster"})],
            "groups": ["array-like", None],
            "alpha": [Interval(Real, 0, 1, closed="neither")],
            "feature_names": ["array-like", None],
        },
        prefer_skip_nested_validation=True,
    )
    def inference(
        self,
        X,
        y,
        sample_weight=None,
        *,
        reference_class=None,
        cov_type="nonrobust",
        groups=None,
        alpha=0.05,
        feature_names=None,
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
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            The training data. On a dask array or DataFrame every pass over
            the data (the Hessian, the scores' sums, the overlap
            certificate) runs on the workers, chunk by chunk, and only
            squares of the parameters come back.
        y : array-like or dask array of shape (n_samples,)
            The training labels; every class of ``classes_`` must occur.
        sample_weight : array-like or dask array of shape (n_samples,), default=None
            Frequency weights: a weight of 2 counts like a duplicated row.
            Class weights multiply them, as in ``fit``.
        reference_class : label, default=None
            The class whose coefficients are fixed at zero; ``None`` means
            ``classes_[0]``.
        cov_type : {"nonrobust", "HC0", "HC1", "cluster"}, default="nonrobust"
            ``"nonrobust"``: inverse Hessian. ``"HC0"``: the sandwich
            estimator, robust to a misspecified model; ``"HC1"``: the same
            times ``nobs / (nobs - n_params)``. ``"cluster"``: the sandwich
            with the scores summed within each cluster of ``groups``, robust
            to correlation inside clusters, with statsmodels' small-sample
            correction ``G / (G - 1) (nobs - 1) / (nobs - n_params)`` for
            ``G`` clusters.
        groups : array-like or dask array of shape (n_samples,) or (n_samples, 2), \
                default=None
            Cluster labels, required by ``cov_type="cluster"`` and only used
            by it. Two columns give two-way clustering: the covariances of
            each way added, that of their intersections subtracted.
        alpha : float, default=0.05
            Default level of the confidence intervals in the results.
        feature_names : array-like of shape (n_features,), default=None
            Names of the columns of ``X`` in the results; ``None`` means
            ``feature_names_in_`` when fitted on named columns, else ``x0,
            x1, ...``. :func:`sksoftmax.inference` passes a pipeline's
            ``get_feature_names_out()``.

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
        if self.l1_ratio > 0 and np.isfinite(self.C):
            raise ValueError(
                f"inference needs a twice-differentiable objective, and the L1 part "
                f"of l1_ratio={self.l1_ratio:g} has no Hessian at its zeros; its "
                "standard errors would ignore that the zeros were selected from "
                "the data. Refit with l1_ratio=0 (on the selected features) first."
            )
        if is_dask_array(X) or is_dask_frame(X):
            # Imported here: dask is an optional dependency.
            from ._engines._dask import inference_data
        else:
            inference_data = _inference_data
        engine, class_totals, clusters = inference_data(
            self, X, y, sample_weight, cov_type, groups
        )
        if reference_class is None:
            reference_class = self.classes_[0]
        reference = np.flatnonzero(self.classes_ == reference_class)
        if np.ndim(reference_class) != 0 or reference.size != 1:
            raise ValueError(
                f"reference_class={reference_class!r} is not one of the classes "
                f"{self.classes_.tolist()}."
            )
        if feature_names is None:
            feature_names = getattr(self, "feature_names_in_", None)
        if feature_names is None:
            feature_names = np.array([f"x{j}" for j in range(self.n_features_in_)])
        feature_names = np.asarray(feature_names, dtype=object)
        if feature_names.shape != (self.n_features_in_,):
            raise ValueError(
                f"feature_names has {feature_names.size} entries; X has "
                f"{self.n_features_in_} columns."
            )
        coef, intercept = move_to(self.coef_, self.intercept_, xp=np, device="cpu")
        return softmax_inference(
            engine,
            class_totals,
            coef.astype(np.float64),
            intercept.astype(np.float64),
            classes=self.classes_,
            reference=int(reference[0]),
            C=self.C,
            feature_names=feature_names,
            cov_type=cov_type,
            clusters=clusters,
            alpha=alpha,
        )

    def _logits(self, X, method):
        check_is_fitted(self)
        check_same_namespace(X, self, attribute="coef_", method=method)
        xp, _ = get_namespace(X)
        X = validate_data(
            self,
            X,
            accept_sparse=["csr", "csc"],
            dtype=[xp.float64, xp.float32],
            reset=False,
        )
        return self._linear(X)

    def _linear(self, X):
        """``X @ coef_.T + intercept_`` in the namespace and dtype of validated X."""
        xp, _ = get_namespace(X)
        coef = xp.astype(self.coef_, X.dtype, copy=False)
        return safe_sparse_dot(X, coef.T) + xp.astype(
            self.intercept_, X.dtype, copy=False
        )

    @_lazy_on_dask
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
        logits = self._logits(X, "decision_function")
        if logits.shape[1] == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    @_lazy_on_dask
    def predict(self, X):
        """Most probable class of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            The label of ``classes_`` with the largest probability.
        """
        logits = self._logits(X, "predict")
        xp, _, device = get_namespace_and_device(logits)
        labels = self.classes_[move_to(xp.argmax(logits, axis=1), xp=np, device="cpu")]
        if labels.dtype.kind in "OSU":
            # Strings have no Array API dtype: such labels stay NumPy's.
            return labels
        return move_to(labels, xp=xp, device=device)

    @_lazy_on_dask
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
        return softmax(self._logits(X, "predict_proba"), axis=1)

    @_lazy_on_dask
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
            Columns follow ``classes_``.
        """
        return log_softmax(self._logits(X, "predict_log_proba"), axis=1)


def _init_signature(cls):
    """The signature of ``cls(...)``: that of ``__init__``, not of ``__new__``.

    ``__new__`` takes any keyword only to refuse ``penalty`` with advice;
    introspection (scikit-learn's checks, the docs) must see ``__init__``.
    """
    signature = inspect.signature(cls.__init__)
    return signature.replace(parameters=list(signature.parameters.values())[1:])


SoftmaxClassifier.__signature__ = _init_signature(SoftmaxClassifier)


def inference(estimator, X, y, sample_weight=None, **kwargs):
    """Inference of a fitted SoftmaxClassifier, also at the end of a Pipeline.

    For a :class:`~sklearn.pipeline.Pipeline` whose last step is a fitted
    :class:`SoftmaxClassifier`, ``X`` goes through the other steps and the
    results name their terms by ``get_feature_names_out()`` of those steps
    (``onehot__colour_red``, ``scale__age``...), so the coefficients of
    encoded and scaled columns can be read as such.

    Parameters
    ----------
    estimator : SoftmaxClassifier or Pipeline
        Fitted, on the training data that ``X`` and ``y`` are.
    X : array-like or DataFrame of shape (n_samples, n_features)
        The training data, before the pipeline's transformations.
    y : array-like of shape (n_samples,)
        The training labels.
    sample_weight : array-like of shape (n_samples,), default=None
        As in :meth:`SoftmaxClassifier.inference`.
    **kwargs : dict
        ``reference_class``, ``cov_type``, ``groups``, ``alpha``, as in
        :meth:`SoftmaxClassifier.inference`.

    Returns
    -------
    results : SoftmaxInferenceResults
        As :meth:`SoftmaxClassifier.inference` returns.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from sklearn.compose import make_column_transformer
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import OneHotEncoder, StandardScaler
    >>> from sksoftmax import SoftmaxClassifier, inference
    >>> X, y = load_iris(return_X_y=True, as_frame=True)
    >>> X["size"] = np.where(X["sepal length (cm)"] > 5.8, "large", "small")
    >>> model = make_pipeline(
    ...     make_column_transformer(
    ...         (OneHotEncoder(drop="first"), ["size"]),
    ...         (StandardScaler(), ["petal width (cm)"]),
    ...     ),
    ...     SoftmaxClassifier(C=1.0),
    ... ).fit(X, y)
    >>> inference(model, X, y).feature_names.tolist()
    ['onehotencoder__size_small', 'standardscaler__petal width (cm)']
    """
    if hasattr(estimator, "steps"):
        features = estimator[:-1]
        X = features.transform(X)
        kwargs.setdefault("feature_names", features.get_feature_names_out())
        estimator = estimator[-1]
    return estimator.inference(X, y, sample_weight, **kwargs)
