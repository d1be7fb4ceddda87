"""Start-up hook for `./run coverage`: measure every Python process the suite starts.

`./run coverage` exports COVERAGE_PROCESS_START and installs a .pth file in the venv that runs this
file at interpreter start-up when that variable is set (without it, as in `./run test`, the .pth
line is a no-op). Ray
actor workers, `python -m supervisor` subprocesses, the node-loss scenario and the ray-job
entrypoint all inherit the variable (Ray's raylet passes the driver's environment on to its
workers), so all of them are measured. Two Ray-specific gaps that coverage's own start-up
(`coverage.process_startup()`) leaves open are closed here:

* Ray never runs a worker's atexit handlers: `ray.shutdown()`, `ray.kill()` and node loss end
  workers with SIGKILL or a C-level `_exit`. So a daemon thread saves the data every SAVE_EVERY_S
  seconds; a worker killed between two saves loses at most that slice. SQLite keeps each save
  atomic, so a file cut off mid-write is rolled back, never corrupt, and `coverage combine` still
  reads it. A sync actor method also saves as it returns: `shutdown()` and then `ray.kill()` is
  the usual way an actor ends.
* Methods of threaded actors (a sync actor with `max_concurrency` > 1: the supervisor) run on
  threads Ray's C++ core creates, which `threading.settrace` never reaches on
  Python 3.11. In Ray workers the actor-method executor is wrapped so a thread that has no trace
  function installs coverage's per-thread tracer before running the method.
"""
from __future__ import annotations

import atexit
import functools
import inspect
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import NoReturn

import coverage

SAVE_EVERY_S = 2.0


class _Saver:
    """A daemon thread that saves every SAVE_EVERY_S seconds. Saves never overlap coverage's own
    final save (two threads writing one data file can crash SQLite): `stop()` takes the lock for
    good, and runs first at exit and before os._exit."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        threading.Thread(target=self._run, name="coverage-saver", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(SAVE_EVERY_S)
            with self.lock:
                try:
                    coverage.Coverage.current().save()
                except (coverage.CoverageException, OSError) as exc:  # never break the process under test
                    print(f"coverage hook: save failed: {exc!r}", file=sys.stderr)

    def save_now(self) -> None:
        with self.lock:
            coverage.Coverage.current().save()

    def stop(self) -> None:
        self.lock.acquire()


_saver: _Saver | None = None


def _start_saver() -> None:
    """(Re)start the saver; after a fork the child needs its own thread and an unheld lock, and
    `patch = fork` has given it its own data file."""
    global _saver
    _saver = _Saver()
    atexit.register(_saver.stop)  # atexit is LIFO: runs before coverage's final save


def _stop_before_exit(exit_: Callable[[int], NoReturn]) -> Callable[[int], NoReturn]:
    def _exit(status: int) -> NoReturn:
        if _saver is not None:
            _saver.stop()
        exit_(status)  # coverage's `patch = _exit` wrapper: saves, then really exits
    return _exit


def _trace_ray_executor_threads() -> None:
    """Make methods that Ray runs on its C++ executor threads visible to coverage."""
    from ray._private import function_manager

    make = function_manager.FunctionActorManager._make_actor_method_executor

    @functools.wraps(make)
    def make_traced(self, method_name, method):
        executor = make(self, method_name, method)

        @functools.wraps(executor)  # also copies executor.name / .method, which Ray reads
        def traced(*args, **kwargs):
            hook = threading.gettrace()
            if hook is not None and sys.gettrace() is None:
                sys.settrace(hook)  # coverage's installer: starts this thread's tracer
            try:
                return executor(*args, **kwargs)
            finally:
                if _saver is not None and not inspect.iscoroutinefunction(executor.method):
                    _saver.save_now()  # the caller may ray.kill this actor as soon as we return
        return traced

    function_manager.FunctionActorManager._make_actor_method_executor = make_traced


def install() -> None:
    # A venv's site-packages is scanned twice at start-up (coveragepy issue 340): run once.
    if getattr(coverage, "_replydesk_hook", False):
        return
    coverage.process_startup()
    if coverage.Coverage.current() is None:
        return
    coverage._replydesk_hook = True
    _start_saver()
    os.register_at_fork(after_in_child=_start_saver)
    os._exit = _stop_before_exit(os._exit)
    # orig_argv: runpy (which the .pth uses to run this file) has replaced sys.argv[0]
    if sys.orig_argv[1:2] and sys.orig_argv[1].endswith("default_worker.py"):
        _trace_ray_executor_threads()


install()
