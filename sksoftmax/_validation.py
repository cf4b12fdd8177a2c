"""Checks of labels, sample weights and class weights, in one place.

Every entry point that fits (the estimator, the path, cross-validation, the
Dask engine) turns labels into codes and weights into the effective weights
``s_i = sample_weight_i * class_weight[y_i]`` through these functions, so a
bad input gets the same message wherever it arrives.
"""

import sys
from numbers import Real

import numpy as np
from scipy import sparse
from sklearn.utils import assert_all_finite
from sklearn.utils._array_api import _is_numpy_namespace, get_namespace, move_to
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_feature_names,
    _check_n_features,
    _check_sample_weight,
    validate_data,
)


def is_dask_array(X):
    """Whether X is a dask array, without importing dask (an optional dependency)."""
    array = sys.modules.get("dask.array")
    return array is not None and isinstance(X, array.Array)


def is_dask_frame(X):
    """Whether X is a dask DataFrame or Series (without importing dask)."""
    frame = sys.modules.get("dask.dataframe")
    return frame is not None and isinstance(X, frame.DataFrame | frame.Series)


def check_dask_frame_names(estimator, X, *, reset):
    """Record, or check against the record, the column names of a dask DataFrame.

    scikit-learn's own check reads pandas and dataframe-protocol columns, which
    a dask DataFrame is not; its string column names are recorded as
    ``feature_names_in_`` the same way.
    """
    names = np.asarray(list(X.columns), dtype=object)
    named = names.size > 0 and all(isinstance(name, str) for name in names)
    if reset:
        if named:
            estimator.feature_names_in_ = names
        elif hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
        return
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is not None and not np.array_equal(fitted, names):
        raise ValueError(
            "The feature names should match those that were passed during fit: "
            f"fitted on {fitted.tolist()}, got {names.tolist()}."
        )


def dask_frame_to_array(X):
    """A dask DataFrame or Series as a dask array with known row chunks.

    Categorical columns (labels) become their categories' values. Counting
    the partitions' rows is a pass over them (for Parquet, a read).
    """
    dtype = getattr(X, "dtype", None)
    categories = getattr(dtype, "categories", None)
    if categories is not None:
        X = X.astype(categories.dtype)
    # Optimized first: a column selection of a Parquet frame can otherwise
    # merge partitions after the lengths were counted, and the conversion
    # fails on the mismatch.
    return X.optimize().to_dask_array(lengths=True)


def validate_training_X(estimator, X, y, *, reset=True):
    """Check training data as scikit-learn does, recording its width and names.

    Dask arrays are checked without being computed: two dimensions, known
    row chunks, a float dtype and one chunk across the columns, which each
    chunk's engine needs. With ``reset=False`` (inference on the training
    data of a fitted model) the width and names are checked against the
    record instead.

    Returns
    -------
    X : validated array, sparse CSR/CSC matrix or dask array
    y : array-like
    """
    if is_dask_frame(X):
        # Names from the columns, then the rows stay chunked on the workers.
        check_dask_frame_names(estimator, X, reset=reset)
        X = dask_frame_to_array(X)
        if is_dask_frame(y):
            y = dask_frame_to_array(y)
        return _dask_training_X(estimator, X, y, reset=reset, names_checked=True)
    if not is_dask_array(X):
        check_label_values(y)
        xp, _ = get_namespace(X)
        X, y = validate_data(
            estimator,
            X,
            y,
            accept_sparse=["csr", "csc"],
            dtype=[xp.float64, xp.float32],
            order="C",
            reset=reset,
        )
        return canonical_sparse(X), y
    return _dask_training_X(estimator, X, y, reset=reset)


def _dask_training_X(estimator, X, y, *, reset, names_checked=False):
    """Checks of a dask array X that need no computation of its values."""
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-dimensional dask array for X, got {X.ndim} dimension(s)."
        )
    if any(np.isnan(size) for size in X.chunks[0]):
        raise ValueError(
            "X has unknown chunk sizes along its rows (e.g. after boolean "
            "indexing); call X.compute_chunk_sizes() first."
        )
    # The messages of scikit-learn's check_array, which the in-memory path runs;
    # strings are converted as there, chunk by chunk.
    if X.dtype.kind == "c":
        raise ValueError(f"Complex data not supported\n{X}\n")
    for count, what in [(X.shape[0], "sample"), (X.shape[1], "feature")]:
        if count == 0:
            raise ValueError(
                f"Found array with 0 {what}(s) (shape={X.shape}) while a "
                "minimum of 1 is required."
            )
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    if X.numblocks[1] > 1:
        X = X.rechunk({1: -1})
    _check_n_features(estimator, X, reset=reset)
    if not names_checked:
        _check_feature_names(estimator, X, reset=reset)
    return X, y


def canonical_sparse(X):
    """``X``, or a canonical copy of a sparse ``X`` with duplicate or unsorted entries.

    The engines read a CSR matrix's arrays in row blocks that are views; a
    matrix that scipy canonicalizes in place later (summing duplicates,
    sorting indices) would change under them, and the caller's matrix with
    it. A canonical matrix never is.
    """
    if sparse.issparse(X) and not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    return X


def check_label_values(y):
    """Refuse missing labels and labels of mixed types, saying where they are.

    scikit-learn's own checks stumble on ``pd.NA`` or mixed types before
    saying so. Labels of one plain type pass after a single C-level pass.
    """
    library = type(y).__module__.split(".")[0]
    if isinstance(y, list | tuple) or library in ("pandas", "polars"):
        y = np.asarray(y)
    if not isinstance(y, np.ndarray):
        return
    if y.dtype.kind == "f":
        missing = np.flatnonzero(np.isnan(y))
    elif y.dtype.kind == "O":
        types = set(map(type, y.ravel()))
        if len(types) == 1 and not issubclass(types.pop(), float):
            return
        missing = [
            i
            for i, label in enumerate(y)
            if label is None
            or type(label).__name__ in ("NAType", "NaTType")
            or (isinstance(label, float) and np.isnan(label))
        ]
    else:
        return
    if len(missing):
        raise ValueError(
            f"y has {len(missing)} missing label(s) (None, NaN or pd.NA), the "
            f"first at index {missing[0]}; drop those samples or give them a label."
        )
    if y.dtype.kind == "f":
        return
    first_of_kind = {}
    for i, label in enumerate(y):
        kind = "string" if isinstance(label, str | bytes) else "number"
        first_of_kind.setdefault(kind, i)
    if len(first_of_kind) > 1:
        i, j = first_of_kind["string"], first_of_kind["number"]
        raise ValueError(
            f"y mixes string and numeric labels, e.g. {y[i]!r} at index {i} and "
            f"{y[j]!r} at index {j}; labels must be all strings or all numbers."
        )


def encode_labels(y):
    """The sorted distinct labels of ``y`` and the code of each sample.

    Labels of an Array API library (on a GPU, say) are encoded where they
    are, which is fast there; only the classes and the codes come back.

    Parameters
    ----------
    y : array of shape (n_samples,)
        Class labels of any type.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
    codes : ndarray of shape (n_samples,), int
        Index of each sample's label in ``classes``, on the host.
    """
    check_label_values(y)
    check_classification_targets(y)
    xp, is_array_api = get_namespace(y)
    if is_array_api and not _is_numpy_namespace(xp):
        classes, codes = move_to(*xp.unique_inverse(y), xp=np, device="cpu")
    else:
        # Two steps rather than return_inverse, which holds several n-sized
        # temporaries at once: the peak memory of a float32 fit.
        classes = np.unique(y)
        codes = np.searchsorted(classes, y)
    check_two_classes(classes)
    # The codes live through the fit, so in the smallest signed integer type:
    # as intp they would cost a float32 fit with 10 classes a fifth of its
    # n x K budget, as int8 a fortieth.
    return classes, codes.astype(np.min_scalar_type(-classes.shape[0]))


def check_two_classes(classes):
    """Refuse data with fewer than two classes."""
    if classes.shape[0] < 2:
        raise ValueError(
            "SoftmaxClassifier needs samples of at least 2 classes in the data, "
            f"but the data contains only one class: {classes[0]!r}."
        )


def sample_weights(sample_weight, n_samples):
    """``sample_weight`` as a finite, non-negative float64 array of ``n_samples``."""
    sample_weight = _check_sample_weight(
        sample_weight, np.empty(n_samples), dtype=np.float64, ensure_non_negative=True
    )
    # A scalar sample_weight bypasses the array checks.
    assert_all_finite(sample_weight, input_name="sample_weight")
    return sample_weight


def class_weight_factors(class_weight, classes, class_totals):
    """The factor ``class_weight[k]`` of each class.

    Class weights depend on the data only through the summed sample weight of
    each class, ``class_totals``, so data collapsed to one row per class
    (what the Dask engine computes) give the same factors as the full data.

    Parameters
    ----------
    class_weight : dict, "balanced" or None
    classes : ndarray of shape (n_classes,)
    class_totals : ndarray of shape (n_classes,)
        Positive summed sample weight of each class.

    Returns
    -------
    factors : ndarray of shape (n_classes,), float64
    """
    if class_weight is None:
        return np.ones(classes.shape[0])
    if isinstance(class_weight, dict):
        _check_class_weight_dict(class_weight, classes)
    return compute_class_weight(
        class_weight, classes=classes, y=classes, sample_weight=class_totals
    )


def check_class_totals(class_totals, classes, source):
    """Refuse classes whose samples have zero total weight.

    Nothing else in the data bounds such a class's unpenalized intercept,
    which would diverge to -inf.
    """
    empty = classes[class_totals == 0].tolist()
    if empty:
        which = f"class {empty[0]!r}" if len(empty) == 1 else f"classes {empty}"
        raise ValueError(
            f"The samples of {which} have zero total weight ({source}): nothing "
            "in the data determines that class's probability. Drop those samples "
            "or give them a positive weight."
        )


def check_weight_sum(weight_sum):
    """Refuse effective weights whose sum is zero or overflows."""
    if not weight_sum > 0:
        raise ValueError(
            "The effective sample weights (sample_weight times class_weight) "
            "sum to zero; at least one sample needs a positive weight."
        )
    if not np.isfinite(weight_sum):
        raise ValueError(
            "The effective sample weights sum to infinity; divide them by a "
            "common factor (and C by the same factor to keep the fit)."
        )


def check_groups_given(groups, cov_type):
    """Refuse cluster labels without ``cov_type="cluster"``, and the reverse."""
    if (cov_type == "cluster") != (groups is not None):
        raise ValueError(
            'groups must be given with cov_type="cluster", and only with it; '
            f"got cov_type={cov_type!r} and groups "
            f"{'None' if groups is None else 'given'}."
        )


def cluster_codes(groups, cov_type, n_samples):
    """Cluster labels as codes of shape ``(n_samples, n_ways)``, or None.

    Parameters
    ----------
    groups : array-like of shape (n_samples,) or (n_samples, 2), or None
    cov_type : str
        Groups are required by ``"cluster"`` and refused otherwise.
    n_samples : int

    Returns
    -------
    ndarray of shape (n_samples, n_ways) or None
    """
    check_groups_given(groups, cov_type)
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.ndim == 1:
        groups = groups[:, None]
    if groups.ndim != 2 or groups.shape[1] not in (1, 2):
        raise ValueError(
            "groups must have shape (n_samples,) or (n_samples, 2), got "
            f"{groups.shape}."
        )
    if groups.shape[0] != n_samples:
        raise ValueError(
            f"groups has {groups.shape[0]} rows, but X has {n_samples} samples."
        )
    codes = np.column_stack(
        [np.unique(column, return_inverse=True)[1] for column in groups.T]
    )
    if np.any(codes.max(axis=0) < 1):
        raise ValueError("Cluster-robust covariance needs at least two clusters.")
    return codes


def cluster_ways(codes):
    """The ways of clustering of :func:`softmax_inference` from cluster codes.

    Parameters
    ----------
    codes : ndarray of shape (n_samples, n_ways)
        One or two columns of cluster codes numbered from 0.

    Returns
    -------
    list of (float, int, ndarray)
    """
    ways = [(1.0, int(column.max()) + 1, column) for column in codes.T]
    if codes.shape[1] == 2:
        _, both = np.unique(codes, axis=0, return_inverse=True)
        ways.append((-1.0, int(both.max()) + 1, both.ravel()))
    return ways


def check_inference_labels(found, classes):
    """Refuse labels for inference other than exactly the fitted classes.

    Parameters
    ----------
    found : ndarray
        The distinct labels of ``y``.
    classes : ndarray
        The fitted ``classes_``.
    """
    unknown = np.setdiff1d(found, classes)
    if unknown.size:
        raise ValueError(
            f"y has labels {unknown.tolist()} that the model was not fitted "
            f"on; its classes are {classes.tolist()}."
        )
    absent = np.setdiff1d(classes, found)
    if absent.size:
        raise ValueError(
            f"y has no samples of the class(es) {absent.tolist()}, which the "
            "model was fitted on; inference needs the training data, in "
            "which every class occurs."
        )


def effective_weights(sample_weight, codes, classes, class_weight):
    """Sample weight times class weight, validated.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,), scalar or None
    codes : ndarray of shape (n_samples,)
        Class codes from :func:`encode_labels`.
    classes : ndarray of shape (n_classes,)
    class_weight : dict, "balanced" or None

    Returns
    -------
    weights : ndarray of shape (n_samples,), float64
    class_totals : ndarray of shape (n_classes,), float64
        Summed effective weight of each class.
    """
    sample_weight = sample_weights(sample_weight, codes.shape[0])
    n_classes = classes.shape[0]
    totals = np.bincount(codes, weights=sample_weight, minlength=n_classes)
    check_class_totals(totals, classes, "sample_weight")
    factors = class_weight_factors(class_weight, classes, totals)
    weights = (
        sample_weight * factors[codes] if class_weight is not None else sample_weight
    )
    # Overflow is reported by check_weight_sum, not warned about.
    with np.errstate(over="ignore"):
        class_totals = np.bincount(codes, weights=weights, minlength=n_classes)
        weight_sum = np.sum(class_totals)
    check_weight_sum(weight_sum)
    check_class_totals(class_totals, classes, "sample_weight times class_weight")
    return weights, class_totals


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
