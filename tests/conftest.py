"""Shared fixtures. Airflow reads its configuration at import, so its environment is set here, first."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="ecom-airflow-"))
os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "GX_ANALYTICS_ENABLED": "False",
    }
)

from ml.settings import Settings, get_settings  # noqa: E402 (Airflow reads its environment at import)

POSTGRES_URL = os.environ.get("ECOM_TEST_POSTGRES_URL")
"""Set (as .ci/run does) to run the production-configuration tests against a PostgreSQL server."""

LAKE_BASE = os.environ.setdefault("ECOM_TEST_LAKE_BASE", os.environ.pop("ECOM_LAKE_URI", "")).rstrip("/")
"""``ECOM_LAKE_URI=s3://bucket/prefix make test`` runs the suite with every test's lake in that object store: a
bucket of its own per ECOM_HOME, ``<bucket>-<hash of the home>`` (see :func:`lake_env`). Without AWS_ENDPOINT_URL the
session starts moto's S3 server on the loopback address for it; commits lock through ECOM_LAKE_LOCK_URL, else
ECOM_TEST_POSTGRES_URL."""
S3_SUITE = LAKE_BASE.startswith("s3://")
if LAKE_BASE and not S3_SUITE:
    raise RuntimeError(f"ECOM_LAKE_URI={LAKE_BASE}: the suite runs on a local lake per test, or on s3://bucket/prefix")


def lake_env(home: Path) -> dict[str, str]:
    """The lake of the settings rooted at ``home``: in an S3 suite, ECOM_LAKE_URI's prefix in a bucket of its own
    (created here; moto's server lists a bucket's keys by scanning them all, so one bucket for every test's lake
    makes each listing slower than the last); nothing to set otherwise (the default, ``home/lake``)."""
    _asked_for_the_store()
    if not S3_SUITE:
        return {}
    import hashlib
    from urllib.parse import urlsplit

    parts = urlsplit(LAKE_BASE)
    bucket = f"{parts.netloc}-{hashlib.sha1(str(Path(home).resolve()).encode()).hexdigest()[:16]}"
    if bucket not in _buckets:
        import boto3

        client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass
        _buckets.add(bucket)
    return {"ECOM_LAKE_URI": f"s3://{bucket}{parts.path}".rstrip("/")}


_buckets: set[str] = set()
_store_asks = 0
"""How many times a test or fixture asked where a lake goes (see :class:`_StoreUse`)."""


def _asked_for_the_store() -> None:
    global _store_asks
    _store_asks += 1


def drop_lake(settings: Settings) -> None:
    """Delete an S3 suite test's lake when the test is done (moto's server keeps every object in memory)."""
    if S3_SUITE and isinstance(settings.lake, str):
        from ml import lake_storage

        lake_storage.storage(settings.lake).delete("")


def export_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Export where settings live, so that code reading the environment (DAG tasks, subprocesses) agrees."""
    monkeypatch.setenv("ECOM_HOME", str(settings.home))
    for name, value in lake_env(settings.home).items():
        monkeypatch.setenv(name, value)


def lake_leftovers(lake_root: Path | str) -> list[str]:
    """Hidden files (staged, replaced, temporary) and commit records of a lake: none once every commit is applied
    or recovered."""
    from ml import lake, lake_storage

    return [
        key
        for key in lake_storage.storage(lake_root).files_under("")
        if (key.startswith(lake.COMMITS + "/") or any(part.startswith(".") for part in key.split("/"))) and not key.endswith(lake_storage.LOCK_FILE)
    ]


def put_partition_files(lake_root: str, zone: str, table: str, ds, folder: Path) -> None:
    """Make a committed folder partition of an object-store lake hold exactly ``folder``'s files, outside any commit:
    a drop changed in transit, as a test spoils it."""
    from ml import lake, lake_storage

    store = lake_storage.storage(lake_root)
    assert isinstance(store, lake_storage.S3Storage)
    key = lake.partition_key(zone, table, ds)
    store.delete(key)
    store.seal_folder(key, Path(shutil.copytree(folder, Path(tempfile.mkdtemp()) / "upload")))


def copy_home(source: Path, target: Path) -> None:
    """Copy a platform's home, and its lake when that is in an object store (replacing what ``target``'s lake held)."""
    _asked_for_the_store()
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    if S3_SUITE:
        import boto3

        from ml import lake_storage

        origin, copy = lake_storage.storage(lake_env(source)["ECOM_LAKE_URI"]), lake_storage.storage(lake_env(target)["ECOM_LAKE_URI"])
        assert isinstance(origin, lake_storage.S3Storage) and isinstance(copy, lake_storage.S3Storage)
        # only the objects that differ, as server-side copies, many at once: a crash test puts its lake back after
        # every fault point, and a crash changes a few of its hundreds of objects. Through boto3, which names keys
        # as they are: pyarrow's paths cannot name the empty folder markers it leaves (``_commits/``)
        client = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL"))
        (bucket, prefix), (copy_bucket, copy_prefix) = _bucket_and_prefix(origin.base), _bucket_and_prefix(copy.base)
        wanted, held = _objects(client, bucket, prefix), _objects(client, copy_bucket, copy_prefix)
        changed = [key for key, tag in wanted.items() if held.get(key) != tag]
        lake_storage.io_map(
            lambda key: client.copy_object(Bucket=copy_bucket, Key=copy_prefix + key, CopySource={"Bucket": bucket, "Key": prefix + key}), changed
        )
        stale = [{"Key": copy_prefix + key} for key in held if key not in wanted]
        for start in range(0, len(stale), 1000):
            client.delete_objects(Bucket=copy_bucket, Delete={"Objects": stale[start : start + 1000]})


def _bucket_and_prefix(base: str) -> tuple[str, str]:
    """``bucket/some/prefix`` -> ("bucket", "some/prefix/"); a lake at a bucket's root has the prefix ""."""
    bucket, _, prefix = base.partition("/")
    return bucket, f"{prefix}/" if prefix else ""


def _objects(client, bucket: str, prefix: str) -> dict[str, tuple[str, int]]:
    """The objects under ``prefix`` (keys relative to it), each with its ETag (an MD5 of a whole object's bytes) and
    size."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"][len(prefix) :]: (item["ETag"], item["Size"]) for page in pages for item in page.get("Contents", [])}


def committed_digests(lake_root: Path | str, zone: str) -> dict[str, str]:
    """The committed rows of every table and day of a lake zone, hashed: a rerun writes new files of the same rows,
    so files are not compared."""
    import hashlib

    import pandas as pd

    from ml import lake, lake_storage

    found = {}
    with lake.reading(lake_root):  # one hold: each table is checked against its log once, not once a day
        for table in sorted(e.name for e in lake_storage.storage(lake_root).entries(zone) if e.is_dir):
            for day in lake.list_partitions(lake_root, zone, table):
                frame = lake.read_partition(lake_root, zone, table, day)
                digest = hashlib.sha256(pd.util.hash_pandas_object(frame).values.tobytes() + str(list(frame.dtypes)).encode())
                found[f"{table}/{day}"] = digest.hexdigest()
    return found


def make_settings(home: Path, **extra: str) -> Settings:
    env = {"ECOM_HOME": str(home), "ECOM_SHARED_DATA": os.environ.get("ECOM_SHARED_DATA", str(REPO.parent / "shared" / "data"))}
    return get_settings(env | lake_env(home) | extra)


@pytest.fixture(autouse=True)
def _mlflow_environment_restored():
    """mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI to os.environ, where code reading the environment
    (the DAGs' get_settings()) would find an earlier test's MLflow store: restore it after every test."""
    names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {name: os.environ.get(name) for name in names}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings rooted in a fresh folder; exported so code that reads the environment agrees."""
    s = make_settings(tmp_path / "ecom")
    export_settings(s, monkeypatch)
    monkeypatch.setenv("ECOM_SHARED_DATA", str(s.shared_data_dir))
    yield s
    drop_lake(s)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = make_settings(Path(tempfile.gettempdir())).shared_data_dir
    if not path.exists():
        pytest.fail(f"the public datasets are expected at {path} (set ECOM_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not POSTGRES_URL:
        pytest.skip("ECOM_TEST_POSTGRES_URL is not set: production-configuration test not requested on this machine")
    return POSTGRES_URL


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


S3_TEST_BUCKET = "ecom-test"


def _start_s3_server() -> tuple[subprocess.Popen, str]:
    """moto's S3 server on a free loopback port, with the bucket of the session's lakes."""
    import time
    import urllib.request

    import boto3

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(REPO / "docker" / "loopback_s3.py"), "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError(f"moto's S3 server did not start on {endpoint}") from None
            time.sleep(0.2)
    boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1").create_bucket(
        Bucket=S3_TEST_BUCKET
    )
    return server, endpoint


TEST_S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "us-east-1"}
_suite_server: subprocess.Popen | None = None


def pytest_configure(config: pytest.Config) -> None:
    """An S3 suite without an endpoint gets moto's server for the session, before any test reads the settings."""
    global _suite_server
    if config.getoption("record_store_free"):
        config.pluginmanager.register(_StoreUse(config), "ecom-store-use")
    if not S3_SUITE:
        return
    lock_url = os.environ.get("ECOM_LAKE_LOCK_URL") or POSTGRES_URL
    if not lock_url:
        raise pytest.UsageError("an S3 suite (ECOM_LAKE_URI=s3://...) needs ECOM_LAKE_LOCK_URL or ECOM_TEST_POSTGRES_URL for the lake's commit lock")
    os.environ["ECOM_LAKE_LOCK_URL"] = lock_url
    if _xdist_controller(config):
        return  # each pytest-xdist worker starts a server of its own: one moto process would serialize them
    if not os.environ.get("AWS_ENDPOINT_URL"):
        _suite_server, endpoint = _start_s3_server()
        os.environ.update(TEST_S3_ENV | {"AWS_ENDPOINT_URL": endpoint})


def _xdist_controller(config: pytest.Config) -> bool:
    """Whether this process hands the tests to pytest-xdist workers (``-n N``, N > 0) instead of running them."""
    return not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ecom")
    group.addoption(
        "--record-store-free",
        metavar="FILE",
        help="write to FILE the ids of the tests that passed without asking lake_env where a lake goes, nor using a fixture that did",
    )
    group.addoption(
        "--skip-store-free",
        metavar="FILE",
        help="deselect the tests FILE lists (make test's S3 pass: those run the same whatever ECOM_LAKE_URI says)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("runs_first") is None)  # stable: the rest keep their order
    listed = config.getoption("skip_store_free")
    if not listed:
        return
    store_free = set(Path(listed).read_text().split())
    skipped = [item for item in items if item.nodeid in store_free]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if item.nodeid not in store_free]


class _StoreUse:
    """Which tests use the suite's store: a test's lake goes to S3 in the S3 pass only through :func:`lake_env` (the
    settings of a home, and a home's copy, ask it where the lake is), so a test that passed without asking it, itself
    or through a fixture, runs the same in both passes; its lakes, if any, are local or explicitly in S3 either way.

    Where a test runs (this process, or a pytest-xdist worker) its teardown report carries whether it asked; the
    process that gathers the reports (this one, or xdist's controller) writes the list."""

    STORE_USED = "ecom_store_used"

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.store_fixtures: set[str] = set()
        self.asks_before_test = 0
        self.store_free: list[str] = []
        self.passed: set[str] = set()
        self.not_passed: set[str] = set()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
        before = _store_asks
        yield
        if _store_asks > before:
            self.store_fixtures.add(fixturedef.argname)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        self.asks_before_test = _store_asks

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        if call.when == "teardown":
            used = _store_asks > self.asks_before_test or bool(self.store_fixtures & set(getattr(item, "fixturenames", ())))
            outcome.get_result().user_properties.append((self.STORE_USED, used))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """A test counts as passed when its call passed and none of its phases failed or skipped (so a test skipped
        here runs in the S3 pass). The teardown report, the last, says whether it asked for the store."""
        if report.failed or report.skipped:
            self.not_passed.add(report.nodeid)
            self.passed.discard(report.nodeid)
        elif report.when == "call" and report.nodeid not in self.not_passed:
            self.passed.add(report.nodeid)
        elif report.when == "teardown" and report.nodeid in self.passed and not dict(report.user_properties).get(self.STORE_USED, True):
            self.store_free.append(report.nodeid)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(self.config, "workerinput"):
            return  # an xdist worker: its reports went to the controller
        Path(self.config.getoption("record_store_free")).write_text("".join(f"{nodeid}\n" for nodeid in self.store_free))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _suite_server is not None:
        _suite_server.terminate()
        _suite_server.wait(timeout=30)


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """An S3 server on the loopback address with the bucket S3_TEST_BUCKET: the S3 suite's, else one of its own."""
    if _suite_server is not None:
        yield os.environ["AWS_ENDPOINT_URL"]
        return
    server, endpoint = _start_s3_server()
    yield endpoint
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture
def s3_lake(s3_endpoint: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh lake in the S3 server (its own prefix), locked through PostgreSQL; subprocesses inherit the variables."""
    import uuid

    for name, value in (TEST_S3_ENV | {"AWS_ENDPOINT_URL": s3_endpoint, "ECOM_LAKE_LOCK_URL": postgres_url}).items():
        monkeypatch.setenv(name, value)
    return f"s3://{S3_TEST_BUCKET}/{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["local", "s3"])
def lake_root(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """The lake on local disk, then in an S3 object store: the lake's guarantees are tested on both."""
    return tmp_path / "lake" if request.param == "local" else request.getfixturevalue("s3_lake")


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """An Airflow metadata database (SQLite) in a temporary AIRFLOW_HOME, migrated once per session."""
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    yield _AIRFLOW_HOME
    shutil.rmtree(_AIRFLOW_HOME, ignore_errors=True)
