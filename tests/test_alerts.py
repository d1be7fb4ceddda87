"""Every metric the alert rules use is one the code exports (Ray adds the `ray_` prefix)."""
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_alert_rules_reference_real_metrics():
    rules = yaml.safe_load((ROOT / "conf/alerts/replydesk.rules.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {m.removeprefix("ray_") for e in exprs for m in re.findall(r"ray_replydesk_\w+", e)}
    source = "\n".join(p.read_text() for d in ("actors", "supervisor", "contracts")
                       for p in (ROOT / d).rglob("*.py"))
    exported = set(re.findall(r"[\"'](replydesk_[a-z_]+)[\"']", source))
    assert used and used <= exported, used - exported
