"""Process trees read from /proc (a host finds its Chromium; the benchmark counts PSS and CPU)."""
from __future__ import annotations

from pathlib import Path


def children() -> dict[int, list[int]]:
    """ppid -> the pids of its children, for every process now."""
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(p.name))
    return kids


def tree(pid: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    """`pid` and every process descending from it."""
    kids = children() if kids is None else kids
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def descendants(pid: int) -> list[int]:
    return tree(pid)[1:]
