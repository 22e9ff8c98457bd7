"""Several runs trained at once on the CPU, each in its own process (``dcinet ablate --jobs N``).

A grid's runs are independent, and a small network keeps few threads busy, so on a CPU N runs side
by side with 1/N of the threads each finish sooner than the same runs one after another. Each run
goes to a spawned process (not forked: a fork of a process whose OpenMP pool is running can hang)
that sets its intra-op threads (``torch.set_num_threads``) and calls
:func:`~dcinet.train.loop.train_or_resume`, so what it writes is what one process writes: the
grid reuses, resumes and evaluates those runs as any other.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import torch

from dcinet.config import Config
from dcinet.errors import DcinetError
from dcinet.train.loop import train_or_resume


def check_jobs(jobs: int, device: torch.device, distributed: bool) -> None:
    """Refuse ``jobs`` < 1, and ``jobs`` > 1 anywhere but one CPU process."""
    if jobs < 1:
        raise DcinetError(f"--jobs must be >= 1, not {jobs}")
    if jobs > 1 and (distributed or device.type != "cpu"):
        where = "under torchrun" if distributed else f"on {device}"
        raise DcinetError(f"--jobs trains runs side by side on the CPU; {where} leave it at 1")


def threads_per_job(jobs: int) -> int:
    """This process's intra-op threads shared among ``jobs`` runs, at least 1 each."""
    return max(1, torch.get_num_threads() // jobs)


def train_runs(runs: list[tuple[Config, Path]], data_root: Path, jobs: int,
               threads: int | None = None, progress: bool = True) -> None:
    """Train (or reuse, or resume) every ``(cfg, run_dir)`` of ``runs``, ``jobs`` at a time.

    Args:
        threads: intra-op threads per run (default :func:`threads_per_job`).
        progress: one line per run when it is ready (the runs themselves print nothing).

    ``jobs`` must pass :func:`check_jobs`.

    Raises:
        DcinetError: a run's error, once the runs already started have stopped; the runs not yet
            started are not started.
    """
    threads = threads or threads_per_job(jobs)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=torch.set_num_threads,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(_train, cfg, data_root, run_dir): run_dir for cfg, run_dir in runs}
        for future in as_completed(futures):
            error = future.exception()
            if error is not None:
                for other in futures:
                    other.cancel()
                raise error
            if progress:
                print(f"ready: {futures[future]} ({future.result() / 60:.1f} min, {threads} "
                      f"thread(s))", flush=True)


def _train(cfg: Config, data_root: Path, run_dir: Path) -> float:
    """One run in a worker process; its wall-clock seconds. A user error crosses back to the
    parent as a plain :class:`DcinetError` with the same message (its subclasses' arguments do
    not survive pickling)."""
    started = time.perf_counter()
    try:
        train_or_resume(cfg, data_root, run_dir, progress=False, device="cpu")
    except DcinetError as exc:
        raise DcinetError(str(exc)) from None
    return time.perf_counter() - started
