"""The search structures stay in step with the chunks through every incremental path.

A Hypothesis state machine adds, edits, deletes and renames files and runs the real
``funcpipe ingest`` in a subprocess — to the end, or SIGKILLed mid-run and resumed by
the next run. After every step: the full-text index holds exactly the chunk rows, the
vector blocks hold exactly their contents (``check()`` finds nothing), and every search
mode returns only chunks stored now. After a run that ended, a word unique to each file
version finds that version's file, and the words of versions edited away or deleted
find nothing.

Slow by design (about a minute): each step is a real process, and a killed run needs a
server slow enough to be caught mid-run.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from funcpipe_rag.index import SEARCH_MODES, Query, open_index
from funcpipe_rag.policies.ledger import ResourceLedger
from funcpipe_rag.serve import EmbeddingServer, FaultConfig
from tests.cli.helpers import CLI, cli_env, run_cli
from tests.indexes import rows

SENTENCES = [
    "The ledger counts every socket the stream opened.",
    "A breaker trips when the failure rate passes its threshold.",
    "Vectors are stored once per content hash and reused.",
    "The walker skips hidden folders and binary files.",
    "Each chunk keeps its offsets into the extracted text.",
    "Retries wait with jitter before the next attempt.",
]


# Kills that landed while the run was still going, and runs that resumed after one:
# the test fails if no example exercised them (a state machine can pass vacuously).
KILLED_MID_RUN: list[int] = []
RESUMED: list[int] = []


def token(file_no: int, version: int) -> str:
    """A word found in exactly one version of one file."""
    return f"qz{file_no}v{version}mark"


def content(file_no: int, version: int) -> str:
    # Shared sentences (reused vectors, identical chunks across files) around the
    # version's own word, so an edit changes some chunks and keeps others. The title
    # changes with each edit too (the index of titles and paths must follow it).
    paragraphs = [f"# Notes, version {version}"]
    for p in range(3):
        body = " ".join(SENTENCES[(file_no + p + i) % len(SENTENCES)] for i in range(3))
        paragraphs.append(f"{body} {token(file_no, version)} closes paragraph {p}.")
    return "\n\n".join(paragraphs) + "\n"


class IndexLifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.base = Path(tempfile.mkdtemp(prefix="fp-state-"))
        self.tree = self.base / "docs"
        self.tree.mkdir()
        self.db = self.base / "x.db"
        self.server = EmbeddingServer(faults=FaultConfig(latency_ms=30)).start()
        self.files: dict[str, tuple[int, int]] = {}  # name -> (file_no, version)
        self.retired: set[str] = set()  # words of versions edited away or deleted
        self.next_no = 0
        self.killed = False

    def teardown(self) -> None:
        self.server.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def _args(self) -> list[str]:
        return [
            "ingest", str(self.tree), "--index", str(self.db), "--url", self.server.url,
            "--embedder", "tei", "--batch-size", "2", "--concurrency", "1",
            "--commit-every", "2", "--chunk-size", "160", "--overlap", "20", "--quiet",
        ]  # fmt: skip

    def _write(self, name: str, file_no: int, version: int) -> None:
        (self.tree / name).write_text(content(file_no, version), encoding="utf-8")
        self.files[name] = (file_no, version)

    # -- the tree ------------------------------------------------------------------

    @initialize()
    def two_files(self) -> None:
        for _ in range(2):
            self._add()

    def _add(self) -> None:
        self._write(f"f{self.next_no}.md", self.next_no, 0)
        self.next_no += 1

    # One rule: a change of the tree, then a run, a killed run or nothing. (Separate
    # rules are not drawn evenly: Hypothesis favours the first ones, and sequences came
    # out all changes and no runs, or the reverse.) Edits and runs come first, so even
    # the simplest sequences edit and run.
    @rule(
        data=st.data(),
        change=st.sampled_from(["edit", "delete", "rename", "add"]),
        then=st.sampled_from(["run", "killed run", "nothing"]),
    )
    def step(self, data: st.DataObject, change: str, then: str) -> None:
        self._change(data, change)
        if then == "run":
            self.run()
        elif then == "killed run":
            self.killed_run(data.draw(st.integers(1, 2)), data.draw(st.booleans()))

    def _change(self, data: st.DataObject, change: str) -> None:
        if change == "add" or not self.files:
            self._add()
            return
        name = data.draw(st.sampled_from(sorted(self.files)))
        file_no, version = self.files[name]
        if change == "edit":
            self.retired.add(token(file_no, version))
            self._write(name, file_no, version + 1)
        elif change == "delete":
            self.retired.add(token(*self.files.pop(name)))
            (self.tree / name).unlink()
        else:
            new = f"renamed-{self.next_no}-{name}"
            self.next_no += 1
            (self.tree / name).rename(self.tree / new)
            self.files[new] = self.files.pop(name)

    # -- runs ----------------------------------------------------------------------

    def run(self) -> None:
        proc = run_cli(*self._args(), timeout=120)
        assert proc.returncode == 0, proc.stderr
        if self.killed:
            RESUMED.append(1)
            self.killed = False
        self._only_current_versions_are_found()

    def killed_run(self, after: int, resume: bool) -> None:
        # A new file gives the run at least three requests to make: the kill lands
        # after the first or second, while the run is storing vectors and chunks.
        self._add()
        start = self.server.stats()["embed_requests"]
        proc = subprocess.Popen(
            [*CLI, *self._args()], env=cli_env(), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while proc.poll() is None and self.server.stats()["embed_requests"] < start + after:
            assert time.monotonic() < deadline
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        if proc.wait(timeout=30) == -signal.SIGKILL:
            KILLED_MID_RUN.append(1)
            self.killed = True
        if resume:  # at once; otherwise a later run resumes, after more changes
            self.search_structures_match_the_chunks()
            self.run()

    # -- what must hold ------------------------------------------------------------

    def _only_current_versions_are_found(self) -> None:
        ledger = ResourceLedger()
        with contextlib.closing(open_index(self.db, None, ledger, readonly=True)) as index:
            for name, (file_no, version) in self.files.items():
                hits = index.search(Query(text=token(file_no, version), mode="lexical", k=50))
                places = {p for h in hits for p in h.paths}
                assert places == {str(self.tree / name)}, (name, places)
            for word in self.retired - {token(*v) for v in self.files.values()}:
                assert index.search(Query(text=word, mode="lexical", k=50)) == [], word

    @invariant()
    def search_structures_match_the_chunks(self) -> None:
        if not self.db.exists():
            return
        chunk_ids = {r[0] for r in rows(self.db, "SELECT id FROM chunks")}
        indexed = {r[0] for r in rows(self.db, "SELECT id FROM chunks_fts_docsize")}
        assert indexed == chunk_ids
        # The title and path index: each document once, as it is now.
        assert sorted(rows(self.db, "SELECT doc_id, title, path FROM documents_fts")) == sorted(
            rows(self.db, "SELECT doc_id, title, path FROM documents")
        )
        live = {r[0] for r in rows(self.db, "SELECT chunk_id FROM chunks")}
        paths = {r[0] for r in rows(self.db, "SELECT path FROM documents")}
        stored = rows(self.db, "SELECT vector FROM vectors LIMIT 3")
        ledger = ResourceLedger()
        with contextlib.closing(open_index(self.db, None, ledger, readonly=True)) as index:
            findings = [f for f in index.check() if f.code != "INDEX/INCOMPLETE"]
            assert findings == [], findings
            words = sorted(self.retired | {token(*v) for v in self.files.values()})
            for blob in stored:
                vector = np.frombuffer(blob[0], dtype="<f4").copy()
                vector /= max(float(np.linalg.norm(vector)), 1e-12)
                for mode in SEARCH_MODES:
                    text = " ".join(words) or "ledger"
                    for hit in index.search(Query(text=text, vector=vector, mode=mode, k=40)):
                        assert set(hit.chunk_ids) <= live, mode
                        assert set(hit.paths) <= paths, mode


IndexLifecycle.TestCase.settings = settings(
    max_examples=4,
    stateful_step_count=8,
    deadline=None,
    derandomize=True,  # the same sequences on every machine: a kill always lands
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_search_structures_stay_in_step_through_runs_kills_and_resumes() -> None:
    IndexLifecycle.TestCase().runTest()
    assert KILLED_MID_RUN and RESUMED, (len(KILLED_MID_RUN), len(RESUMED))
