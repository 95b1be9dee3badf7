"""`make docs`: the dbt documentation site is complete, served on 127.0.0.1, and renders in Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import GRAINS, REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DAILY = "model.watchllm_analytics.usage_aggregations_daily"


@pytest.fixture(scope="module")
def docs(make_db):
    """A small built database, `dbt docs generate` against it, and `dbt docs serve` on a free port."""
    db = make_db("wl_test_docs")
    db.generate(rows=3000, days=3, projects=4, seed=5)
    db.build_models()
    db.dbt("docs", "generate")
    manifest = json.loads((db.last_target / "manifest.json").read_text())
    catalog = json.loads((db.last_target / "catalog.json").read_text())
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable, "-m", "orchestration.cli", "dbt", "docs", "serve",
            "--host", "127.0.0.1", "--port", str(port), "--no-browser",
        ],
        cwd=REPO,
        env={**os.environ, **db.env, "DBT_TARGET_PATH": str(db.last_target)},  # the site `docs generate` wrote
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the CLI runs dbt as a child: stop the whole group
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url)
        yield manifest, catalog, url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:  # a server still finishing a request: stop it for good
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=15)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def chromium(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed: `make setup` as root installs it (apt-get install chromium)")
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--hide-scrollbars",
    ]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=timeout, check=True)


def test_every_model_column_and_macro_is_described_and_the_yaml_matches_the_tables(docs):
    manifest, catalog, _ = docs
    for node in manifest["nodes"].values():
        if node["resource_type"] not in ("model", "seed") or node["package_name"] != "watchllm_analytics":
            continue
        assert node["description"].strip(), f"{node['name']} has no description"
        for column, props in node["columns"].items():
            assert props["description"].strip(), f"{node['name']}.{column} has no description"
        built = catalog["nodes"].get(node["unique_id"])
        if built is not None:  # tables and views; the dashboard function has no catalog entry
            assert set(built["columns"]) == set(node["columns"]), (
                f"{node['name']}: YAML columns {sorted(node['columns'])} != built {sorted(built['columns'])}"
            )
    for macro in manifest["macros"].values():
        if macro["package_name"] == "watchllm_analytics" and "__" not in macro["name"]:
            assert macro["description"].strip(), f"macro {macro['name']} is not documented in a _macros.yml"
    exposures = {e["name"]: e for e in manifest["exposures"].values()}
    assert "model.watchllm_analytics.get_dashboard_stats" in exposures["web_app_dashboard"]["depends_on"]["nodes"]


def test_the_contract_tables_enforce_their_schema(docs):
    manifest, _, _ = docs
    for name in GRAINS:
        node = manifest["nodes"][f"model.watchllm_analytics.{name}"]
        assert node["contract"]["enforced"], name
        assert all(column["data_type"] for column in node["columns"].values()), name


def test_the_served_site_shows_the_lineage_of_the_daily_mart_in_chromium(docs, tmp_path):
    _, _, url = docs
    page = f"{url}/#!/model/{DAILY}"
    dom = chromium("--virtual-time-budget=20000", "--dump-dom", page).stdout
    # the model page, rendered by the site's JavaScript from manifest.json and catalog.json
    assert "usage_aggregations_daily" in dom and "Usage per project and UTC date" in dom, dom[:2000]
    # its lineage: what it is built from and what reads it (the dashboard function, the exposure)
    assert "int_usage_hourly_by_model" in dom
    assert "project_savings_monthly" in dom and "get_dashboard_stats" in dom and "web_app_dashboard" in dom
    # a column description from a shared doc block, and the column types from the catalog
    assert "The tenant: the proxy" in dom and "jsonb" in dom

    from PIL import Image

    shot = tmp_path / "lineage.png"
    chromium("--virtual-time-budget=20000", "--window-size=1400,900", f"--screenshot={shot}", f"{page}?g_v=1")
    image = Image.open(shot).convert("L")
    assert image.size == (1400, 900)
    low, high = image.getextrema()
    assert high - low > 100, "the lineage view rendered blank"
    assert len(set(image.resize((140, 90)).getdata())) > 20, "the lineage view has almost no content"
