"""GPU arrays for the tests that run where a CUDA device is present."""

import pytest


def gpu_arrays(library):
    """A function moving NumPy arrays to the GPU with ``library``; skips without one.

    These tests run only where a CUDA device is present; elsewhere the
    Array API path is covered by array-api-strict and torch on the CPU.
    """
    if library == "torch":
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("no CUDA device for torch")
        return lambda array: torch.asarray(array, device="cuda")
    cupy = pytest.importorskip(library)
    try:
        cupy.cuda.runtime.getDeviceCount()
    except cupy.cuda.runtime.CUDARuntimeError:
        pytest.skip("no CUDA device for CuPy")
    return cupy.asarray
