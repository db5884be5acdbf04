"""A damaged, altered or read-only index: one clear line, never a traceback, never a
silent "repair" into a lie; ``verify`` reports the damage as a finding."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.cli.helpers import CLI, cli_env, prose, run_cli, write_tree


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tree and a clean index of it (copied by each test before it is damaged)."""
    base = tmp_path_factory.mktemp("built")
    tree = write_tree(base / "docs", {f"f{i:02}.md": prose(i, 20) for i in range(60)})
    db = base / "x.db"
    proc = run_cli("ingest", str(tree), "--index", str(db), "--report", "none")
    assert proc.returncode == 0, proc.stderr
    return tree, db


def copy_index(built: tuple[Path, Path], tmp_path: Path) -> Path:
    db = tmp_path / "x.db"
    shutil.copy(built[1], db)
    return db


def one_clear_line(stderr: str, *words: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], lines[0]


def damage_pages(db: Path, n: int = 3, seed: int = 7) -> None:
    """Overwrite ``n`` random pages in the middle of the file with random bytes."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    pages = len(data) // page
    rng = random.Random(seed)
    for p in rng.sample(range(pages // 4, 3 * pages // 4), n):
        data[p * page : (p + 1) * page] = rng.randbytes(page)
    db.write_bytes(bytes(data))


def test_damaged_pages_are_one_clear_line_for_every_command(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    tree, _ = built
    db = copy_index(built, tmp_path)
    damage_pages(db)
    before = db.read_bytes()

    verify = run_cli("verify", "--index", str(db), "--json")
    assert verify.returncode == 1
    codes = json.loads(verify.stdout)["by_code"]
    assert set(codes) & {"INDEX/INTEGRITY", "INDEX/DAMAGED"}, codes

    search = run_cli("search", "stream chunk index", "--index", str(db))
    assert search.returncode == 2
    one_clear_line(search.stderr, "damaged", "verify")

    ingest = run_cli("ingest", str(tree), "--index", str(db), "--report", "none")
    assert ingest.returncode == 2  # a run never adds to a damaged file and calls it stored
    one_clear_line(ingest.stderr, "damaged")
    assert db.read_bytes() == before


@pytest.mark.parametrize("table", ["chunks", "vectors", "documents", "meta"])
def test_a_dropped_table_is_refused_and_never_recreated(
    built: tuple[Path, Path], tmp_path: Path, table: str
) -> None:
    tree, _ = built
    db = copy_index(built, tmp_path)
    conn = sqlite3.connect(db)
    conn.execute(f"DROP TABLE {table}")
    conn.commit()
    conn.close()

    ingest = run_cli("ingest", str(tree), "--index", str(db), "--report", "none")
    assert ingest.returncode == 2
    one_clear_line(ingest.stderr, f"table {table} is missing")
    conn = sqlite3.connect(db)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    finally:
        conn.close()
    assert table not in tables  # not silently re-created

    search = run_cli("search", "stream", "--index", str(db))
    assert search.returncode == 2
    one_clear_line(search.stderr, f"table {table} is missing")

    verify = run_cli("verify", "--index", str(db), "--json")
    assert verify.returncode == 1
    assert json.loads(verify.stdout)["by_code"] == {"INDEX/DAMAGED": 1}


def test_a_missing_meta_key_and_a_foreign_database_are_refused(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    db = copy_index(built, tmp_path)
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM meta WHERE key = 'chunker'")
    conn.commit()
    conn.close()
    search = run_cli("search", "stream", "--index", str(db))
    assert search.returncode == 2
    one_clear_line(search.stderr, "meta lacks chunker")

    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    for args in (("search", "x"), ("ingest", str(built[0]), "--report", "none")):
        proc = run_cli(*args, "--index", str(other))
        assert proc.returncode == 2
        one_clear_line(proc.stderr, "not a funcpipe index")

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(random.Random(1).randbytes(20000))
    proc = run_cli("search", "x", "--index", str(garbage))
    assert proc.returncode == 2
    one_clear_line(proc.stderr, str(garbage))


def _read_only(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``folder`` mounted read-only (a private mount namespace)."""
    script = (
        f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" && exec "$@"'
    )
    proc = subprocess.run(
        ["unshare", "--mount", "--map-root-user", "sh", "-c", script, "sh", *CLI, *args],
        capture_output=True, text=True, timeout=60, env=cli_env(), check=False,
    )  # fmt: skip
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_an_index_on_read_only_media_can_be_searched_and_verified(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    tree, original = built
    writable = run_cli("search", "garden recipe", "--index", str(original), "--json")
    assert writable.returncode == 0
    media = tmp_path / "media"
    media.mkdir()
    db = copy_index(built, media)  # the file alone, as a copy to a DVD or a snapshot holds it
    assert sorted(p.name for p in media.iterdir()) == ["x.db"]

    search = _read_only(media, "search", "garden recipe", "--index", str(db), "--json")
    assert search.returncode == 0, search.stderr
    assert search.stdout == writable.stdout
    verify = _read_only(media, "verify", "--index", str(db), str(tree))
    assert verify.returncode == 0, verify.stderr
    ingest = _read_only(media, "ingest", str(tree), "--index", str(db), "--report", "none")
    assert ingest.returncode in (1, 2)
    one_clear_line(ingest.stderr, str(db))


def test_read_only_media_with_an_unfinished_log_says_what_to_do(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    media = tmp_path / "media"
    media.mkdir()
    db = copy_index(built, media)
    # A writer killed mid-run leaves its write-ahead log beside the file.
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("UPDATE documents SET run_id = 'x'")
    conn.commit()
    shutil.copy(db.with_name("x.db-wal"), tmp_path / "wal")
    conn.close()
    shutil.copy(tmp_path / "wal", db.with_name("x.db-wal"))
    proc = _read_only(media, "search", "garden", "--index", str(db))
    assert proc.returncode == 2
    one_clear_line(proc.stderr, "read-only", "x.db-wal")


def test_an_index_of_the_older_schema_is_upgraded_in_place_by_ingest(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    tree, _ = built
    db = copy_index(built, tmp_path)
    conn = sqlite3.connect(db)
    for table, column in (("documents", "reader"), ("documents", "encoding"),
                          ("documents", "title"), ("documents", "note"),
                          ("chunks", "section"), ("chunks", "page")):  # fmt: skip
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    conn.commit()
    conn.close()

    search = run_cli("search", "garden", "--index", str(db))
    assert search.returncode == 2
    one_clear_line(search.stderr, "older schema version 1", "funcpipe ingest")

    report = tmp_path / "r.json"
    ingest = run_cli("ingest", str(tree), "--index", str(db), "--report", "none",
                     "--report-file", str(report))  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr
    chunks = json.loads(report.read_text())["chunks"]
    assert chunks["embedded"] == 0 and chunks["reused"] == chunks["stored"] > 0
    assert run_cli("search", "garden", "--index", str(db)).returncode == 0
    assert run_cli("verify", "--index", str(db), str(tree)).returncode == 0
