"""The test suite (see docs/testing.md).

One thread per process for OpenMP and BLAS (scikit-learn's gradient boosting, numpy), in every
test process and every process they start (daemon, code server, run workers), set here because
this runs before anything imports numpy or scikit-learn: two xdist workers already fill the 2
cores, and with a thread per core in each process four trainings at once took twice as long
as with one thread each (`benchmarks/thread_contention.py`). An explicit setting in the
environment wins.
"""

import os

for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")
