"""Backup and restore of the replydesk database, mongodump-style but as plain files.

    python -m actors.store.backup dump --out DIR          [--db NAME]
    python -m actors.store.backup restore --from DIR      [--db NAME] [--drop]

The connection comes from the environment (MONGODB_URI, MONGODB_DB, via
contracts.settings.load_settings()). A dump directory holds, per collection,
`<name>.jsonl` (one document per line, canonical Extended JSON from bson.json_util, so dates,
int64 and binary keep their types) and `<name>.indexes.json` (index specs), plus
`manifest.json` (counts and sha256 of every file), written last: a dump without a manifest is
incomplete and is refused.

Restore creates the indexes first, then inserts documents skipping _ids that already exist, so
it can be re-run safely and a partial restore can be completed; `--drop` replaces collections.
Writes use the store's journaled write concern. Collections are dumped one after another, not as
one snapshot: stop the actors (or accept a few seconds of skew) for an exactly consistent dump.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from bson import json_util
from pymongo.database import Database

from actors.store.sync import Store
from actors.store.client import close_client
from actors.store.inline import Inline, run_inline
from actors.store.inserts import insert_new
from contracts.settings import ConfigError, load_settings

FORMAT = "replydesk-dump/1"
JSON_OPTIONS = json_util.CANONICAL_JSON_OPTIONS
BATCH = 1000


class BackupError(Exception):
    """The dump directory is missing, incomplete or corrupt, or the target refuses the data."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _index_specs(db: Database, name: str) -> list[dict[str, Any]]:
    """Index specs as listIndexes gives them, minus the implicit _id index and server fields."""
    specs = []
    for spec in db[name].list_indexes():
        spec = dict(spec)
        if spec.get("name") == "_id_":
            continue
        spec.pop("v", None)
        spec.pop("ns", None)
        spec["key"] = list(spec["key"].items())
        specs.append(spec)
    return specs


def dump(db: Database, out: Path) -> dict[str, Any]:
    """Write every collection of `db` to `out`; returns the manifest."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / "manifest.json").exists():
        raise BackupError(f"{out} already holds a dump; choose an empty directory")
    collections: dict[str, Any] = {}
    for name in sorted(db.list_collection_names()):
        data, idx = out / f"{name}.jsonl", out / f"{name}.indexes.json"
        count = 0
        with open(data, "w", encoding="utf-8") as f:
            for doc in db[name].find().sort("_id", 1):
                f.write(json_util.dumps(doc, json_options=JSON_OPTIONS) + "\n")
                count += 1
        idx.write_text(json_util.dumps(_index_specs(db, name), json_options=JSON_OPTIONS, indent=1),
                       encoding="utf-8")
        collections[name] = {"count": count, "sha256": _sha256(data), "indexes_sha256": _sha256(idx)}
    manifest = {"format": FORMAT, "database": db.name,
                "created_at": datetime.now(timezone.utc).isoformat(), "collections": collections}
    tmp = out / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    tmp.replace(out / "manifest.json")
    return manifest


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest, after checking every file it lists is present and unchanged."""
    path = src / "manifest.json"
    if not path.is_file():
        raise BackupError(f"{src}: no manifest.json (not a replydesk dump, or an unfinished one)")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: unknown format {manifest.get('format')!r}")
    for name, info in manifest["collections"].items():
        for fname, key in ((f"{name}.jsonl", "sha256"), (f"{name}.indexes.json", "indexes_sha256")):
            f = src / fname
            if not f.is_file():
                raise BackupError(f"{src}: {fname} is missing")
            if _sha256(f) != info[key]:
                raise BackupError(f"{src}: {fname} does not match its checksum (corrupt or edited)")
    return manifest


def _documents(path: Path) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                batch.append(json_util.loads(line, json_options=JSON_OPTIONS))
                if len(batch) >= BATCH:
                    yield batch
                    batch = []
    if batch:
        yield batch


def restore(db: Database, src: Path, drop: bool = False) -> dict[str, dict[str, int]]:
    """Load a dump into `db`; returns {collection: {"in_dump", "inserted", "present"}}."""
    manifest = read_manifest(src)
    report: dict[str, dict[str, int]] = {}
    for name, info in manifest["collections"].items():
        coll = db[name]
        if drop:
            coll.drop()
        for spec in json_util.loads((src / f"{name}.indexes.json").read_text(encoding="utf-8"),
                                    json_options=JSON_OPTIONS):
            spec = dict(spec)
            keys = [tuple(k) for k in spec.pop("key")]
            coll.create_index(keys, **spec)
        inserted = sum(len(run_inline(insert_new(Inline(coll), docs)))
                       for docs in _documents(src / f"{name}.jsonl"))
        present = coll.count_documents({})
        if present < info["count"]:
            raise BackupError(f"{name}: {present} documents after restore, dump has {info['count']}")
        report[name] = {"in_dump": info["count"], "inserted": inserted, "present": present}
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m actors.store.backup", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump", help="write the database to a directory")
    d.add_argument("--out", type=Path, required=True)
    d.add_argument("--db", help="database name (default: MONGODB_DB)")
    r = sub.add_parser("restore", help="load a dump directory into the database")
    r.add_argument("--from", dest="src", type=Path, required=True)
    r.add_argument("--db", help="database name (default: MONGODB_DB)")
    r.add_argument("--drop", action="store_true", help="drop each collection before loading it")
    a = p.parse_args(argv)
    try:
        settings = load_settings()
        if settings.mongodb_uri is None:   # `./run backup` passes the embedded database's
            raise ConfigError("MONGODB_URI: required but not set (`./run backup` uses the embedded one)")
        store = Store(settings.mongodb_uri, a.db or settings.mongodb_db)
        try:
            if a.cmd == "dump":
                m = dump(store.db, a.out)
                total = sum(c["count"] for c in m["collections"].values())
                print(f"dumped {len(m['collections'])} collections, {total} documents to {a.out}")
            else:
                for name, r_ in restore(store.db, a.src, drop=a.drop).items():
                    print(f"{name}: {r_['in_dump']} in dump, {r_['inserted']} inserted, "
                          f"{r_['present']} now present")
        finally:
            close_client(settings.mongodb_uri)
    except (ConfigError, BackupError) as exc:
        print(f"backup: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
