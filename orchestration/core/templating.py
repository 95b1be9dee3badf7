"""Jinja2 templates for what people read as HTML (the savings report, alert emails), with autoescape:
every value, tenant labels included, is escaped for HTML where it is shown. Templates live in
orchestration/core/templates/."""

from __future__ import annotations

from functools import cache

import jinja2

from orchestration.core import formatting, labels


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestration.core", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        visible=labels.visible,
        money=formatting.money,
        percent=formatting.percent,
        ms=formatting.milliseconds,
        data_value=lambda value: "" if value is None else str(value),
    )
    return env


def render(name: str, **context) -> str:
    return environment().get_template(name).render(**context)
