"""The MongoDB-wire server for tests and the demo: the launcher `./run up` embeds
(supervisor/local/mongod.py), re-exported under its old name."""
from supervisor.local.mongod import OPLOG_MAX_ENTRIES, MongoServer, _server_binary, free_port

__all__ = ["OPLOG_MAX_ENTRIES", "MongoServer", "_server_binary", "free_port"]
