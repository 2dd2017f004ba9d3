import pandas as pd
import pytest

from conftest import lake_leftovers
from ml import lake, lake_storage


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": range(n)})


def _names(root, folder: str) -> list[str]:
    return sorted(e.name for e in lake_storage.storage(root).entries(folder))


def test_write_replaces_partition_whole(lake_root):
    lake.write_partition(lake_root, "curated", "t", "2024-01-02", _frame(5))
    lake.write_partition(lake_root, "curated", "t", "2024-01-02", _frame(2))
    assert lake.read_partition(lake_root, "curated", "t", "2024-01-02")["x"].tolist() == [0, 1]
    assert lake.partition_rows(lake_root, "curated", "t", "2024-01-02") == 2
    assert [name for name in _names(lake_root, "curated/t") if name.startswith(".")] == []


def test_an_error_inside_a_commit_publishes_nothing(lake_root):
    lake.write_partition(lake_root, "curated", "t", "2024-01-02", _frame(3))
    with pytest.raises(RuntimeError):
        with lake.commit(lake_root) as change:
            change.write("curated", "t", "2024-01-02", _frame(1))
            change.write("curated", "u", "2024-01-02", _frame(1))
            (change.folder("reports", "r", "2024-01-02") / "report.json").write_text("{}")
            raise RuntimeError("failed mid-publish")
    assert lake.read_partition(lake_root, "curated", "t", "2024-01-02")["x"].tolist() == [0, 1, 2]
    assert lake.list_partitions(lake_root, "curated", "u") == []
    assert _names(lake_root, "curated/t") == [lake.DELTA_LOG, "ds=2024-01-02"]
    assert lake_storage.storage(lake_root).files_under("reports") == []


def test_a_folder_partition_is_replaced_whole_and_read_back(lake_root):
    """Files as received (a raw drop, with a nested folder) go in and out through the store: a second commit of the
    same day replaces the folder, files it no longer has included."""
    with lake.commit(lake_root) as change:
        folder = change.folder("raw", "drop", "2024-01-02")
        (folder / "a.csv").write_text("x\n1\n")
        (folder / "report").mkdir()
        (folder / "report" / "index.html").write_text("<p>first</p>")
    with lake.commit(lake_root) as change:
        (change.folder("raw", "drop", "2024-01-02") / "b.csv").write_text("x\n2\n")
    with lake.local_folder(lake_root, "raw", "drop", "2024-01-02") as folder:
        assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == ["b.csv"]
        assert (folder / "b.csv").read_text() == "x\n2\n"
    assert lake.list_partitions(lake_root, "raw", "drop") == [lake.as_date("2024-01-02")]
    with lake.commit(lake_root) as change:
        change.remove("raw", "drop", "2024-01-02")
    assert lake.list_partitions(lake_root, "raw", "drop") == []


CRASHING_COMMIT = """
import sys
import pandas as pd
from ml import lake
root, serving_url, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with lake.commit(root, serving_url, label="three tables") as change:
    for table in ("a", "b", "c"):
        for day in ("2024-01-01", "2024-01-02"):
            change.write("curated", table, day, pd.DataFrame({"ds": day, "x": range(n)}))
    change.serve("a", "2024-01-02", "curated")
"""


def _commit_in_subprocess(root, serving_url, n, **env):
    from forked import run_python

    return run_python(CRASHING_COMMIT, [str(root), serving_url, str(n)], timeout=120, **env)


def _state(root) -> set[int]:
    """How many rows each (table, day) partition holds, as a reader sees it (the set has one element when whole)."""
    return {len(lake.read_partition(root, "curated", t, d)) for t in "abc" for d in ("2024-01-01", "2024-01-02")}


def test_a_crash_at_every_commit_boundary_leaves_the_old_day_or_the_new_one(lake_root, tmp_path):
    """Kill the writer (os._exit, as kill -9) at each point between two steps of a commit: a reader then sees all
    three tables old or all new, and recover() leaves the new day (if recorded) in the serving store too and no
    leftovers. The points are not guessed: a traced run lists them."""
    from ml import serving

    root, url = lake_root, f"sqlite:///{tmp_path / 'serving.db'}"
    assert _commit_in_subprocess(root, url, 2).returncode == 0
    trace = tmp_path / "trace.txt"
    assert _commit_in_subprocess(root, url, 2, ECOM_FAULT_TRACE=str(trace)).returncode == 0
    points = trace.read_text().split()
    renames = 6 if lake_storage.storage(root).stages_data_files else 0  # an object store writes data files in place
    assert {p.split("#")[0] for p in points} == {"stage", "record", "apply", "delta", "serve", "done"} | ({"rename"} if renames else set())
    assert len(points) == 6 + 1 + 1 + renames + 3 + 1 + 1  # a data file a table and day, a Delta transaction a table
    previous = 2
    for n, point in enumerate(points, start=3):  # each crash tries to replace the day's 2 x 3 partitions with n rows
        crashed = _commit_in_subprocess(root, url, n, ECOM_CRASH_AT=point)
        assert crashed.returncode == lake.CRASH_EXIT, (point, crashed.stderr[-2000:])
        recorded = point.split("#")[0] not in ("stage", "record")
        assert _state(root) == ({n} if recorded else {previous}), point  # a reader finishes a recorded commit first
        lake.recover(root, url)
        assert lake_leftovers(root) == [], (point, lake_leftovers(root))
        served = len(serving.read_ds(url, "a", "2024-01-02"))
        assert served == len(lake.read_partition(root, "curated", "a", "2024-01-02")), (point, served)
        assert _commit_in_subprocess(root, url, n).returncode == 0  # the next run: the day as it should be
        assert _state(root) == {n}
        previous = n
    for table in "abc":  # what crashed writers left in the tables' folders goes with a vacuum past the retention
        lake.vacuum(root, "curated", table, retention_hours=0)
        data_files = [key for key in lake_storage.storage(root).files_under(f"curated/{table}") if key.startswith("ds=")]
        listed = [key for day in ("2024-01-01", "2024-01-02") for key, _ in lake._day_files(root, "curated", table, day) or []]
        assert sorted(f"curated/{table}/{key}" for key in data_files) == sorted(listed), table


def test_sweep_keeps_a_live_writers_staging_and_removes_a_dead_ones(tmp_path):  # a pid check: local writers
    lake.write_partition(tmp_path, "curated", "t", "2024-01-02", _frame(3))
    folder = tmp_path / "curated" / "t"
    live = folder / f".ds=2024-01-03.stage-1-{lake._owner()}-abc"
    dead = folder / f".ds=2024-01-04.stage-1-p999999999h{lake._owner().split('h')[1]}-abc"  # no such pid here
    live.mkdir()
    dead.mkdir()
    assert lake.sweep(tmp_path) == 1
    assert live.exists() and not dead.exists()


def test_read_range_and_latest(lake_root):
    for day, n in [("2024-01-01", 1), ("2024-01-02", 2), ("2024-01-05", 5)]:
        lake.write_partition(lake_root, "curated", "t", day, _frame(n))
    with pytest.raises(lake.MissingPartitionsError, match=r"2 day\(s\) missing in 2024-01-02..2024-01-05: 2024-01-03..2024-01-04"):
        lake.read_range(lake_root, "curated", "t", "2024-01-02", "2024-01-05")  # missing days are not zeros
    for day in ("2024-01-03", "2024-01-04"):
        lake.write_partition(lake_root, "curated", "t", day, _frame(0))  # published days without rows are zeros
    assert len(lake.read_range(lake_root, "curated", "t", "2023-12-01", "2024-01-05")) == 8  # before the first: fine
    assert len(lake.read_latest(lake_root, "curated", "t", "2024-01-04")) == 0  # the empty day 2024-01-04
    assert lake.list_partitions(lake_root, "curated", "t")[0].isoformat() == "2024-01-01"


def test_unknown_zone_and_bad_date_are_clear_errors(tmp_path):
    with pytest.raises(Exception, match="unknown lake zone 'gold'"):
        lake.partition_dir(tmp_path, "gold", "t", "2024-01-01")
    with pytest.raises(Exception, match="not of the form YYYY-MM-DD"):
        lake.partition_dir(tmp_path, "curated", "t", "01/02/2024")


PUBLISHING = """
import sys
import pandas as pd
from ml import lake
root, sizes = sys.argv[1], [int(n) for n in sys.argv[2].split(",")]
for n in sizes:
    with lake.commit(root, label="three tables") as change:
        for table in ("a", "b", "c"):
            for day in ("2024-01-01", "2024-01-02"):
                change.write("curated", table, day, pd.DataFrame({"ds": day, "x": range(n)}))
"""


def _publishing(root, sizes: list[int]):
    import os
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-c", PUBLISHING, str(root), ",".join(map(str, sizes))], env=os.environ.copy(), stderr=subprocess.PIPE, text=True)


def _one_version_each(root) -> bool:
    """Each table's day is backed by exactly one data file (a replaced day's rows are not read beside the new ones)."""
    return all(len(lake._day_files(root, "curated", t, d) or []) == 1 for t in "abc" for d in ("2024-01-01", "2024-01-02"))


def test_two_publishes_of_the_same_day_at_once_leave_one_whole_version(lake_root):
    """Two writers publish the same days of three tables at the same moments: every day ends whole, from one of them,
    with exactly one version of its rows in each table."""
    root = lake_root
    writers = [_publishing(root, [4] * 8), _publishing(root, [7] * 8)]
    for writer in writers:
        assert writer.wait(timeout=300) == 0, writer.stderr.read()[-2000:]
    assert _state(root) in ({4}, {7})
    assert _one_version_each(root)
    assert lake.pending_commits(root) == [] and lake.recover(root, None) == {"commits_finished": 0, "leftovers_removed": 0}


def test_a_reader_during_publishes_sees_the_old_day_or_the_new_one(lake_root):
    """While a writer replaces the same days again and again with another row count, a reader (holding the lake's
    read lock across its reads of the three tables, as read_range does) always sees one count everywhere."""
    root = lake_root
    assert _publishing(root, [1]).wait(timeout=120) == 0
    writer = _publishing(root, [2, 3, 4, 5, 6] * 6)
    seen = set()
    while writer.poll() is None:
        with lake.reading(root):
            state = _state(root)
            assert len(state) == 1 and _one_version_each(root), state
        seen |= state
    assert writer.returncode == 0, writer.stderr.read()[-2000:]
    assert len(seen) > 1  # the reads did overlap the publishes
    assert _state(root) == {6}


def test_a_replaced_days_files_are_vacuumed_and_its_current_rows_stay(lake_root, monkeypatch):
    """Replacing a day keeps the old file for time travel until a vacuum past the retention deletes it; the table
    vacuums itself every VACUUM_EVERY versions."""
    vacuumed = []
    with monkeypatch.context() as patched:
        patched.setattr(lake, "VACUUM_EVERY", 3)
        patched.setattr(lake, "_vacuum", lambda opened, retention_hours=None: vacuumed.append(opened.table.version()) or [])
        for n in (5, 2, 4):
            lake.write_partition(lake_root, "curated", "t", "2024-01-02", _frame(n))
    assert vacuumed == [3]
    store = lake_storage.storage(lake_root)
    assert len([k for k in store.files_under("curated/t") if k.startswith("ds=")]) == 3
    assert len(lake.read_partition(lake_root, "curated", "t", "2024-01-02", version=2)) == 2  # a replaced version, by time travel
    removed = lake.vacuum(lake_root, "curated", "t", retention_hours=0)
    assert len(removed) == 2 and len([k for k in store.files_under("curated/t") if k.startswith("ds=")]) == 1
    assert lake.read_partition(lake_root, "curated", "t", "2024-01-02")["x"].tolist() == [0, 1, 2, 3]
