"""`./run up`: the real job on this machine until Ctrl-C (or SIGTERM: `./run down`, systemd).

Order: validate the config accepting the embedded defaults (nothing starts on a bad one), take the
data directory's lock (a second `up` is refused with the first one's pid), start what is embedded
(embedded.py), load the config strictly, start a local Ray and the supervisor, print the banner,
then write var/run/status.json every few seconds and print each change of an account's state or of
the drafts waiting. Stopping: the supervisor stops its children cleanly, Ray shuts down, then the
embedded database. Queues, the database and the login states are kept: the next `up` takes every
message, draft, approved reply and cursor up where it was (also after SIGKILL of everything).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from typing import Any

from contracts import settings
from supervisor import preflight
from supervisor.local import console, embedded, lock, report
from supervisor.local.paths import Paths


def _say(text: str) -> None:
    try:
        print(text, flush=True)
    except OSError:        # the console is gone (a closed terminal, a pipe's reader ended)
        pass


def first_line(config: settings.Config, demo_site: str | None) -> str:
    if demo_site:
        return ("replydesk up: on the built-in DEMO site (no account credentials are set; put an "
                "account's login in .env to use it on your account)")
    accounts = ", ".join(f"{a.id} ({a.site})" for a in config.app.accounts)
    return f"replydesk up: accounts {accounts}"


def _stop_on(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run(paths: Paths, config_file: str | None, status_every_s: float, detached: bool) -> int:
    try:
        fd = lock.acquire(paths)
    except lock.AlreadyRunning as exc:
        print(f"up refused: {exc}", file=sys.stderr)
        return 1
    try:
        pre = settings.load(config_file, embedded=True)
    except settings.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        lock.release(paths, fd)
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):   # `./run down` (and systemd), Ctrl-C
        signal.signal(sig, _stop_on)
    reload_requested: list[int] = []              # SIGHUP (`./run reload`): re-read conf/, apply it
    signal.signal(signal.SIGHUP, lambda signum, frame: reload_requested.append(signum))
    started = time.time()
    emb: embedded.Embedded | None = None
    handle, status = None, {"pid": os.getpid(), "started_at": started, "state": "starting"}
    code = 0
    try:
        emb = embedded.prepare(paths, pre)
        config = settings.load(config_file)        # strict: what is unset now is an error
        _logging(paths, config, detached)
        preflight.check(config)                    # a broker or database refusing us: stop here
        _say(first_line(config, emb.demo_site))
        status.update(first_line=first_line(config, emb.demo_site), embedded=emb.lines,
                      db_uri=emb.db.uri if emb.db is not None else None,
                      logs=_logs_line(paths, detached), detached=detached)
        report.write(paths, status)
        handle = _start(config, fresh=emb.demo_site is not None)
        status = _running(paths, config, handle, status)
        _say(report.banner(status, os.environ.get("REVIEW_TOKEN"), first=False))   # first line is out
        _watch(paths, config, handle, status, status_every_s, reload_requested, config_file)
    except KeyboardInterrupt:
        pass
    except (settings.ConfigError, preflight.Refused) as exc:
        print(str(exc), file=sys.stderr)
        code = 2
    except Exception as exc:   # one line for a person; the traceback goes to the log
        logging.getLogger("replydesk.up").exception("up failed")
        print(f"up failed: {type(exc).__name__}: {settings_safe(exc)}", file=sys.stderr, flush=True)
        code = 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):   # a second one must not cut
            signal.signal(sig, signal.SIG_IGN)                       # the cleanup short
        _shutdown(handle, emb)
        report.write(paths, {**status, "state": "stopped", "stopped_at": time.time()})
        lock.release(paths, fd)
        _say("replydesk stopped")
    return code


def settings_safe(exc: BaseException) -> str:
    from contracts import telemetry
    return telemetry.redact(str(exc))[:500]


def _logs_line(paths: Paths, detached: bool) -> str:
    here = str(paths.log_file) if detached else f"this console (as JSON: {paths.json_log})"
    return f"{here}; actors: /tmp/ray/session_latest/logs; database: {paths.db_log}"


def _logging(paths: Paths, config: settings.Config, detached: bool) -> None:
    """JSON log lines from this process; in the foreground, short human lines on the console
    (and the JSON in var/logs/up.jsonl)."""
    from contracts import telemetry
    telemetry.setup_from(config, "up")
    if not detached:
        console.use_human_console(paths.json_log)


def _start(config: settings.Config, fresh: bool) -> Any:
    import ray

    from supervisor import runner
    if fresh:   # the demo site starts empty each run: so do its database and queues
        from actors.store import Store
        Store.from_config(config).db.client.drop_database(config.settings.mongodb_db)
        runner.decommission(config)
    # a local Ray of its own; actors log to Ray's files, the console stays readable
    ray.init(address="local", namespace=config.settings.namespace, include_dashboard=False,
             resources={"browser": 64}, log_to_driver=False, logging_level=logging.ERROR)
    return runner.start(config)


def _running(paths: Paths, config: settings.Config, handle: Any, status: dict[str, Any]) -> dict[str, Any]:
    import ray
    deadline = time.monotonic() + 20   # each session's first heartbeat tells its state (needs_login)
    while True:
        st = ray.get(handle.status.remote(), timeout=60)
        if time.monotonic() > deadline or all(c["heartbeats"] or c["state"] != "running"
                                              for c in st["children"] if c["kind"] == "browser"):
            break
        time.sleep(0.3)
    desk = next((c for c in st["children"] if c["kind"] == "review"), None)
    url = (desk or {}).get("info", {}).get("url")
    status = {**status, "state": "running", "desk_url": url,
              **report.snapshot(st, config, _waiting(config))}
    report.write(paths, status)
    return status


def _waiting(config: settings.Config) -> int:
    from actors.store import Store
    from contracts.draftstate import DraftStatus
    return Store.from_config(config).drafts.count({"status": DraftStatus.PENDING.value})


def _watch(paths: Paths, config: settings.Config, handle: Any, status: dict[str, Any],
           every_s: float, reload_requested: list[int], config_file: str | None) -> None:
    import ray
    shown = (report.account_lines(status["accounts"]), status["drafts_waiting"])
    while True:
        time.sleep(every_s)
        if reload_requested:
            reload_requested.clear()
            _reload(handle, config_file)
        try:
            st = ray.get(handle.status.remote(), timeout=30)
            status.update(report.snapshot(st, config, _waiting(config)))
        except Exception as exc:   # busy or restarting: say so, keep going
            status["last_error"] = f"status: {type(exc).__name__}"
        report.write(paths, status)
        now = (report.account_lines(status["accounts"]), status["drafts_waiting"])
        if now != shown:
            stamp = time.strftime("%H:%M:%S")
            for line in now[0]:
                if line not in shown[0]:
                    _say(f"{stamp} {line.strip()}")
            if now[1] != shown[1]:
                _say(f"{stamp} drafts waiting for review: {now[1]}")
            shown = now


def _reload(handle: Any, config_file: str | None) -> None:
    """Re-read conf/ and apply it (the embedded values are in the environment already); a bad
    config changes nothing."""
    from supervisor import runner
    stamp = time.strftime("%H:%M:%S")
    try:
        result = runner.reload(handle, config_file)
        _say(f"{stamp} config reloaded: {result['reload']}")
    except settings.ConfigError as exc:
        _say(f"{stamp} reload refused, nothing changed: {exc}")
    except Exception as exc:   # a failed reload never ends the run
        _say(f"{stamp} reload failed, still running as before: {type(exc).__name__}: {settings_safe(exc)}")


def _shutdown(handle: Any, emb: embedded.Embedded | None) -> None:
    try:
        import ray
        if handle is not None:
            from supervisor import runner
            _say("stopping the supervisor and its actors...")
            runner.stop(handle)
        if ray.is_initialized():
            ray.shutdown()
    finally:
        if emb is not None:
            emb.close()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="./run up", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="YAML config (default: conf/replydesk.yaml)")
    p.add_argument("--detach", action="store_true", help="run in the background (logs to var/logs)")
    p.add_argument("--status-every", type=float, default=2.0, help=argparse.SUPPRESS)
    p.add_argument("--detached-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    paths = Paths.default().ensure()
    if args.detach:
        from supervisor.local.control import detach
        return detach(paths, [a for a in argv if a != "--detach"])
    return run(paths, args.config, args.status_every, args.detached_child)
