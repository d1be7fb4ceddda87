"""`./run up` and its daily tools (`status`, `down`, `service`, `backup` on the embedded
database): the real job on one machine, with an embedded default for every outside system that
can serve one (paths.py says where each keeps its data)."""
