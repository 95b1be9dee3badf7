"""`make lint`'s SQL half: sqlfluff over the SQL dbt compiled for the models, every macro expanded.

A model materialized as a PL/pgSQL function (get_dashboard_stats, int_usage_local_days) compiles to a
function body, which sqlfluff cannot parse as a whole: each of its `return query` statements is
linted on its own, so the queries the function runs are checked like every model's.

usage: python scripts/lint_sql.py COMPILED_MODELS_DIR
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

RETURN_QUERY = re.compile(r"\breturn\s+query\s+(.*?);\s*(?=\n\s*(end|return|if|$))", re.DOTALL | re.IGNORECASE)


def statements(path: Path) -> list[tuple[str, str]]:
    """(name, SQL) of what to lint in one compiled model: the file, or a function body's queries."""
    text = path.read_text()
    if not re.search(r"^\s*(#variable_conflict|declare|begin)\b", text, re.MULTILINE):
        return [(path.name, text)]
    found = [match.group(1) for match in RETURN_QUERY.finditer(text)]
    if not found:
        raise SystemExit(f"{path}: a function body without a `return query` statement to lint")
    return [(f"{path.stem}__query_{n}.sql", query + "\n") for n, query in enumerate(found, start=1)]


def main(compiled: str) -> int:
    root = Path(compiled)
    models = sorted(
        path for path in root.rglob("*.sql") if not any(part.endswith(".yml") for part in path.relative_to(root).parts)
    )
    if len(models) < 10:
        raise SystemExit(f"{root}: only {len(models)} compiled models; run `dbt compile` first")
    with tempfile.TemporaryDirectory() as scratch:
        files = []
        for path in models:
            for name, sql in statements(path):
                target = Path(scratch) / path.parent.relative_to(root) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(sql)
                files.append(str(target))
        sqlfluff = Path(sys.executable).with_name("sqlfluff")
        config = Path(__file__).resolve().parents[1] / ".sqlfluff"
        result = subprocess.run(
            [str(sqlfluff), "lint", "--nocolor", "--processes", "2", "--config", str(config), *files]
        )
        return result.returncode


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
