"""Loss engines: one contract, chosen in one place.

:class:`~sksoftmax._engines._base.LossEngine` is the contract;
:func:`make_engine` picks the engine from the type of ``X`` and
:func:`training_data` turns labels and weights into what a fit needs.
"""

from numbers import Number

import numpy as np
from scipy import sparse
from sklearn.utils import _safe_indexing
from sklearn.utils._array_api import move_to

from .._validation import effective_weights, encode_labels, is_dask_array
from ._base import LossEngine, ParameterLayout, TrainingData, dtype_name, epsilon
from ._numpy import NumPyEngine

__all__ = [
    "LossEngine",
    "ParameterLayout",
    "TrainingData",
    "dtype_name",
    "epsilon",
    "make_engine",
    "training_data",
]


def make_engine(X, y_codes, n_classes, sample_weight, fit_intercept) -> LossEngine:
    """The engine for ``X``: by its type, NumPy's, Dask's or the Array API's.

    Parameters
    ----------
    X : ndarray, sparse matrix, dask array or Array API array
        Validated training data of shape (n_samples, n_features).
    y_codes : ndarray or dask array of shape (n_samples,)
        Class codes in ``[0, n_classes)``.
    n_classes : int
    sample_weight : ndarray or dask array of shape (n_samples,)
        Effective weights with a positive sum.
    fit_intercept : bool

    Returns
    -------
    LossEngine
    """
    if isinstance(X, np.ndarray) or sparse.issparse(X):
        engine = NumPyEngine
    elif is_dask_array(X):
        # Imported here: dask is an optional dependency.
        from ._dask import DaskEngine as engine
    else:
        from ._array_api import ArrayAPIEngine as engine
    return engine(X, y_codes, n_classes, sample_weight, fit_intercept)


def training_data(X, y, sample_weight, *, class_weight, fit_intercept) -> TrainingData:
    """Encode the labels, weigh the samples and build the engine.

    Labels and weights are bookkept on the host (for Dask, as small
    summaries computed on the workers); ``X`` stays where it is and its
    engine runs there.

    Parameters
    ----------
    X : ndarray, sparse matrix, dask array or Array API array
        Validated training data.
    y : array-like of shape (n_samples,)
        Class labels.
    sample_weight : array-like of shape (n_samples,), scalar or None
    class_weight : dict, "balanced" or None
    fit_intercept : bool

    Returns
    -------
    TrainingData
    """
    if is_dask_array(X):
        from ._dask import training_data as dask_training_data

        return dask_training_data(
            X, y, sample_weight, class_weight=class_weight, fit_intercept=fit_intercept
        )
    if sample_weight is not None and not isinstance(sample_weight, Number):
        # A scalar weight (equal weights) stays a scalar.
        sample_weight = move_to(sample_weight, xp=np, device="cpu")
    classes, codes = encode_labels(y)
    weights, class_totals = effective_weights(
        sample_weight, codes, classes, class_weight
    )
    engine = make_engine(X, codes, classes.shape[0], weights, fit_intercept)
    return TrainingData(engine, classes, class_totals)


def subset_data(X, codes, weights, classes, rows, *, fit_intercept):
    """Training data of some rows of data validated as a whole.

    Labels and weights were checked and class weights computed on the whole
    data; the rows inherit them. A class with no positive weight among the
    rows is absent from the subset, and its zero-weight rows are dropped.

    Parameters
    ----------
    X : validated ndarray or sparse matrix of shape (n_samples, n_features)
    codes : ndarray of shape (n_samples,)
        Class codes of the whole data.
    weights : ndarray of shape (n_samples,)
        Effective weights of the whole data.
    classes : ndarray of shape (n_classes,)
    rows : ndarray of int
        The rows of the subset.
    fit_intercept : bool

    Returns
    -------
    data : TrainingData or None
        ``None`` when fewer than two classes are present.
    present : ndarray of shape (n_classes,), bool
        Which classes of the whole data the subset has.
    """
    codes, weights = codes[rows], weights[rows]
    totals = np.bincount(codes, weights=weights, minlength=classes.shape[0])
    present = totals > 0
    if np.count_nonzero(present) < 2:
        return None, present
    keep = present[codes]
    subset_codes = (np.cumsum(present) - 1).astype(codes.dtype)[codes[keep]]
    engine = make_engine(
        _safe_indexing(X, rows[keep]),
        subset_codes,
        int(np.count_nonzero(present)),
        weights[keep],
        fit_intercept,
    )
    return TrainingData(engine, classes[present], totals[present]), present
