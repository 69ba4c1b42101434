"""deploy/prometheus/alerts.yml is a Prometheus rules file whose every expression asks about metrics the app
exports (no promtool here: the file is parsed, and its metric names checked against a real scrape)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from kelabooking.metrics import exposition

pytestmark = pytest.mark.django_db

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\bkelabooking_[a-z0-9_]+")
# Series Prometheus derives from a histogram or counter family.
SUFFIXES = ("_bucket", "_count", "_sum", "_created", "_total")
DURATION = re.compile(r"^\d+[smhdw]$")


def exported_families() -> set[str]:
    """The families a scrape of this app declares (# TYPE lines), with their sample names."""
    families = set()
    for line in exposition().decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            families.add(name)
            if kind == "counter":
                families.add(f"{name}_total")
            if kind == "histogram":
                families.update({f"{name}_bucket", f"{name}_count", f"{name}_sum"})
    return families


def rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    found = []
    for group in document["groups"]:
        assert set(group) <= {"name", "rules", "interval"}
        assert group["name"]
        found += group["rules"]
    return found


def test_alert_rules__each_well_formed() -> None:
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names))
    for rule in rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations", "keep_firing_for"}, rule
        assert isinstance(rule["expr"], str)
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        assert "for" not in rule or DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


def test_alert_rules__every_expression_asks_about_a_metric_the_app_exports() -> None:
    exported = exported_families()
    for rule in rules():
        used = set(METRIC.findall(rule["expr"]))
        assert used, f"{rule['alert']} names no kelabooking metric"
        assert used <= exported, f"{rule['alert']}: {sorted(used - exported)} not exported"


def test_alert_rules__the_ones_operators_asked_for_are_there() -> None:
    expressions = {rule["alert"]: rule["expr"] for rule in rules()}
    assert "max(kelabooking_outbox_oldest_pending_age_seconds) > 15 * 60" in expressions.values()
    assert any("kelabooking_sign_ins_total" in expr for expr in expressions.values())
    assert any(
        "kelabooking_beat_last_sent_timestamp_seconds" in expr and "5 * 60" in expr for expr in expressions.values()
    )
    assert any('outcome="given_up"' in expr for expr in expressions.values())
    assert any("kelabooking_readiness_check_ok" in expr for expr in expressions.values())
    assert any('status="5xx"' in expr for expr in expressions.values())
