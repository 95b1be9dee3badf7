"""The dbt project handle and the dbt CLI resource Dagster runs it with."""

from __future__ import annotations

import os

from dagster_dbt import DbtCliResource, DbtProject

from orchestration import settings
from orchestration.core import database
from orchestration.core.dbt_runner import dbt_executable

dbt_project = DbtProject(project_dir=settings.PROJECT_DIR, profiles_dir=settings.PROJECT_DIR)
# `dg dev` re-parses the project on start; `make setup` runs `dbt parse` for everything else,
# and a checkout that never ran it parses here (dbt parse needs no database and no network).
dbt_project.prepare_if_dev()
if not dbt_project.manifest_path.exists():
    dbt_project.preparer.prepare(dbt_project)


def use_resolved_database() -> None:
    """Point dbt (a subprocess that inherits the environment) at the embedded or PG* database.

    Called at run time, never at import, so loading the definitions needs no database.
    """
    os.environ.update(database.resolve().env)


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(settings.PROJECT_DIR),
        dbt_executable=dbt_executable(),
        **({"target": settings.dbt_target()} if settings.dbt_target() else {}),
    )
