"""A Spark that is not in the client's process, for the tests and `make bench-spark`: Spark's own
HiveThriftServer2 from the pyspark installation on a free port of 127.0.0.1, with its own warehouse
and Derby metastore and the PostgreSQL JDBC driver on its classpath; and a TCP port on 127.0.0.1
that forwards to the embedded Postgres' Unix socket, as a cluster reaches Postgres over the network."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from orchestration.spark.session import session_settings

JDBC_DRIVER = Path("/usr/share/java/postgresql.jar")  # Debian's libpostgresql-jdbc-java (make setup-spark)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while chunk := source.recv(1 << 16):
            sink.sendall(chunk)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def tcp_port_for_unix_socket(path: str) -> Iterator[int]:
    """A port on 127.0.0.1 whose every connection is forwarded to the Unix socket at `path`."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(path)
            except OSError:
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pipe, args=(source, sink), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        listener.close()


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@contextlib.contextmanager
def thrift_server(work_dir: Path, cores: int = 2, memory: str = "2g", java_options: str = "") -> Iterator[int]:
    """HiveThriftServer2 on a free port of 127.0.0.1 until the block ends; yields the port."""
    port = free_port()
    work_dir.mkdir(parents=True, exist_ok=True)
    settings = {
        # the SQL settings of profiles.yml's spark target as the server's own defaults
        # (server_side_parameters reach only dbt's sessions; the server's are everyone's)
        **{name: value for name, value in session_settings().items() if name.startswith(("spark.sql.", "spark.ui."))},
        "spark.sql.warehouse.dir": str(work_dir / "warehouse"),
        # the JDBC driver on the JVM's own classpath, as Spark's JDBC guide asks: through `spark.jars`
        # alone, the driver's batched inserts failed to load their classes
        "spark.driver.extraClassPath": str(JDBC_DRIVER),
        "spark.executor.extraClassPath": str(JDBC_DRIVER),
    }
    command = [
        str(spark_home() / "bin" / "spark-submit"),
        "--class",
        "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2",
        "--master",
        f"local[{cores}]",
        "--driver-memory",
        memory,
        "--driver-java-options",
        f"-Dderby.system.home={work_dir / 'metastore'} {java_options}".strip(),
        *(arg for name, value in settings.items() for arg in ("--conf", f"{name}={value}")),
        "--hiveconf",
        f"hive.server2.thrift.port={port}",
        "--hiveconf",
        "hive.server2.thrift.bind.host=127.0.0.1",
        "spark-internal",
    ]
    env = {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1"}
    env.pop("JAVA_TOOL_OPTIONS", None)
    log_path = work_dir / "thrift-server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(command, cwd=work_dir, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Thrift server did not start: {log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield port
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def available() -> str | None:
    """Why a Thrift server cannot run here, or None."""
    if shutil.which("java") is None:
        return "no java: run `make setup-spark`"
    if not JDBC_DRIVER.exists():
        return f"no {JDBC_DRIVER}: run `make setup-spark`"
    return None
