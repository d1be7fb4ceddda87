"""Job entrypoint: `python -m supervisor --config conf/replydesk.yaml --duration 600`.
Operator tools: `python -m supervisor doctor SITE [--capture DIR] [--mask] [--html DIR]` checks every
element of a site spec, saves the pages and proposes selectors for what misses;
`python -m supervisor reload` re-reads conf/ and applies it to the running supervisor (so does
SIGHUP to the job's process); `python -m supervisor login ACCOUNT [--import state.json]` hands a
login challenge to a person.

Works locally (starts a local Ray) and as `ray job submit --working-dir . -- python -m supervisor`
against a cluster. Configuration is validated before Ray starts: a bad value exits with code 2 and
one line naming the variable.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys

from actors.browser.site import check_adapters
from contracts import settings, telemetry


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "doctor":  # python -m supervisor doctor SITE [--config ...] [--html DIR]
        return _doctor(argv[1:])
    if argv and argv[0] == "reload":  # python -m supervisor reload [--config ...] [--address ...]
        return _reload(argv[1:])
    if argv and argv[0] == "login":  # python -m supervisor login ACCOUNT [--import state.json]
        return _with_config(argv[1:], "login")
    p = argparse.ArgumentParser(prog="python -m supervisor", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="YAML config (default: conf/replydesk.yaml or REPLYDESK_CONFIG)")
    p.add_argument("--duration", type=float, default=0, help="seconds to run; 0 = until interrupted")
    p.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--detached", action="store_true", help="leave the supervisor running after the job ends")
    p.add_argument("--check-config", action="store_true", help="validate the configuration and exit")
    args = p.parse_args(argv)
    try:   # --check-config accepts what `./run up` embeds, and says what that is
        config = settings.load(args.config, embedded=args.check_config)
        check_adapters(config)   # a site's `adapter: module:Class` that cannot be used
    except settings.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    if args.check_config:
        print("config ok")
        for line in settings.embedded_defaults(config):
            print(f"  embedded by ./run up: {line}")
        return 0
    telemetry.setup_from(config, "supervisor-job")

    from supervisor import preflight, runner
    try:  # a broker or database that refuses our credentials stops the start here, not in a restart loop
        preflight.check(config)
    except preflight.Refused as exc:
        print(str(exc), file=sys.stderr)
        return 2
    runner.connect(args.address, config.settings.namespace)
    handle = runner.start(config, detached=args.detached)

    def _term(signum, frame):  # ray job stop / Ctrl-C: stop cleanly
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, _term)
    reload_requested: list[int] = []  # SIGHUP: re-read conf/ and apply it while running
    signal.signal(signal.SIGHUP, lambda signum, frame: reload_requested.append(signum))
    try:
        runner.run_for(handle, args.duration or None, reload_requested=reload_requested,
                       config_file=args.config)
    except KeyboardInterrupt:
        pass
    if args.detached:
        print(json.dumps({"supervisor": "left running", "summary": runner.summary(config)}))
        return 0
    status = runner.stop(handle)
    print(json.dumps({"status": status["states"], "failed": status["failed"],
                      "summary": runner.summary(config)}))
    return 0


def _reload(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m supervisor reload",
                                description="re-read conf/ and apply it to the running supervisor")
    p.add_argument("--config", default=None)
    p.add_argument("--address", default=None, help="Ray address (default: RAY_ADDRESS, else auto)")
    args = p.parse_args(argv)
    try:  # validated before anything is touched: a bad config changes nothing
        config = settings.load(args.config)
    except settings.ConfigError as exc:
        print(f"reload refused, nothing changed: {exc}", file=sys.stderr)
        return 2
    import ray

    from supervisor import runner
    ray.init(address=args.address or "auto", namespace=config.settings.namespace, log_to_driver=False)
    try:
        handle = ray.get_actor(runner.SUPERVISOR_NAME, namespace=config.settings.namespace)
    except ValueError:
        print(f"reload: no supervisor running in namespace {config.settings.namespace!r}", file=sys.stderr)
        return 2
    result = ray.get(handle.reload.remote(config), timeout=180)
    print(json.dumps({"reload": result["reload"], "states": result["states"]}))
    return 0


def _doctor(argv: list[str]) -> int:
    return _with_config(argv, "doctor")


def _with_config(argv: list[str], tool: str) -> int:
    config_file = None
    if "--config" in argv:
        i = argv.index("--config")
        config_file, argv = argv[i + 1], argv[:i] + argv[i + 2:]
    try:
        config = settings.load(config_file)
    except settings.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    import importlib
    return importlib.import_module(f"supervisor.{tool}").main(config, argv)


if __name__ == "__main__":
    sys.exit(main())
