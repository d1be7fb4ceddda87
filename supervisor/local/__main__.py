"""`python -m supervisor.local up|status|down|service|backup|restore [args]` (what `./run` calls)."""
from __future__ import annotations

import sys

from supervisor.local.paths import Paths


def main(argv: list[str]) -> int:
    verb, rest = (argv[0], argv[1:]) if argv else ("help", [])
    if verb == "up":
        from supervisor.local.up import main as up
        return up(rest)
    from supervisor.local import control
    paths = Paths.default().ensure()
    if verb == "status":
        return control.status(paths)
    if verb == "down":
        return control.down(paths)
    if verb == "reload":
        return control.reload(paths, rest)
    if verb == "service":
        return control.service(paths)
    if verb in ("backup", "restore"):
        from actors.store import backup
        return control.with_embedded(paths, lambda: backup.main(["dump" if verb == "backup" else "restore", *rest]))
    if verb in ("login", "doctor"):       # on the embedded database when MONGODB_URI is unset
        from supervisor.__main__ import main as tools
        return control.with_embedded(paths, lambda: tools([verb, *rest]))
    print("usage: python -m supervisor.local {up [--detach]|status|down|reload|service|login|doctor|backup|restore}",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
