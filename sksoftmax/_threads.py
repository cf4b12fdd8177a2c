"""How fits share the cores: BLAS thread limits, threads over row blocks, kernels.

Two kinds of threads do a fit's work. The BLAS's own pool runs the matrix
products; numpy's element-wise passes (the exp of every logit, the scalings)
run on one core. With many classes the exps cost more than the products, so
a large evaluation runs its row blocks in threads of its own, each block's
products single-threaded (:meth:`BlasThreads.block_workers`). Everything
that changes the process-wide BLAS limits goes through the one
:data:`blas_threads` object, so that fits, threads over blocks and the
limits they set cannot undo each other. Knowing which BLAS library is
numpy's, the same object also says which kernels it runs
(:attr:`BlasThreads.avx512_kernels`), which the engine's choice between
forms of a product depends on.
"""

import collections
import contextvars
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import scipy
from threadpoolctl import OpenBLASController, ThreadpoolController

# As OpenBLAS names them, lower-cased: builds for every processor say
# "SkylakeX", builds for one "SKYLAKEX".
_AVX512_KERNELS = {"skylakex", "cooperlake", "sapphirerapids"}


class BlasThreads:
    """The process's BLAS thread limits while fits run, and threads over blocks.

    L-BFGS-B's updates are BLAS-1/2 calls on vectors of n_params entries, too
    small to gain from threads. When numpy and scipy each ship an OpenBLAS,
    the two pools' spinning workers fight for the cores between the loss
    evaluation (numpy) and the L-BFGS-B step (scipy): on 2 cores that made a
    digits fit 10x slower, in scikit-learn's LogisticRegression too. So while
    any fit runs, scipy's pool is single-threaded; numpy's BLAS, which does
    the heavy X @ W, keeps its threads. Where both share one library nothing
    is selected.

    Fits running concurrently in threads (a thread pool, joblib's threading
    backend) each ask numpy's BLAS for every core, and the spinning workers
    then made each fit about 20x slower than alone on 2 cores. While more
    than one fit runs, every BLAS pool is single-threaded: the fits
    themselves are the parallelism. So it is from the first pass over the
    data (its column moments) of a fit that runs its blocks in threads of
    its own to the end of that fit.
    Other threads of the process that call a BLAS meanwhile get one thread
    too.

    Thread limits are global to the process: each fit's start and end, and
    the first call of :meth:`block_workers` in a fit, set the limits that the
    fits then running call for, under one lock, restoring what was there
    before once nothing calls for a limit. threadpoolctl (from 3.8) lets
    only the thread that first limited OpenBLAS change it again, so each
    change first releases that claim.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._fits = collections.Counter()
        # Per fit's thread: the threads its evaluations may use over blocks.
        self._block_threads = {}
        self._scipy_limiter = None
        self._all_limiter = None
        self._executor = None

    @functools.cached_property
    def _controller(self):
        return ThreadpoolController()

    @functools.cached_property
    def _scipy_pools(self):
        scipy_libs = os.path.dirname(scipy.__file__) + ".libs"
        own = [
            lib.filepath
            for lib in self._controller.lib_controllers
            if lib.user_api == "blas" and lib.filepath.startswith(scipy_libs)
        ]
        return self._controller.select(filepath=own)

    @functools.cached_property
    def _numpy_blas(self):
        scipy_own = {lib.filepath for lib in self._scipy_pools.lib_controllers}
        return [
            lib
            for lib in self._controller.lib_controllers
            if lib.user_api == "blas" and lib.filepath not in scipy_own
        ]

    @functools.cached_property
    def _threads_over_blocks(self):
        """numpy's BLAS libraries, or None where threads over blocks can't share them.

        Only OpenBLAS's own (pthreads) pool has one process-wide limit; an
        OpenMP BLAS limits each thread apart, so threads over blocks would
        each start a full pool of their own: with those (and MKL, Accelerate)
        an evaluation keeps to one thread and the BLAS keeps its threads.
        """
        if not self._numpy_blas or any(
            lib.internal_api != "openblas" or lib.threading_layer != "pthreads"
            for lib in self._numpy_blas
        ):
            return None
        return self._numpy_blas

    @functools.cached_property
    def avx512_kernels(self):
        """Whether numpy's BLAS is OpenBLAS running its AVX-512 kernels.

        Which form of a matrix product is faster changes with them (see the
        NumPy loss engine). OpenBLAS picks its kernels once, when loaded,
        from the processor or ``OPENBLAS_CORETYPE``; Cooper Lake's and
        Sapphire Rapids' share Skylake-X's for float32 and float64.
        """
        return bool(self._numpy_blas) and all(
            lib.internal_api == "openblas"
            and str(getattr(lib, "architecture", "")).lower() in _AVX512_KERNELS
            for lib in self._numpy_blas
        )

    def _set_limits(self):
        """The limits the counts call for; with the lock held."""
        _release_openblas_control()
        n_fits = sum(self._fits.values())
        limit_all = n_fits > 1 or bool(self._block_threads)
        # Restored in the reverse order of setting: the limit on all pools
        # recorded scipy's pool as already limited.
        if self._all_limiter is not None and not limit_all:
            self._all_limiter.restore_original_limits()
            self._all_limiter = None
        if self._scipy_limiter is None and n_fits:
            self._scipy_limiter = self._scipy_pools.limit(limits=1)
        elif self._scipy_limiter is not None and not n_fits:
            self._scipy_limiter.restore_original_limits()
            self._scipy_limiter = None
        if self._all_limiter is None and limit_all:
            self._all_limiter = self._controller.limit(limits=1, user_api="blas")

    def __enter__(self):
        with self._lock:
            self._fits[threading.get_ident()] += 1
            self._set_limits()

    def __exit__(self, *exc_info):
        with self._lock:
            me = threading.get_ident()
            self._fits[me] -= 1
            if not self._fits[me]:
                del self._fits[me]
                self._block_threads.pop(me, None)
            self._set_limits()

    def block_workers(self, most):
        """How many threads (at most ``most``) an evaluation over row blocks may use.

        More than one only inside the one fit that is running, in its own
        thread: as many as numpy's BLAS had threads. From the first call in
        a fit to its end every BLAS is single-threaded, and the engine makes
        that call at the fit's first pass over the data (its column moments),
        before anything else of the fit calls a BLAS: the BLAS's idle
        threads spin for a while after each threaded call, taking a core
        from the threads over blocks. A dot product of 10000 entries between
        evaluations left them spinning through the next one (at 300 classes,
        94 ms an evaluation instead of 57 ms), and a curvature sample's
        products through newton-cg's first four (100000 x 100, 10 classes:
        20 ms each instead of 11). Elsewhere (concurrent fits, a Dask
        worker's tasks, calls outside a fit) an evaluation keeps to its
        thread and the BLAS keeps its threads.
        """
        me = threading.get_ident()
        with self._lock:
            if most < 2 or self._fits != {me: 1} or self._threads_over_blocks is None:
                return 1
            available = self._block_threads.get(me)
            if available is None:
                available = min(
                    max(lib.num_threads for lib in self._threads_over_blocks),
                    os.cpu_count() or 1,
                )
                if available < 2:
                    return 1
                self._block_threads[me] = available
                self._set_limits()
            return min(available, most)

    def map(self, func, items):
        """``[func(item) for item in items]``, the first here, the rest in threads.

        Each thread runs in a copy of this thread's context, so numpy's error
        state (``np.errstate``) holds there too. All have finished when this
        returns or raises.
        """
        executor = self._pool()
        futures = [
            executor.submit(contextvars.copy_context().run, func, item)
            for item in items[1:]
        ]
        try:
            first = func(items[0])
        finally:
            wait(futures)
        return [first] + [future.result() for future in futures]

    def _pool(self):
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=os.cpu_count() or 1,
                    thread_name_prefix="sksoftmax-blocks",
                )
            return self._executor

    def _after_fork(self):
        # A forked child has none of the parent's threads: a new pool, and a
        # lock that no thread of the parent can be holding.
        self._lock = threading.Lock()
        self._executor = None


def _release_openblas_control():
    release = getattr(OpenBLASController, "clear_controlling_thread", None)
    if release is not None:
        release(force=True)


blas_threads = BlasThreads()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=blas_threads._after_fork)
