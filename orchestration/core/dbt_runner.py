"""Run dbt in this project against the resolved database."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestration import settings
from orchestration.core.database import Connection


def dbt_executable() -> str:
    """The dbt next to this interpreter (the project's venv), else the one on PATH."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def run_dbt(conn: Connection, args: Sequence[str], capture: bool = False) -> subprocess.CompletedProcess:
    """`dbt ARGS` from the project directory with this connection's libpq variables."""
    command = [dbt_executable(), *args]
    if args and args[0] not in {"--version", "-v", "--help", "-h"}:
        command += ["--project-dir", str(settings.PROJECT_DIR), "--profiles-dir", str(settings.PROJECT_DIR)]
    env = conn.subprocess_env()
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    return subprocess.run(
        command,
        cwd=settings.PROJECT_DIR,
        env=env,
        text=True,
        capture_output=capture,
        check=False,
    )
