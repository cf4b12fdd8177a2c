"""SoftmaxClassifierCV: choosing C and l1_ratio by cross-validation."""

import inspect
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from scipy.stats import rankdata
from sklearn.base import _fit_context
from sklearn.exceptions import FitFailedWarning
from sklearn.metrics import get_scorer, make_scorer
from sklearn.model_selection import check_cv
from sklearn.utils import Bunch, _safe_indexing
from sklearn.utils._param_validation import Interval, StrOptions
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
from ._engines import TrainingData, make_engine, subset_data
from ._path import check_Cs, fit_path
from ._penalty import ElasticNet, strongest_C
from ._validation import (
    effective_weights,
    encode_labels,
    is_dask_array,
    is_dask_frame,
    validate_training_X,
)

# With Cs an integer, the grid spans this many decades of C upwards from the
# strongest useful penalty: glmnet's lambda_min_ratio of 1e-4.
_GRID_DECADES = 4.0
# While the best mean score sits at the grid's weakest penalty, the grid is
# extended upwards, at its own spacing, by at most this many more decades.
_EXTENSION_DECADES = 8.0

_FIT_PARAMS = ("fit_intercept", "class_weight", "solver", "tol", "max_iter", "verbose")


@dataclass
class _Whole:
    """The whole training data in memory, validated once; folds inherit it.

    :class:`~sksoftmax._engines._dask.ChunkFolds` is its counterpart for
    Dask data, with the same ``classes``, ``n_features``, ``dtype``,
    ``weight_sum``, ``all_data``, ``training`` and ``held_out``.
    """

    X: object
    y: np.ndarray
    classes: np.ndarray
    codes: np.ndarray
    weights: np.ndarray
    score_weight: np.ndarray | None
    fit_intercept: bool

    @property
    def n_features(self):
        return self.X.shape[1]

    @property
    def dtype(self):
        return self.X.dtype

    @property
    def weight_sum(self):
        return float(np.sum(self.weights))

    def all_data(self):
        """The training data of every row."""
        engine = make_engine(
            self.X, self.codes, self.classes.shape[0], self.weights, self.fit_intercept
        )
        totals = np.bincount(self.codes, weights=self.weights)
        return TrainingData(engine, self.classes, totals)

    def training(self, train):
        """Training data of the rows ``train`` and the classes present in them."""
        return subset_data(
            self.X,
            self.codes,
            self.weights,
            self.classes,
            train,
            fit_intercept=self.fit_intercept,
        )

    def held_out(self, test, scorer, score_params):
        """A function from a model over all classes to its score on rows ``test``."""
        X_test = _safe_indexing(self.X, test)
        y_test = _safe_indexing(self.y, test)
        score_params = _check_method_params(self.X, score_params, test)
        return lambda model: scorer(model, X_test, y_test, **score_params)


@dataclass
class _FoldPath:
    """One (l1_ratio, fold) path: its scores and models, and where it ended."""

    scores: list
    coefs: list
    intercepts: list
    n_iter: list
    params: np.ndarray | None
    failed: bool = False
    message: str = ""


def _fold_model(estimator, whole, present, coef, intercept):
    """A model over all classes of the whole data for a fold's fit.

    Classes absent from the training fold get probability 0 (an intercept
    of -inf), so scorers see one column per class, as for the whole data.
    """
    model = SoftmaxClassifier(**estimator.get_params())
    n_classes = whole.classes.shape[0]
    model.classes_ = whole.classes
    model.n_features_in_ = whole.n_features
    model.coef_ = np.zeros((n_classes, whole.n_features), dtype=whole.dtype)
    model.intercept_ = np.full(n_classes, -np.inf, dtype=whole.dtype)
    model.coef_[present] = coef
    model.intercept_[present] = intercept
    return model


def _fold_path(estimator, whole, fold, train, test, Cs, start, scorer, score_params):
    """Fit the path of ``Cs`` on a training fold and score it on the held-out one."""
    data, present = whole.training(train)
    score_held_out = whole.held_out(test, scorer, score_params)
    path = _FoldPath([], [], [], [], start)
    tag = f"[l1_ratio={estimator.l1_ratio:g} fold {fold}] "
    if data is None:
        # One class in the fold: the limit of its fit at any C predicts that
        # class with probability 1.
        results = [None] * len(Cs)
    else:
        results = fit_path(
            data,
            Cs,
            l1_ratio=estimator.l1_ratio,
            solver=estimator.solver,
            tol=estimator.tol,
            max_iter=estimator.max_iter,
            verbose=max(estimator.verbose - 1, 0),
            start=start,
            tag=tag,
        )
    for C, result in zip(Cs, results, strict=True):
        if result is None:
            coef = np.zeros((1, whole.n_features))
            intercept, n_iter = np.zeros(1), 0
        else:
            W, b = data.engine.unpack(result.params)
            coef, intercept, n_iter = W.T, b, result.n_iter
            path.params = result.params
        model = _fold_model(estimator, whole, present, coef, intercept)
        score = score_held_out(model)
        if estimator.verbose:
            print(f"{tag}C={C:.4g}: score {score:.6g}, {n_iter} iterations", flush=True)
        path.scores.append(score)
        path.coefs.append(model.coef_)
        path.intercepts.append(model.intercept_)
        path.n_iter.append(n_iter)
    return path


def _with_labels(scorer, classes):
    """``scorer`` told every class of the whole data, where its metric takes them.

    A held-out fold may lack classes; metrics such as the Brier score or the
    log loss then need the full list (``labels``) to match the probability
    columns. Scorers built by ``make_scorer`` are rebuilt with it, as
    LogisticRegressionCV does; other callables are used as they are.
    """
    metric = getattr(scorer, "_score_func", None)
    if metric is None or "labels" not in inspect.signature(metric).parameters:
        return scorer
    return make_scorer(
        metric,
        greater_is_better=scorer._sign == 1,
        response_method=scorer._response_method,
        **{"labels": classes, **getattr(scorer, "_kwargs", {})},
    )


def _failed_path(n_Cs, error_score):
    return _FoldPath(
        [error_score] * n_Cs, [None] * n_Cs, [None] * n_Cs, [0] * n_Cs, None, True
    )


def _joined(first, then):
    """A fold's path continued by its extension."""
    if first.failed or then.failed:
        return first if first.failed else then
    return _FoldPath(
        first.scores + then.scores,
        first.coefs + then.coefs,
        first.intercepts + then.intercepts,
        first.n_iter + then.n_iter,
        then.params,
    )


class SoftmaxClassifierCV(SoftmaxClassifier):
    """Softmax regression with C (and l1_ratio) chosen by cross-validation.

    For every ``l1_ratio`` and every training fold, the whole grid of ``C``
    is fitted as a path with warm starts (as :func:`softmax_path` does); each
    model is scored on its held-out fold. The ``(C, l1_ratio)`` with the best
    mean score wins (on a tie, the first in ``cv_results_["params"]``, i.e.
    the strongest penalty), and with ``refit=True`` a
    :class:`SoftmaxClassifier` is fitted with it on all the data.

    Labels, sample weights and class weights are checked once on the whole
    data, and ``class_weight="balanced"`` is computed there, as in
    :class:`~sklearn.linear_model.LogisticRegressionCV`; the folds inherit
    them. A class absent from a training fold gets probability 0 in that
    fold's scores (one column per class of the whole data), and a training
    fold with a single class predicts it.

    On dask input the folds are consecutive runs of whole row chunks (``cv``
    a number of folds), fitted and scored on the workers where the chunks
    are, with ``scoring`` ``"accuracy"`` or ``"neg_log_loss"``.

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
        ``0.001`` in size. While the best mean score is at the grid's largest
        C, the grid is extended upwards at its own spacing (``n // 2`` values
        at a time, at least 2, by at most eight more decades), each fold's
        path continuing where it stopped. An array-like is used as given. A
        chosen C at either end of the final grid is warned about.
    l1_ratios : array-like of shape (n_l1_ratios,), default=(0.0,)
        Elastic-net mixings to try, each in ``[0, 1]``.
    cv : int, cross-validation generator or iterable, default=None
        Folds, as in :func:`~sklearn.model_selection.check_cv`: ``None``
        means 5 and an integer ``k`` means
        :class:`~sklearn.model_selection.StratifiedKFold` with ``k`` folds;
        on dask input, ``k`` consecutive runs of row chunks.
    scoring : str or callable, default=None
        Any scikit-learn scorer; ``None`` means accuracy, as in
        :class:`~sklearn.linear_model.LogisticRegressionCV`.
    refit : bool, default=True
        Refit on all the data with the chosen parameters. If False, the
        coefficients are the means over the folds of those at the chosen
        parameters, class by class: a class's row averages the folds whose
        training part had it.
    n_jobs : int, default=None
        Number of jobs fitting the folds (times the l1_ratios) in parallel,
        with joblib. ``None`` means 1 unless in a joblib context.
    error_score : "raise" or float, default=np.nan
        Score of every C of a (fold, l1_ratio) whose fit or scoring raised,
        with a FitFailedWarning; ``"raise"`` raises the error. As in
        :class:`~sklearn.model_selection.GridSearchCV`, a NaN makes the mean
        score of those parameters NaN (ranked last).
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
        1 prints one line per (l1_ratio, fold, C) with its score and
        iterations, and one for the refit; 2 and more also print the solver's
        iterations (``verbose - 1`` as in :class:`SoftmaxClassifier`), each
        line tagged with its l1_ratio and fold.

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
        Iterations of the refit; with ``refit=False``, the most iterations of
        a fold's fit at the chosen parameters.

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
        "error_score": [StrOptions({"raise"}), Real],
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
        error_score=np.nan,
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
        self.error_score = error_score
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
        X : {array-like, sparse matrix, dask array} of shape (n_samples, n_features)
            Training data.
        y : array-like or dask array of shape (n_samples,)
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
        n_jobs = self.n_jobs
        if is_dask_array(X) or is_dask_frame(X):
            whole, scorer, score_params = self._dask_folds(X, y, sample_weight)
            folds = whole.folds
            # The workers run each fold's evaluations in parallel.
            n_jobs = None
        else:
            whole = self._validate_whole(X, y, sample_weight)
            if _routing_enabled():
                routed = process_routing(
                    self, "fit", sample_weight=sample_weight, **params
                )
            else:
                score = {}
                if whole.score_weight is not None:
                    score = {"sample_weight": whole.score_weight}
                routed = Bunch(splitter=Bunch(split={}), scorer=Bunch(score=score))
            cv = check_cv(self.cv, whole.y, classifier=True)
            folds = list(cv.split(whole.X, whole.y, **routed.splitter.split))
            scorer = _with_labels(self._get_scorer(), whole.classes)
            score_params = routed.scorer.score

        grids = self._grids(whole, l1_ratios)
        paths = [[None] * len(folds) for _ in l1_ratios]
        # Fit each grid; while a grid's best mean score is at its weakest
        # penalty, extend it upwards and continue every fold's path.
        pending = list(enumerate(grids))
        while pending:
            jobs = [
                (r, k, train, test, new)
                for r, new in pending
                for k, (train, test) in enumerate(folds)
            ]
            done = Parallel(n_jobs=n_jobs)(
                delayed(self._fold_path_or_error)(
                    l1_ratios[r],
                    whole,
                    k,
                    train,
                    test,
                    new,
                    None if paths[r][k] is None else paths[r][k].params,
                    scorer,
                    score_params,
                )
                for r, k, train, test, new in jobs
            )
            for (r, k, *_), path in zip(jobs, done, strict=True):
                previous = paths[r][k]
                paths[r][k] = path if previous is None else _joined(previous, path)
            pending = []
            for r, grid in enumerate(grids):
                extension = self._extension(grid, paths[r])
                if extension is not None:
                    grids[r] = np.concatenate([grid, extension])
                    pending.append((r, extension))

        self._set_results(grids, l1_ratios, paths, len(folds))
        self._warn_at_grid_end(grids, l1_ratios)
        if self.refit:
            # Dask chunks persisted for the folds are released before the
            # refit persists its own.
            whole = None
            best = self._base(self.C_, self.l1_ratio_)
            best.set_params(verbose=max(self.verbose - 1, 0))
            best.fit(X, y, sample_weight)
            if self.verbose:
                print(
                    f"[refit] C={self.C_:.4g}, l1_ratio={self.l1_ratio_:g}: "
                    f"{best.n_iter_} iterations",
                    flush=True,
                )
            self.best_estimator_ = best
            self.classes_, self.coef_ = best.classes_, best.coef_
            self.intercept_, self.n_iter_ = best.intercept_, best.n_iter_
        else:
            self._average_folds(whole, grids, paths)
        return self

    def _dask_folds(self, X, y, sample_weight):
        """Folds of whole row chunks, the held-out metric and its weights.

        The built-in scores are computed on the workers; a scorer object
        would need the held-out rows in this process.
        """
        metric = "accuracy" if self.scoring is None else self.scoring
        if metric not in ("accuracy", "neg_log_loss"):
            raise ValueError(
                f"On dask input the held-out scores are computed on the workers, "
                f"for scoring='accuracy' (the default) or 'neg_log_loss'; got "
                f"scoring={self.scoring!r}. Compute X and y into memory for "
                "other scorers."
            )
        if not (self.cv is None or isinstance(self.cv, Integral)):
            raise ValueError(
                "On dask input the folds are consecutive runs of whole row chunks; "
                f"cv must be None or a number of folds, got cv={self.cv!r}."
            )
        if _routing_enabled():
            raise ValueError(
                "Metadata routing is not supported on dask input; the held-out "
                "scores are weighed by sample_weight, as without routing."
            )
        # Imported here: dask is an optional dependency.
        from ._engines._dask import ChunkFolds

        X, y = validate_training_X(self, X, y)
        whole = ChunkFolds(
            X,
            y,
            sample_weight,
            class_weight=self.class_weight,
            fit_intercept=self.fit_intercept,
            n_folds=5 if self.cv is None else self.cv,
        )
        score_params = {}
        if sample_weight is not None and np.ndim(sample_weight) != 0:
            score_params = {"sample_weight": sample_weight}
        return whole, metric, score_params

    def _validate_whole(self, X, y, sample_weight):
        """Labels, weights and class weights of the whole data, checked once."""
        X, y = validate_training_X(self, X, y)
        y = np.asarray(y)
        classes, codes = encode_labels(y)
        weights, _ = effective_weights(sample_weight, codes, classes, self.class_weight)
        # The scores are weighed by sample_weight alone, as in
        # LogisticRegressionCV; a scalar means equal weights.
        score_weight = None
        if sample_weight is not None and not isinstance(sample_weight, Real):
            score_weight = np.asarray(sample_weight, dtype=np.float64)
        return _Whole(X, y, classes, codes, weights, score_weight, self.fit_intercept)

    def _grids(self, whole, l1_ratios):
        """The grid of C for each l1_ratio, checked on the whole data."""
        grids = []
        if isinstance(self.Cs, Integral):
            data = whole.all_data()
            engine = data.engine
            _, grad = engine.loss_gradient(data.null_params())
            grad_W, _ = engine.unpack(grad)
            for l1_ratio in l1_ratios:
                strongest = strongest_C(grad_W, data.weight_sum, l1_ratio)
                grids.append(strongest * np.logspace(0, _GRID_DECADES, self.Cs))
        else:
            grids = [check_Cs(self.Cs) for _ in l1_ratios]
        ElasticNet.from_C(min(grid.min() for grid in grids), 0.0, whole.weight_sum)
        return grids

    def _fold_path_or_error(self, l1_ratio, whole, k, train, test, Cs, start, *score):
        estimator = self._base(1.0, l1_ratio)
        try:
            return _fold_path(estimator, whole, k, train, test, Cs, start, *score)
        except Exception as exc:
            if self.error_score == "raise":
                raise
            path = _failed_path(len(Cs), self.error_score)
            path.message = f"{type(exc).__name__}: {exc}"
            return path

    def _extension(self, grid, fold_paths):
        """More C above an integer grid whose best mean score is at its top."""
        if not isinstance(self.Cs, Integral) or self.Cs < 2:
            return None
        mean = np.mean([path.scores for path in fold_paths], axis=0)
        if np.all(np.isnan(mean)) or np.nanargmax(mean) != len(grid) - 1:
            return None
        step = _GRID_DECADES / (self.Cs - 1)
        decades_so_far = np.log10(grid[-1] / grid[0]) - _GRID_DECADES
        room = int(np.floor((_EXTENSION_DECADES - decades_so_far) / step + 1e-9))
        n_more = min(max(2, self.Cs // 2), room)
        if n_more <= 0:
            return None
        return grid[-1] * 10.0 ** (step * np.arange(1, n_more + 1))

    def _set_results(self, grids, l1_ratios, paths, n_folds):
        for fold_paths in paths:
            for path in fold_paths:
                if path.failed:
                    warnings.warn(
                        f"A fit on a training fold failed and its scores are "
                        f"error_score={self.error_score!r}: {path.message}",
                        FitFailedWarning,
                        stacklevel=4,
                    )
        # scores[k, j]: fold k, j-th (l1_ratio, C) with l1_ratio outermost.
        scores = np.hstack(
            [np.array([path.scores for path in fold_paths]) for fold_paths in paths]
        )
        params_C = np.concatenate(grids)
        params_l1 = np.repeat(l1_ratios, [len(grid) for grid in grids])
        mean = scores.mean(axis=0)
        if np.all(np.isnan(mean)):
            raise ValueError(
                "No (C, l1_ratio) has a finite mean score: a fit or a score "
                "failed on some fold of each (see the FitFailedWarning), and "
                f"error_score={self.error_score!r} made the mean NaN. Pass "
                "error_score='raise' to see the error, or a number to score "
                "such folds with it."
            )
        rank = rankdata(-np.nan_to_num(mean, nan=-np.inf), method="min")
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
            "rank_test_score": rank.astype(np.int32),
        }
        self.best_index_ = int(np.nanargmax(mean))
        self.best_score_ = float(mean[self.best_index_])
        self.C_ = float(params_C[self.best_index_])
        self.l1_ratio_ = float(params_l1[self.best_index_])

    def _warn_at_grid_end(self, grids, l1_ratios):
        grid = grids[int(np.flatnonzero(l1_ratios == self.l1_ratio_)[0])]
        if len(grid) < 2:
            return
        if self.C_ == grid[0]:
            end, advice = "smallest", "smaller values (a stronger penalty)"
        elif self.C_ == grid[-1]:
            end, advice = "largest", "larger values (a weaker penalty)"
        else:
            return
        warnings.warn(
            f"The chosen C_={self.C_:.4g} (l1_ratio={self.l1_ratio_:g}) is the "
            f"{end} C of the grid, so the best C may lie beyond it; pass Cs "
            f"with {advice} than {self.C_:.4g} to check.",
            UserWarning,
            stacklevel=3,
        )

    def _average_folds(self, whole, grids, paths):
        """The fold models at the chosen parameters, averaged class by class."""
        ratio_index, C_index = [
            (i, j) for i, grid in enumerate(grids) for j in range(len(grid))
        ][self.best_index_]
        fold_paths = [path for path in paths[ratio_index] if not path.failed]
        coefs = np.array([path.coefs[C_index] for path in fold_paths])
        intercepts = np.array([path.intercepts[C_index] for path in fold_paths])
        # A class absent from a training fold has no coefficients there (an
        # intercept of -inf); it is averaged over the folds that fitted it.
        fitted = np.isfinite(intercepts)
        counts = np.maximum(fitted.sum(axis=0), 1)
        self.classes_ = whole.classes
        self.coef_ = (coefs * fitted[:, :, None]).sum(axis=0) / counts[:, None]
        self.intercept_ = np.where(fitted, intercepts, 0.0).sum(axis=0) / counts
        self.n_iter_ = int(max(path.n_iter[C_index] for path in fold_paths))

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
