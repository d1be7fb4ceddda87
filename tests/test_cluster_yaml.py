"""ray_cluster.yaml is a valid cluster-launcher file with a `browser` node type."""
from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def test_cluster_yaml_validates_against_rays_schema():
    raw = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    cfg = prepare_config(raw)
    validate_config(cfg)  # raises on any schema error
    types = cfg["available_node_types"]
    assert types[cfg["head_node_type"]]["max_workers"] == 0
    browser = [t for t in types.values() if t["resources"].get("browser", 0) > 0]
    assert browser, "a node type must offer the custom `browser` resource"
    assert any("chromium" in c for c in cfg["worker_setup_commands"])
    assert any("--resources" in c and "browser" in c for c in cfg["worker_start_ray_commands"])
