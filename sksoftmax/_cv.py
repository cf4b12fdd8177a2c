"""SoftmaxClassifierCV: choosing C and l1_ratio by cross-validation."""

from numbers import Integral

import numpy as np
from scipy.stats import rankdata
from sklearn.base import _fit_context
from sklearn.metrics import get_scorer
from sklearn.model_selection import check_cv
from sklearn.utils import Bunch, _safe_indexing
from sklearn.utils._param_validation import Interval
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _raise_for_params,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.parallel import Parallel, delayed
from sklearn.utils.validation import _check_method_params, check_is_fitted

from ._classifier import SoftmaxClassifier
from ._engines import training_data
from ._path import check_Cs, fit_path, stack_path
from ._penalty import ElasticNet, strongest_C
from ._validation import validate_training_X

# With Cs an integer, the grid spans this many decades of C upwards from the
# strongest useful penalty: glmnet's lambda_min_ratio of 1e-4.
_GRID_DECADES = 4.0

_FIT_PARAMS = ("fit_intercept", "class_weight", "solver", "tol", "max_iter", "verbose")


def _path_scores(estimator, X, y, sample_weight, train, test, Cs, scorer, score_params):
    """Fit the path on ``train`` and score each of its models on ``test``."""
    X_train, y_train = _safe_indexing(X, train), _safe_indexing(y, train)
    sw_train = None if sample_weight is None else sample_weight[train]
    data = training_data(
        X_train,
        y_train,
        sw_train,
        class_weight=estimator.class_weight,
        fit_intercept=estimator.fit_intercept,
    )
    results = fit_path(
        data,
        Cs,
        l1_ratio=estimator.l1_ratio,
        solver=estimator.solver,
        tol=estimator.tol,
        max_iter=estimator.max_iter,
        verbose=estimator.verbose,
    )
    coefs, intercepts, _ = stack_path(data, results, X.dtype)
    X_test, y_test = _safe_indexing(X, test), _safe_indexing(y, test)
    score_params = _check_method_params(X, score_params, test)
    model = SoftmaxClassifier(**estimator.get_params())
    model.classes_, model.n_features_in_ = data.classes, X.shape[1]
    scores = np.empty(len(Cs))
    for i, (coef, intercept) in enumerate(zip(coefs, intercepts, strict=True)):
        model.coef_, model.intercept_ = coef, intercept
        scores[i] = scorer(model, X_test, y_test, **score_params)
    return scores, coefs, intercepts


class SoftmaxClassifierCV(SoftmaxClassifier):
    """Softmax regression with C (and l1_ratio) chosen by cross-validation.

    For every ``l1_ratio`` and every training fold, :func:`softmax_path` fits
    the whole grid of ``C`` with warm starts; each model is scored on its
    held-out fold. The ``(C, l1_ratio)`` with the best mean score wins (on a
    tie, the first in ``cv_results_["params"]``, i.e. the strongest penalty),
    and with ``refit=True`` a :class:`SoftmaxClassifier` is fitted with it on
    all the data.

    Parameters
    ----------
    Cs : int or array-like of shape (n_Cs,), default=10
        The grid of C. An integer ``n`` asks for ``n`` values log-spaced over
        four decades upwards from the strongest useful penalty, computed on
        all the data for each ``l1_ratio``: the smallest C at which some
        coefficient is non-zero, ``l1_ratio / (S max|X^T D (P0 - Y)|)`` with
        ``P0`` the intercept-only fit (glmnet's ``lambda_max``). The L2
        penalty (``l1_ratio=0``) zeroes nothing, so, as glmnet, it uses the
        value for ``l1_ratio=0.001``, where the coefficients are about
        ``0.001`` in size. An array-like is used as given.
    l1_ratios : array-like of shape (n_l1_ratios,), default=(0.0,)
        Elastic-net mixings to try, each in ``[0, 1]``.
    cv : int, cross-validation generator or iterable, default=None
        Folds, as in :func:`~sklearn.model_selection.check_cv`: ``None``
        means 5 and an integer ``k`` means
        :class:`~sklearn.model_selection.StratifiedKFold` with ``k`` folds.
    scoring : str or callable, default=None
        Any scikit-learn scorer; ``None`` means accuracy, as in
        :class:`~sklearn.linear_model.LogisticRegressionCV`.
    refit : bool, default=True
        Refit on all the data with the chosen parameters. If False, the
        coefficients are the means over the folds of those at the chosen
        parameters.
    n_jobs : int, default=None
        Number of jobs fitting the folds (times the l1_ratios) in parallel,
        with joblib. ``None`` means 1 unless in a joblib context.
    fit_intercept : bool, default=True
        As in :class:`SoftmaxClassifier`, for every fit.
    class_weight : dict or "balanced", default=None
        As in :class:`SoftmaxClassifier`, for every fit.
    solver : {"lbfgs", "newton-cg"}, default="lbfgs"
        As in :class:`SoftmaxClassifier`, for every fit.
    tol : float, default=1e-4
        As in :class:`SoftmaxClassifier`, for every fit.
    max_iter : int, default=1000
        As in :class:`SoftmaxClassifier`, for every fit.
    verbose : int, default=0
        As in :class:`SoftmaxClassifier`, for every fit.

    Attributes
    ----------
    C_ : float
        The chosen C.
    l1_ratio_ : float
        The chosen l1_ratio.
    best_score_ : float
        Mean cross-validated score of the chosen parameters.
    best_index_ : int
        Index of the chosen parameters in ``cv_results_``.
    cv_results_ : dict of ndarrays
        As :class:`~sklearn.model_selection.GridSearchCV`'s: ``params``,
        ``param_C``, ``param_l1_ratio``, ``split{k}_test_score``,
        ``mean_test_score``, ``std_test_score`` and ``rank_test_score``.
    best_estimator_ : SoftmaxClassifier
        The model refitted with the chosen parameters (only with
        ``refit=True``).
    classes_, coef_, intercept_, n_features_in_, feature_names_in_
        Those of the final model, as in :class:`SoftmaxClassifier`.
    n_iter_ : int
        Iterations of the refit (only with ``refit=True``).

    See Also
    --------
    softmax_path : The warm-started fits along a grid of C.
    sklearn.linear_model.LogisticRegressionCV : The same search, one C at a
        time per fold.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sksoftmax import SoftmaxClassifierCV
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = SoftmaxClassifierCV(Cs=[0.01, 0.1, 1.0, 10.0]).fit(X, y)
    >>> float(clf.C_)
    1.0
    >>> round(clf.best_score_, 3)
    0.973
    >>> clf.predict(X[:2])
    array([0, 0])
    """

    _parameter_constraints: dict = {
        key: value
        for key, value in SoftmaxClassifier._parameter_constraints.items()
        if key in _FIT_PARAMS
    } | {
        "Cs": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "l1_ratios": ["array-like"],
        "cv": ["cv_object"],
        "scoring": [str, callable, None],
        "refit": ["boolean"],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        Cs=10,
        *,
        l1_ratios=(0.0,),
        cv=None,
        scoring=None,
        refit=True,
        n_jobs=None,
        fit_intercept=True,
        class_weight=None,
        solver="lbfgs",
        tol=1e-4,
        max_iter=1000,
        verbose=0,
    ):
        self.Cs = Cs
        self.l1_ratios = l1_ratios
        self.cv = cv
        self.scoring = scoring
        self.refit = refit
        self.n_jobs = n_jobs
        self.fit_intercept = fit_intercept
        self.class_weight = class_weight
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.verbose = verbose

    def _base(self, C, l1_ratio):
        return SoftmaxClassifier(
            C=C,
            l1_ratio=l1_ratio,
            **{name: getattr(self, name) for name in _FIT_PARAMS},
        )

    def _get_scorer(self):
        return get_scorer(self.scoring if self.scoring is not None else "accuracy")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The folds, scores and grid are NumPy bookkeeping; Array API input is
        # supported by SoftmaxClassifier alone for now.
        tags.array_api_support = False
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None, **params):
        """Cross-validate the grid, choose the best parameters and refit.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of every fit. Without metadata routing they also weigh the
            scores, as in LogisticRegressionCV; with it enabled, the scorer
            receives them when it requests them.
        **params : dict
            With metadata routing enabled, parameters for the splitter and the
            scorer.

        Returns
        -------
        self : SoftmaxClassifierCV
            The fitted estimator.
        """
        _raise_for_params(params, self, "fit")
        l1_ratios = np.asarray(self.l1_ratios, dtype=np.float64)
        if (
            l1_ratios.ndim != 1
            or l1_ratios.size == 0
            or not np.all((l1_ratios >= 0) & (l1_ratios <= 1))
        ):
            raise ValueError(
                "l1_ratios must be a non-empty 1-d sequence of numbers in [0, 1]; "
                f"got {self.l1_ratios!r}."
            )
        X, y = validate_training_X(self, X, y)
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
        if _routing_enabled():
            routed = process_routing(self, "fit", sample_weight=sample_weight, **params)
        else:
            score = {} if sample_weight is None else {"sample_weight": sample_weight}
            routed = Bunch(splitter=Bunch(split={}), scorer=Bunch(score=score))

        # The whole-data checks of labels and weights run before any split.
        data = training_data(
            X,
            y,
            sample_weight,
            class_weight=self.class_weight,
            fit_intercept=self.fit_intercept,
        )
        _, grad = data.engine.loss_gradient(data.null_params())
        grad_W, _ = data.engine.unpack(grad)
        grids = []
        for l1_ratio in l1_ratios:
            if isinstance(self.Cs, Integral):
                strongest = strongest_C(grad_W, data.weight_sum, l1_ratio)
                grids.append(strongest * np.logspace(0, _GRID_DECADES, self.Cs))
            else:
                grids.append(check_Cs(self.Cs))
        ElasticNet.from_C(min(grid.min() for grid in grids), 0.0, data.weight_sum)

        cv = check_cv(self.cv, y, classifier=True)
        folds = list(cv.split(X, y, **routed.splitter.split))
        scorer = self._get_scorer()
        jobs = [
            (l1_ratio, grid, train, test)
            for l1_ratio, grid in zip(l1_ratios, grids, strict=True)
            for train, test in folds
        ]
        results = Parallel(n_jobs=self.n_jobs)(
            delayed(_path_scores)(
                self._base(grid.min(), l1_ratio),
                X,
                y,
                sample_weight,
                train,
                test,
                grid,
                scorer,
                routed.scorer.score,
            )
            for l1_ratio, grid, train, test in jobs
        )

        n_folds = len(folds)
        # scores[k, j]: fold k, j-th (l1_ratio, C) with l1_ratio outermost.
        scores = np.hstack(
            [
                np.vstack([r[0] for r in results[i * n_folds : (i + 1) * n_folds]])
                for i in range(len(l1_ratios))
            ]
        )
        params_C = np.concatenate(grids)
        params_l1 = np.repeat(l1_ratios, [len(grid) for grid in grids])
        mean = scores.mean(axis=0)
        rank = rankdata(-mean, method="min").astype(np.int32)
        self.cv_results_ = {
            "params": [
                {"C": float(C), "l1_ratio": float(r)}
                for C, r in zip(params_C, params_l1, strict=True)
            ],
            "param_C": np.ma.MaskedArray(params_C, mask=False),
            "param_l1_ratio": np.ma.MaskedArray(params_l1, mask=False),
            **{f"split{k}_test_score": scores[k] for k in range(n_folds)},
            "mean_test_score": mean,
            "std_test_score": scores.std(axis=0),
            "rank_test_score": rank,
        }
        self.best_index_ = int(np.argmax(mean))
        self.best_score_ = float(mean[self.best_index_])
        self.C_ = float(params_C[self.best_index_])
        self.l1_ratio_ = float(params_l1[self.best_index_])

        if self.refit:
            best = self._base(self.C_, self.l1_ratio_).fit(X, y, sample_weight)
            self.best_estimator_ = best
            self.classes_, self.coef_ = best.classes_, best.coef_
            self.intercept_, self.n_iter_ = best.intercept_, best.n_iter_
        else:
            ratio_index, C_index = [
                (i, j) for i, grid in enumerate(grids) for j in range(len(grid))
            ][self.best_index_]
            fold_results = results[ratio_index * n_folds : (ratio_index + 1) * n_folds]
            self.classes_ = np.unique(y)
            self.coef_ = np.mean([r[1][C_index] for r in fold_results], axis=0)
            self.intercept_ = np.mean([r[2][C_index] for r in fold_results], axis=0)
        return self

    def score(self, X, y, sample_weight=None, **score_params):
        """Score on test data with the ``scoring`` of the search.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Test samples.
        y : array-like of shape (n_samples,)
            True labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.
        **score_params : dict
            With metadata routing enabled, parameters for the scorer.

        Returns
        -------
        score : float
            The scorer's value; accuracy by default.
        """
        _raise_for_params(score_params, self, "score")
        if _routing_enabled():
            routed = process_routing(
                self, "score", sample_weight=sample_weight, **score_params
            )
            kwargs = routed.scorer.score
        else:
            kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        return self._get_scorer()(self, X, y, **kwargs)

    def inference(self, X, y, sample_weight=None, **kwargs):
        """Inference of the refitted model; see :meth:`SoftmaxClassifier.inference`.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            The training data.
        y : array-like of shape (n_samples,)
            The training labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Frequency weights, as in ``fit``.
        **kwargs : dict
            ``reference_class``, ``cov_type`` and ``alpha``, as for
            :meth:`SoftmaxClassifier.inference`.

        Returns
        -------
        results : SoftmaxInferenceResults
            Those of ``best_estimator_``.
        """
        check_is_fitted(self)
        if not self.refit:
            raise ValueError("inference needs the model refitted with refit=True.")
        return self.best_estimator_.inference(X, y, sample_weight, **kwargs)

    def get_metadata_routing(self):
        """Metadata routing of this object: to the fits, the splitter and the scorer.

        Returns
        -------
        routing : MetadataRouter
            The routing to the fits, the splitter and the scorer.
        """
        return (
            MetadataRouter(owner=self)
            .add_self_request(self)
            .add(
                splitter=check_cv(self.cv),
                method_mapping=MethodMapping().add(caller="fit", callee="split"),
            )
            .add(
                scorer=self._get_scorer(),
                method_mapping=MethodMapping()
                .add(caller="score", callee="score")
                .add(caller="fit", callee="score"),
            )
        )
