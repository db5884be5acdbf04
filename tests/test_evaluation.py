"""eval metrics against values worked out by hand, and the labelled-set file format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from funcpipe_rag.errors import ConfigError
from funcpipe_rag.evaluation import load_queries, score_ranking, summarise
from tests.cli.helpers import SAMPLE_CORPUS, run_cli, write_tree

NONE: frozenset[str] = frozenset()


def test_one_ranking_by_hand() -> None:
    # answers at ranks 2 (a), 4 (b) and 5 (a again: already counted) of 2 labels
    s = score_ranking("q", "m", [NONE, {"a"}, NONE, {"b"}, {"a"}], labels=2)  # type: ignore[list-item]
    assert s.first == 2 and s.rr == 0.5
    assert s.hits_at == (0.0, 1.0, 1.0)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    assert s.ndcg == pytest.approx(dcg / (1 + 1 / math.log2(3)))  # 0.6509


def test_no_answer_within_ten_scores_zero() -> None:
    ranked = [NONE] * 10 + [frozenset({"a"})]
    s = score_ranking("q", "m", ranked, labels=1)
    assert (s.first, s.rr, s.ndcg, s.hits_at) == (None, 0.0, 0.0, (0.0, 0.0, 0.0))


def test_one_hit_returning_two_labels_and_the_means() -> None:
    both = score_ranking("q1", "m", [frozenset({"a", "b"})], labels=2)
    assert both.ndcg == pytest.approx(1 / (1 + 1 / math.log2(3)))
    first = score_ranking("q2", "m", [frozenset({"x"})], labels=1)
    m = summarise("m", [both, first])
    assert m.hits_at == (1.0, 1.0, 1.0) and m.mrr == 1.0
    assert m.ndcg == pytest.approx((both.ndcg + 1.0) / 2)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"paths": ["a.md"]}', "'query' must be a non-empty string"),
        ('{"query": "x"}', "give the 'paths' or 'chunk_ids'"),
        ('{"query": "x", "paths": [3]}', "'paths' must be a list"),
    ],
)
def test_a_bad_line_names_its_number(tmp_path: Path, line: str, message: str) -> None:
    f = tmp_path / "q.jsonl"
    f.write_text('{"query": "fine", "path": "a.md"}\n\n' + line + "\n")
    with pytest.raises(ConfigError, match=rf"q.jsonl:3: .*{message}"):
        load_queries(f)


def test_the_sample_set_is_valid_and_names_files_that_exist() -> None:
    queries = load_queries(SAMPLE_CORPUS / ".eval" / "queries.jsonl")
    assert len(queries) >= 40
    assert len({q.id for q in queries}) == len(queries)
    for q in queries:
        for p in q.paths:
            assert (SAMPLE_CORPUS / p).is_file(), (q.id, p)


def test_eval_through_the_cli_on_a_tiny_index_by_hand(tmp_path: Path) -> None:
    # Three one-chunk files. Lexically, "apple" ranks orchard.md (three apples) above
    # pantry.md (one apple, same length); "zebra" is in no file.
    tree = write_tree(
        tmp_path / "docs",
        {
            "orchard.md": "apple apple apple trees grow in rows beside the old wall\n",
            "pantry.md": "one apple sits on a shelf beside jars of beans and rice\n",
            "river.md": "the river runs cold and clear under the stone bridge\n",
        },
    )
    db = tmp_path / "x.db"
    assert run_cli("ingest", str(tree), "--index", str(db), "--quiet").returncode == 0
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        "\n".join(
            json.dumps(q)
            for q in (
                {"id": "first", "query": "cold river", "paths": ["docs/river.md"]},
                {"id": "second", "query": "apple", "paths": ["pantry.md"]},
                {"id": "missed", "query": "zebra", "paths": ["orchard.md"]},
                {"id": "unknown", "query": "bridge", "paths": ["nowhere.md"]},
            )
        )
    )
    proc = run_cli("eval", str(queries), "--index", str(db), "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "funcpipe.eval/1" and doc["queries"] == 4
    assert set(doc["modes"]) == {"hybrid", "vector", "lexical"}
    lexical = doc["modes"]["lexical"]
    # ranks 1, 2, none, none over four questions
    assert lexical["hit@1"] == 0.25 and lexical["hit@5"] == lexical["hit@10"] == 0.5
    assert lexical["mrr"] == pytest.approx((1 + 0.5) / 4, abs=1e-4)
    assert lexical["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3)) / 4, abs=1e-4)
    assert doc["first_answer_rank"]["second"]["lexical"] == 2
    assert doc["unknown_labels"] == ["nowhere.md"]

    table = run_cli("eval", str(queries), "--index", str(db))
    assert table.returncode == 0
    assert "MRR" in table.stdout and "lexical" in table.stdout
    assert "nowhere.md" in table.stderr


def test_eval_usage_errors_exit_2(tmp_path: Path) -> None:
    proc = run_cli("eval", str(tmp_path / "none.jsonl"), "--index", str(tmp_path / "x.db"))
    assert proc.returncode == 2 and "queries file not found" in proc.stderr
