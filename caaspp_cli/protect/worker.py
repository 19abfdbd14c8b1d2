"""The work of one password, done in a worker process, and the pool of those processes.

A :class:`Task` is the files of one password (one student, or one file with no SSID).
:func:`protect_task` protects them one by one with a single security handler: each copy
is written to a temp file beside its final name, fsynced and verified, and handed back to
the parent (:class:`Done`), which records the password and renames it into place.
:func:`run_tasks` sends them in :func:`batches` (whole tasks, up to 16 files) to a
forkserver pool whose workers ignore Ctrl-C (the parent decides, and removes the temps of
the batches that were running) and exit on their own when the run that started them is
gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pikepdf

from caaspp_cli.errors import LinkRefusedError
from caaspp_cli.fsutil import (
    ensure_private_dir,
    fsync_file,
    is_link_stat,
    private_dirs_within,
    private_temp_path,
    scratch_file,
)
from caaspp_cli.protect.handler import SecurityHandler, new_security_handler, protect_pdf
from caaspp_cli.protect.inputs import InputProblem, open_input, short_reason
from caaspp_cli.protect.results import Outcome
from caaspp_cli.protect.verify import ProtectionCheckError, probe_content, verify_protected_pdf

__all__ = [
    "Done",
    "FileTask",
    "Task",
    "batches",
    "default_workers",
    "protect_task",
    "remove_temps",
    "run_tasks",
]


@dataclass(frozen=True, slots=True)
class FileTask:
    index: int
    source: Path
    target: Path
    out_dir: Path  # the output folder: no folder from it down to target may be a link


@dataclass(frozen=True, slots=True)
class Task:
    """The files of one password (one student, or one file with no SSID)."""

    password: str = field(repr=False)
    files: tuple[FileTask, ...]


@dataclass(frozen=True, slots=True)
class Done:
    index: int
    outcome: Outcome
    detail: str = ""
    temp: Path | None = None  # a verified protected copy, to be renamed over its target


def protect_task(
    task: Task,
    carrier: Callable[[], Path] | None = None,
    durable: Callable[[Path], None] = fsync_file,
) -> list[Done]:
    """Protect the files of one password (runs in a worker process). ``carrier`` gives the
    scratch file for the carrier PDFs (without it the task makes its own); ``durable``
    flushes a written copy to the disk, or starts to (the batch then waits for it)."""
    handler: SecurityHandler | None = None
    done: list[Done] = []
    with contextlib.ExitStack() as scratch:
        if carrier is None:
            carrier = _carrier_file(scratch, task.files[0].out_dir)
        try:
            for item in task.files:
                result, handler = _protect_file(item, task.password, handler, carrier, durable)
                done.append(result)
        except BaseException:
            remove_temps(done)
            raise
    return done


def _carrier_file(scratch: contextlib.ExitStack, folder: Path) -> Callable[[], Path]:
    """A scratch file in ``folder`` for carrier PDFs, made when first needed and removed
    when ``scratch`` closes."""
    made: list[Path] = []

    def carrier() -> Path:
        if not made:
            made.append(scratch.enter_context(scratch_file(folder)))
        return made[0]

    return carrier


def _protect_file(
    item: FileTask,
    password: str,
    handler: SecurityHandler | None,
    carrier: Callable[[], Path],
    durable: Callable[[Path], None],
) -> tuple[Done, SecurityHandler | None]:
    try:
        pdf = open_input(item.source)
    except InputProblem as exc:
        return Done(item.index, Outcome.SKIPPED, str(exc)), handler
    with pdf:
        try:
            probe = probe_content(pdf)
        except InputProblem as exc:
            return Done(item.index, Outcome.SKIPPED, str(exc)), handler
        try:
            # A link at the copy or in its folders would be read (as "already protected")
            # or written through: another child's file, or outside the output folder.
            private_dirs_within(item.out_dir, item.target.parent.relative_to(item.out_dir))
            target_info = item.target.lstat()
        except LinkRefusedError as exc:
            return _failed(item, exc.message), handler
        except FileNotFoundError:
            target_info = None
        except OSError as exc:
            return _failed(item, f"cannot write: {short_reason(exc, item.target)}"), handler
        if target_info is not None and is_link_stat(target_info):
            return _failed(item, LinkRefusedError(item.target).message), handler
        if target_info is not None:
            try:
                verify_protected_pdf(item.target, password, probe=probe)
            except ProtectionCheckError as exc:
                # Replaced only if the student's password opens it (an older copy of the
                # report) or nothing needs a password: a family may hold another one.
                if not exc.password_ok and (exc.wrong_password or _asks_for_password(item.target)):
                    return _failed(
                        item,
                        "a protected copy is already there and the student's password does "
                        "not open it; it is left as it is (move it away to protect again)",
                    ), handler
            else:
                return Done(item.index, Outcome.ALREADY_PROTECTED), handler
        try:
            ensure_private_dir(item.target.parent)
            if handler is None:
                handler = new_security_handler(password)
        except ProtectionCheckError as exc:
            return _failed(item, f"the encryption failed its check: {exc}"), None
        except (OSError, pikepdf.PdfError) as exc:
            return _failed(item, f"cannot write: {short_reason(exc, item.target)}"), None
        temp = private_temp_path(item.target.parent)
        try:
            protect_pdf(pdf, item.source, temp, handler, carrier=carrier())
            durable(temp)
            if verify_protected_pdf(temp, password, probe=probe) != handler.file_key:
                raise ProtectionCheckError("it has another file key than its student's")
        except ProtectionCheckError as exc:
            temp.unlink(missing_ok=True)
            return _failed(item, f"the protected copy failed its check: {exc}"), handler
        except (OSError, pikepdf.PdfError, RuntimeError) as exc:
            temp.unlink(missing_ok=True)
            return _failed(item, f"cannot write: {short_reason(exc, temp)}"), handler
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    return Done(item.index, Outcome.PROTECTED, temp=temp), handler


def _asks_for_password(path: Path) -> bool:
    try:
        with pikepdf.open(path):
            return False
    except pikepdf.PasswordError:
        return True
    except (pikepdf.PdfError, ValueError, RuntimeError, OSError):
        return False


def _failed(item: FileTask, detail: str) -> Done:
    return Done(item.index, Outcome.FAILED, detail)


def remove_temps(done: Iterable[Done]) -> None:
    for result in done:
        if result.temp is not None:
            result.temp.unlink(missing_ok=True)


def _worker_init(parent_pid: int | None = None) -> None:
    # Ctrl-C reaches the whole process group: the parent alone decides, and lets running
    # tasks finish so that it can clean up their temp files.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_pid is not None:
        import threading

        threading.Thread(
            target=_exit_when_gone, args=(parent_pid,), name="caaspp-parent-watch", daemon=True
        ).start()


_PARENT_POLL_SECONDS: Final = 0.5


def _exit_when_gone(parent_pid: int) -> None:
    """Exit once the run that started this worker is gone (killed with kill -9, say).

    Nothing else would end it: a forkserver worker's parent is the forkserver, which lives
    as long as its workers do, and they wait for work forever, holding memory and the
    folder's files. What a dead run left half done, the next run sweeps away.
    """
    while _parent_alive(parent_pid):
        time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)


def _parent_alive(parent_pid: int) -> bool:
    if sys.platform == "win32":  # pragma: no cover - spawn: the parent is the run itself
        import multiprocessing

        parent = multiprocessing.parent_process()
        return parent is None or parent.is_alive()
    try:
        os.kill(parent_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # the number now belongs to another user's process
        return False
    try:  # Linux: a killed run not yet reaped by its shell is a zombie, not alive
        with open(f"/proc/{parent_pid}/stat", "rb") as handle:
            state = handle.read().rsplit(b")", 1)[-1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in (b"Z", b"X")


def default_workers() -> int:
    counter = getattr(os, "process_cpu_count", None)
    if counter is not None:
        count = counter()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:  # pragma: no cover - macOS and Windows on Python < 3.13
        count = os.cpu_count()
    return max(1, count or 1)


def _executor(workers: int) -> Executor:
    import multiprocessing

    if sys.platform != "win32":
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([__name__])
    else:  # pragma: no cover
        context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_worker_init,
        initargs=(os.getpid(),),
    )


# A batch is the tasks a worker is sent at once, and whose results the parent records at
# once: one round trip, one append (and fsync) to the sheet, one fsync of the folder. Up to
# this many files, fewer when it takes smaller batches to keep every worker busy.
_BATCH_FILES: Final = 16
_BATCHES_PER_WORKER: Final = 8


def batches(tasks: Sequence[Task], workers: int) -> list[tuple[Task, ...]]:
    """``tasks`` in order, in batches of about the same number of files (a task, the files
    of one password, is never split)."""
    total = sum(len(task.files) for task in tasks)
    target = max(1, min(_BATCH_FILES, total // (max(1, workers) * _BATCHES_PER_WORKER)))
    found: list[tuple[Task, ...]] = []
    current: list[Task] = []
    size = 0
    for task in tasks:
        current.append(task)
        size += len(task.files)
        if size >= target:
            found.append(tuple(current))
            current, size = [], 0
    if current:
        found.append(tuple(current))
    return found


def protect_batch(batch: tuple[Task, ...]) -> list[Done]:
    """Protect the files of a batch of tasks (runs in a worker process).

    Each copy's fsync runs in a thread while the next file is worked on (an fsync waits for
    the disk, not for the CPU); the batch returns once every copy is on the disk, so the
    parent still records the password of none that is not."""
    done: list[Done] = []
    flushing: dict[Path, Future[None]] = {}
    with (
        contextlib.ExitStack() as scratch,
        ThreadPoolExecutor(2, thread_name_prefix="caaspp-fsync") as flusher,
    ):
        carrier = _carrier_file(scratch, batch[0].files[0].out_dir)

        def durable(path: Path) -> None:
            flushing[path] = flusher.submit(fsync_file, path)

        try:
            for task in batch:
                done.extend(protect_task(task, carrier, durable))
            return [_flushed(result, flushing) for result in done]
        except BaseException:
            flusher.shutdown(wait=True, cancel_futures=True)  # no file still open (Windows)
            remove_temps(done)
            raise


def _flushed(result: Done, flushing: Mapping[Path, Future[None]]) -> Done:
    """``result`` once its copy's fsync has ended: failed (its temp removed) if it failed."""
    if result.temp is None:
        return result
    try:
        flushing[result.temp].result()
    except OSError as exc:
        result.temp.unlink(missing_ok=True)
        return Done(result.index, Outcome.FAILED, f"cannot write: {short_reason(exc, result.temp)}")
    return result


def run_tasks(tasks: Sequence[Task], workers: int, finish: Callable[[list[Done]], None]) -> None:
    """Run ``tasks`` (in worker processes when there are several workers), handing the
    results of each batch of them to ``finish`` in the parent as they come."""
    pending = batches(tasks, workers)
    if workers <= 1 or len(pending) <= 1:
        for batch in pending:
            finish(protect_batch(batch))
        return
    queue = iter(pending)
    running: dict[Future[list[Done]], tuple[Task, ...]] = {}
    executor = _executor(min(workers, len(pending)))

    def submit() -> None:
        batch = next(queue, None)
        if batch is None:
            return
        try:
            running[executor.submit(protect_batch, batch)] = batch
        except BrokenProcessPool:
            finish(_lost(batch))
            submit()

    try:
        for _ in range(workers * 4):  # enough queued to keep every worker busy
            submit()
        while running:
            completed, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in completed:
                batch = running.pop(future)
                try:
                    results = future.result()
                except BrokenProcessPool:
                    results = _lost(batch)
                finish(results)
                submit()
    except BaseException:
        for future in running:
            future.cancel()
        # Running batches finish (workers ignore Ctrl-C); their verified temps are removed.
        for future in running:
            if not future.cancelled():
                with contextlib.suppress(BaseException):
                    remove_temps(future.result())
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


def _lost(batch: tuple[Task, ...]) -> list[Done]:
    return [
        Done(item.index, Outcome.FAILED, "its worker process died; run again to retry")
        for task in batch
        for item in task.files
    ]
