from typer.testing import CliRunner

from ml.cli import app

runner = CliRunner()


def test_settings_lists_the_configuration(settings):
    result = runner.invoke(app, ["settings"])
    assert result.exit_code == 0
    assert f"home = {settings.home}" in result.output.splitlines()
    assert f"serving_url = sqlite:///{settings.home / 'serving.db'}" in result.output.splitlines()


def test_ingest_then_bad_source_gives_a_clear_error(settings):
    ok = runner.invoke(app, ["ingest", "--scale", "tiny", "--ds", "2024-01-20", "--backfill-days", "2"])
    assert ok.exit_code == 0, ok.output
    assert (settings.lake_dir / "curated" / "events" / "ds=2024-01-20").exists()
    bad = runner.invoke(app, ["ingest", "--source", "files", "--ds", "2024-01-20"])
    assert bad.exit_code == 1 and "needs a folder" in bad.output
    unknown = runner.invoke(app, ["ingest", "--source", "erp"])
    assert unknown.exit_code == 1 and "unknown source 'erp'" in unknown.output
