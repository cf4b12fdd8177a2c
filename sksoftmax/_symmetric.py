"""Dense symmetric matrices built and inverted in place.

Inference needs squares over all parameters, tens of thousands wide at the
sizes it supports: each copy of one is gigabytes. These helpers let BLAS and
LAPACK work on one triangle of a single Fortran-ordered buffer, with no
temporary of the full size.
"""

import numpy as np
from scipy import sparse
from scipy.linalg import blas, lapack

# Rows mirrored at a time: the strided copy needs a temporary of this many rows.
_MIRROR_ROWS = 512


def empty_square(n):
    """A zero ``(n, n)`` float64 matrix in Fortran order, as BLAS updates it."""
    return np.zeros((n, n), order="F")


def add_gram(square, rows, weights, sign=1.0):
    """``square += sign * rows^T diag(weights) rows``, in place.

    ``weights`` must be non-negative. A dense ``rows`` goes to a rank-k update
    (``syrk``) of the upper triangle of ``square``, a Fortran-ordered buffer
    from :func:`empty_square`: half the work of a general product and no
    temporary square. Sparse ``rows`` update the whole square. Call
    :func:`mirror_upper` once all updates are in.
    """
    if sparse.issparse(rows):
        product = rows.T @ (sparse.diags(weights) @ rows)
        dense = product.toarray() if sparse.issparse(product) else np.asarray(product)
        if sign < 0:
            np.negative(dense, out=dense)
        square += dense
        return
    if not (square.flags.f_contiguous and square.dtype == np.float64):
        raise TypeError("add_gram updates a float64 square in Fortran order.")
    scaled = rows * np.sqrt(weights)[:, None]
    blas.dsyrk(sign, scaled.T, beta=1.0, c=square, overwrite_c=True)


def mirror_upper(square):
    """Copy the upper triangle of ``square`` onto its lower one, in place."""
    n = square.shape[0]
    for start in range(0, n, _MIRROR_ROWS):
        stop = min(start + _MIRROR_ROWS, n)
        square[start:stop, :start] = square[:start, start:stop].T
        block = square[start:stop, start:stop]
        block[...] = np.triu(block) + np.triu(block, 1).T
    return square


def cholesky(square, rcond):
    """Factor a symmetric positive definite matrix in place, or return None.

    ``square`` is overwritten. Returns the upper Cholesky factor (sharing
    its memory, in Fortran order) when the factorization succeeds and the
    smallest eigenvalue, as the 1-norm condition estimate bounds it, is at
    least ``rcond`` times the matrix's 1-norm or times 1, whichever is
    larger: a matrix that is small everywhere is as singular as one that is
    ill-conditioned. Otherwise None, with ``square`` no longer usable.
    """
    if square.shape[0] == 0:
        return None
    # A C-ordered symmetric matrix is its own Fortran-ordered transpose.
    matrix = square if square.flags.f_contiguous else square.T
    norm = lapack.dlange("1", matrix)
    factor, info = lapack.dpotrf(matrix, clean=False, overwrite_a=True)
    if info != 0:
        return None
    estimate, info = lapack.dpocon(factor, norm)
    if info != 0 or estimate * norm < rcond * max(norm, 1.0):
        return None
    return factor


def solve_factored(factor, rhs):
    """``A^-1 rhs`` from the upper Cholesky factor of ``A``."""
    solution, info = lapack.dpotrs(factor, rhs)
    if info != 0:
        raise np.linalg.LinAlgError(f"dpotrs failed with info={info}.")
    return solution


def invert_factored(factor):
    """``A^-1`` from the upper Cholesky factor of ``A``, overwriting the factor."""
    inverse, info = lapack.dpotri(factor, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"dpotri failed with info={info}.")
    return mirror_upper(inverse)
