"""Alerts: rules over the built aggregates, their state in analytics.alert_events, and their delivery.

docs/alerts-and-reports.md is the user's page; docs/contract.md section 12 the interface.

- `rules`: which conditions hold now, judged per project from the daily marts (never usage_logs).
- `state`: `check` turns conditions into firings (once), resolves firings whose condition is gone,
  and keeps cooldowns; then calls `delivery`.
- `delivery`: sends undelivered firings to the webhook and by email, records every attempt, backs off.
- `rendering`: the texts people and scripts read (Slack-escaped webhook text, email, summary, JSON).
"""

from orchestration.core.alerts.rendering import summary_lines, to_json
from orchestration.core.alerts.rules import Condition, Evaluation, evaluate
from orchestration.core.alerts.state import CheckResult, check, recent_events

__all__ = [
    "CheckResult",
    "Condition",
    "Evaluation",
    "check",
    "evaluate",
    "recent_events",
    "summary_lines",
    "to_json",
]
