"""Perfect separation: when the unpenalized fit has no minimizer."""

import numpy as np
from scipy import sparse
from scipy.optimize import linprog
from scipy.special import softmax

from ._symmetric import add_gram, cholesky, empty_square, mirror_upper, solve_factored

# Required of the overlap certificate's factor, as of the inference Hessian's.
_CERTIFICATE_RCOND = 1e-9


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
    if not np.all(weighted):
        logits, y_codes = logits[weighted], y_codes[weighted]
    own = np.take_along_axis(logits, y_codes[:, None], axis=1)
    # Every other logit of every row strictly below the row's own: a tie or
    # a NaN anywhere in a row fails it. Counted in one pass, without copying
    # the logits (masking them and taking a maximum took 2 to 3 times as long
    # as an evaluation of the objective, once per iteration in a fit held to
    # its gap rule at C=inf).
    below = np.count_nonzero(logits < own)
    return bool(below == y_codes.shape[0] * (logits.shape[1] - 1))


def separating_shift(X, codes, others, column_scale, fit_intercept):
    """A shift of the contrasts to the limit of a separation, or None.

    With margins ``m_ik = a_{i, y_i} - a_{i, k}`` (k != y_i) of the contrast
    logits (zero for the reference class), solves the linear program:
    maximize ``sum t_ik`` subject to ``0 <= t_ik <= 1``, ``t_ik <= m_ik`` and
    ``m_ik >= 0``. Its optimum is 0 when the classes overlap. Otherwise they
    are (quasi-)completely separated: along the optimal direction no
    likelihood term falls and some rise without bound, so the maximum
    likelihood estimate does not exist. Any pair that some direction
    separates is separated by the optimal one (adding a little of that
    direction would raise the sum), and scaling makes every such margin at
    least 1. The returned shift goes far enough along it that the separated
    terms are 1 to machine precision.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (n_samples, n_features)
        The samples of positive weight.
    codes : ndarray of shape (n_samples,)
        Their class codes.
    others : ndarray of shape (n_classes - 1,)
        Codes of the non-reference classes, one per row of the contrasts.
    column_scale : ndarray of shape (q,)
        Scale of each design column (``[1, X]`` with an intercept).
    fit_intercept : bool

    Returns
    -------
    shift : ndarray of shape (n_classes - 1, q) or None
        In the contrasts' layout, each row ``[c_k, beta_k]``.
    """
    design = sparse.csr_matrix(X)
    if fit_intercept:
        design = sparse.hstack([np.ones((X.shape[0], 1)), design], format="csr")
    design = design @ sparse.diags(1.0 / column_scale)
    blocks = []
    for k in range(len(others) + 1):
        rows = codes != k
        Xr, yr = design[rows], codes[rows]
        blocks.append(
            sparse.hstack(
                [
                    sparse.diags((yr == c).astype(float)) @ Xr - float(c == k) * Xr
                    for c in others
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
    return length * direction.reshape(-1, design.shape[1]) / column_scale


def _design(X, columns, fit_intercept, scale=None):
    """``[1, X]`` (``X`` without an intercept), its ``columns`` divided by ``scale``."""
    design = sparse.csr_matrix(X) if sparse.issparse(X) else X
    if fit_intercept:
        ones = np.ones((X.shape[0], 1))
        if sparse.issparse(X):
            design = sparse.hstack([ones, design], format="csr")
        else:
            design = np.hstack([ones, design])
    design = design[:, columns]
    if scale is None:
        return design
    if sparse.issparse(design):
        return design @ sparse.diags(1.0 / scale)
    return design / scale


def overlaps(engine, theta, others, columns, column_scale):
    """Whether a fit near the maximum likelihood proves that the classes overlap.

    With the margins ``m_ik`` of :func:`separating_shift`, Stiemke's lemma
    says that exactly one of two things holds: some direction makes every
    margin non-negative and one positive (a separation), or there are
    weights ``u_ik > 0`` with ``sum_ik u_ik grad m_ik = 0`` (the classes
    overlap). At the unpenalized maximum the fitted probabilities of the
    other classes, ``u_ik = s_i p_ik``, are such weights: the sum is the
    score. Near it, ``u_ik = s_i p_ik (1 + m_ik(w))`` makes the sum zero when
    ``N w = -score``, with ``N = sum_ik s_i p_ik grad m_ik grad m_ik^T``;
    if every ``1 + m_ik(w)`` stays above 1/2 the classes overlap and the
    linear program is not needed. ``N`` has the class-pair structure of a
    Hessian: its block ``(k, l)`` weights the rows by
    ``p_k + [y=k](1 - 2 p_k)`` on the diagonal and by
    ``-([y=k] p_l + [y=l] p_k)`` off it.

    Both passes over the data (the score with ``N``, then the margins) are
    sums over rows, so they run where the engine's data are, chunk by chunk
    on Dask; only ``N`` and ``w`` travel.

    Parameters
    ----------
    engine : LossEngine
        The engine of the training data; samples of weight zero are ignored.
    theta : ndarray of shape (n_classes - 1, q)
        Unpenalized contrasts near the maximum likelihood, each row
        ``[c_k, beta_k]`` (``beta_k`` alone without an intercept).
    others : ndarray of shape (n_classes - 1,)
        Codes of the non-reference classes, one per row of ``theta``.
    columns : ndarray
        Linearly independent columns of the design ``[1, X]`` (``X``
        without an intercept) that span it.
    column_scale : ndarray of shape (len(columns),)
        Their scales: the certificate does not depend on them, but the
        condition of ``N`` is judged in standardized columns, as the
        Hessian's is.

    Returns
    -------
    bool
        True when overlap is proven; False means only that it is not.
    """
    fit_intercept = engine.fit_intercept
    n_zero, score, N = engine.row_sums(
        _certificate_sums, theta, others, columns, column_scale, fit_intercept
    )
    if n_zero > 0:
        return False
    factor = cholesky(N, _CERTIFICATE_RCOND)
    if factor is None:
        return False
    w = solve_factored(factor, -score.ravel()).reshape(len(others), len(columns))
    (n_violated,) = engine.row_sums(
        _violated_margins, w, others, columns, column_scale, fit_intercept
    )
    return n_violated == 0


def _weighted_rows(X, codes, weights):
    """The rows of positive weight."""
    positive = weights > 0
    if np.all(positive):
        return X, codes, weights
    return X[positive], codes[positive], weights[positive]


def _certificate_sums(
    X, codes, weights, theta, others, columns, column_scale, fit_intercept
):
    """A block's count of rows with a zero probability, its score and its ``N``."""
    X, codes, weights = _weighted_rows(X, codes, weights)
    n_classes = len(others) + 1
    full = _design(X, slice(None), fit_intercept)
    logits = np.zeros((X.shape[0], n_classes))
    logits[:, others] = np.asarray(full @ theta.T)
    proba = softmax(logits, axis=1)
    n_zero = np.count_nonzero(~np.all(proba > 0.0, axis=1))
    design = _design(X, columns, fit_intercept, column_scale)
    y = np.eye(n_classes)[codes]
    score = np.asarray(design.T @ ((y - proba)[:, others] * weights[:, None])).T
    n_other, q = len(others), len(columns)
    N = np.empty((n_other, q, n_other, q))
    for m, k in enumerate(others):
        for n, j in enumerate(others[: m + 1]):
            if k == j:
                pair, sign = proba[:, k] + y[:, k] * (1.0 - 2.0 * proba[:, k]), 1.0
            else:
                pair, sign = y[:, k] * proba[:, j] + y[:, j] * proba[:, k], -1.0
            block = empty_square(q)
            add_gram(block, design, weights * pair, sign)
            N[m, :, n, :] = N[n, :, m, :] = mirror_upper(block)
    return n_zero, score, N.reshape(n_other * q, n_other * q)


def _violated_margins(
    X, codes, weights, w, others, columns, column_scale, fit_intercept
):
    """A block's count of rows with a margin ``m_ik(w)`` at most -1/2."""
    X, codes, _ = _weighted_rows(X, codes, weights)
    n_classes = len(others) + 1
    design = _design(X, columns, fit_intercept, column_scale)
    shifts = np.zeros((X.shape[0], n_classes))
    shifts[:, others] = np.asarray(design @ w.T)
    rows = np.arange(X.shape[0])
    margins = shifts[rows, codes][:, None] - shifts
    margins[rows, codes] = 0.0
    return (np.count_nonzero(np.min(margins, axis=1, initial=0.0) <= -0.5),)
