"""BM25, dense and hybrid retrievers on the facts world: what they find, what they cost, their cache."""

from __future__ import annotations

import asyncio
import itertools
import warnings
from pathlib import Path

import pytest

from archon import data
from archon.data import Document
from archon.retrieval.bm25 import BM25Retriever
from archon.retrieval.dense import DenseRetriever
from archon.retrieval.hybrid import HybridRetriever, rrf
from budgets import Budget, BudgetExhausted, Ledger, Scope, profile

DOCS = data.corpus("facts")[:300]
IDS = {d.id for d in DOCS}
QUESTIONS = [p for p in data.load("facts", "dev") if p.metadata["gold_doc_ids"][0] in IDS]


def recall(retriever, k: int) -> float:
    async def main():
        return await asyncio.gather(*(retriever.search(p.question, k) for p in QUESTIONS))

    found = asyncio.run(main())
    hits = [p.metadata["gold_doc_ids"][0] in {x.id for x in f} for p, f in zip(QUESTIONS, found, strict=True)]
    return sum(hits) / len(hits)


@pytest.fixture(scope="module")
def dense(tmp_path_factory: pytest.TempPathFactory) -> DenseRetriever:
    return DenseRetriever("dense", DOCS, cache_dir=tmp_path_factory.mktemp("dense"))


def test_bm25_finds_the_gold_document_and_tells_near_duplicates_apart(tmp_path: Path) -> None:
    assert len(QUESTIONS) >= 40
    r = BM25Retriever("bm25", DOCS, cache_dir=tmp_path)
    assert recall(r, 1) >= 0.95  # names are exact words: the one-letter twin is a different word
    twins = [p for p in QUESTIONS if p.metadata["has_near_duplicate"]]
    assert twins
    assert r.batcher_stats().largest == len(QUESTIONS)  # the concurrent searches ran as one batch
    passages = asyncio.run(r.search(QUESTIONS[0].question, 5))
    assert [p.rank for p in passages] == [0, 1, 2, 3, 4]
    assert all(a.score >= b.score for a, b in itertools.pairwise(passages))


def test_the_dense_retriever_ranks_by_meaning_and_charges_its_query_encoder(dense: DenseRetriever) -> None:
    assert recall(dense, 5) >= 0.9
    q = QUESTIONS[0].question
    cost = dense.query_cost([q])
    tokens = dense.token_counts([q])[0]
    assert cost.prompt_tokens == tokens > 3
    # a bidirectional encoder's pass: every token through every layer, no LM head
    assert cost.flops == dense.cost.prefill_flops(tokens, 0, logit_positions=0, causal=False)
    assert cost.flops > 2 * dense.cost.non_embedding_params * tokens
    ledger = Ledger(Budget.of({"flops": 10 * cost.flops}))
    charged = dense.charged(ledger, Scope("docs", QUESTIONS[0].id), hardware=profile("h100"))
    asyncio.run(charged.search(q, 3))
    spent = ledger.problem_total(QUESTIONS[0].id)
    assert spent.flops == cost.flops and spent.calls == 1 and spent.latency > 0
    ledger = Ledger(Budget.of({"flops": cost.flops / 2}))
    with pytest.raises(BudgetExhausted):  # the encoding would break the budget: refused before it runs
        asyncio.run(dense.charged(ledger, Scope("docs", "p")).search(q, 3))
    assert ledger.problem_total("p").flops == 0


def test_a_dense_index_build_is_reported_once_and_then_read_from_the_cache(dense: DenseRetriever) -> None:
    info = dense.index_info
    assert info["cached"] is False and info["documents"] == len(DOCS)
    assert info["build_flops"] == pytest.approx(dense._flops(dense._texts())) and info["build_flops"] > 1e9
    again = DenseRetriever("dense", DOCS, cache_dir=Path(info["path"]).parent)
    assert again.index_info["cached"] is True and again.index_info["path"] == info["path"]
    q = QUESTIONS[1].question
    assert [p.id for p in asyncio.run(again.search(q, 5))] == [p.id for p in asyncio.run(dense.search(q, 5))]


def test_a_changed_corpus_builds_a_new_index(tmp_path: Path) -> None:
    a = BM25Retriever("bm25", DOCS, cache_dir=tmp_path)
    changed = [*DOCS[:-1], Document(DOCS[-1].id, DOCS[-1].title, DOCS[-1].text + " They also sang.")]
    b = BM25Retriever("bm25", changed, cache_dir=tmp_path)
    assert b.index_info["cached"] is False and b.index_info["path"] != a.index_info["path"]
    other = BM25Retriever("bm25", DOCS, k1=1.2, cache_dir=tmp_path)  # another setting: another index
    assert other.index_info["cached"] is False
    assert BM25Retriever("bm25", DOCS, cache_dir=tmp_path).index_info["cached"] is True


def test_a_corrupt_cached_index_is_rebuilt_with_a_warning_never_used(tmp_path: Path) -> None:
    first = BM25Retriever("bm25", DOCS, cache_dir=tmp_path)
    expected = [p.id for p in asyncio.run(first.search(QUESTIONS[2].question, 5))]
    entry = Path(first.index_info["path"])
    victim = next(f for f in sorted(entry.iterdir()) if f.suffix == ".npy")
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 0xFF  # one flipped byte in the index's data: it would load, and rank wrongly
    victim.write_bytes(bytes(raw))
    with pytest.warns(RuntimeWarning, match="corrupt .*does not match its checksum.*rebuilding"):
        second = BM25Retriever("bm25", DOCS, cache_dir=tmp_path)
    assert second.index_info["cached"] is False
    assert [p.id for p in asyncio.run(second.search(QUESTIONS[2].question, 5))] == expected
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt entry is sound
        assert BM25Retriever("bm25", DOCS, cache_dir=tmp_path).index_info["cached"] is True
    (entry / "manifest.json").write_text("{not json")
    with pytest.warns(RuntimeWarning, match="corrupt"):
        assert BM25Retriever("bm25", DOCS, cache_dir=tmp_path).index_info["cached"] is False


def test_reciprocal_rank_fusion() -> None:
    assert [d for d, _ in rrf([[(1, 9), (2, 8)], [(2, 0.9), (3, 0.8)]])] == [2, 1, 3]
    assert [d for d, _ in rrf([[(1, 9), (2, 8)], [(2, 0.9), (1, 0.8)]], weights=[3, 1])] == [1, 2]


def test_the_hybrid_fuses_its_members_and_costs_what_they_cost(dense: DenseRetriever, tmp_path: Path) -> None:
    bm25 = BM25Retriever("bm25", DOCS, cache_dir=tmp_path)
    hybrid = HybridRetriever("hybrid", {"bm25": bm25, "dense": dense})
    assert recall(hybrid, 3) >= recall(dense, 3) - 1e-9
    q = QUESTIONS[0].question
    assert hybrid.query_cost([q]) == dense.query_cost([q]) + bm25.query_cost([q])
    assert bm25.query_cost([q]).flops == 0
    other = BM25Retriever("other", DOCS[:100], cache_dir=tmp_path)
    with pytest.raises(Exception, match="index different corpora"):
        HybridRetriever("h", {"bm25": bm25, "other": other})
