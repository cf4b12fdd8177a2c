"""Perfect separation: when the unpenalized fit has no minimizer."""

import numpy as np


class PerfectSeparationWarning(UserWarning):
    """The classes are linearly separable, so the unpenalized MLE does not exist.

    Issued by :meth:`SoftmaxClassifier.fit <sksoftmax.SoftmaxClassifier.fit>`
    with ``C=np.inf`` when the fitted coefficients classify every training
    sample of positive weight correctly. Stretching such coefficients lowers
    the cross-entropy of every sample, so the objective has no minimum: the
    coefficients returned are finite only because the solver stopped at
    ``tol``, and their size (and any standard error derived from them) is
    arbitrary. Predictions are still right; a finite ``C`` makes the
    coefficients well defined.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from sksoftmax import PerfectSeparationWarning, SoftmaxClassifier
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> y = np.array([0, 0, 1, 1])
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     clf = SoftmaxClassifier(C=np.inf).fit(X, y)
    >>> [w.category.__name__ for w in caught]
    ['PerfectSeparationWarning']
    >>> clf.predict(X)
    array([0, 0, 1, 1])
    """


def separates(logits, y_codes, sample_weight):
    """Whether ``logits`` rank each positively weighted sample's class first.

    This is an exact certificate of complete separation, not a heuristic: if
    coefficients ``theta`` give every sample its own class a strictly larger
    logit than any other, then along ``t * theta`` every margin grows with
    ``t`` and every sample's cross-entropy falls towards zero, so the
    unpenalized objective has no minimizer. It never fires on data that
    overlap, and costs one pass over the logits.

    Conversely, on separable data the fit ends with every sample on the right
    side unless the margin is extremely thin: for a separating direction
    ``u`` of unit norm and margin ``gamma``, the objective's slope along
    ``u`` is at least ``gamma * s_i / (2 S)`` while sample ``i`` is
    misclassified, so the solver's stopping rule (gradient at most ``tol``)
    cannot hold before it is fixed unless ``gamma * s_i / S`` is of the
    order of ``tol``.

    Quasi-complete separation (a subset of samples separated while the rest
    overlap on the boundary) also leaves the MLE undefined but is not
    detected: its certificate is a solution of a linear program over all
    samples, far more expensive than the fit itself.

    Parameters
    ----------
    logits : ndarray of shape (n_samples, n_classes)
        Logits of the fitted model on the training samples.
    y_codes : ndarray of shape (n_samples,)
        Class codes in ``[0, n_classes)``.
    sample_weight : ndarray of shape (n_samples,)
        Effective weights; samples of weight zero do not enter the objective
        and are ignored.

    Returns
    -------
    bool
    """
    weighted = sample_weight > 0
    logits = logits[weighted]
    y_codes = y_codes[weighted]
    rows = np.arange(y_codes.shape[0])
    own = logits[rows, y_codes].copy()
    logits[rows, y_codes] = -np.inf
    return bool(np.all(own > logits.max(axis=1)))
