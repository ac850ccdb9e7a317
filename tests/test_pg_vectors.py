"""The pgvector index (`tgsearch.pg.vectors.PgVectorIndex`) against the embedded one on the same posts:
same nearest posts, same exact scores, same passages; writes idempotent; models never mix."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tgsearch.errors import IndexMismatchError
from tgsearch.index.vector_fill import fill
from tgsearch.index.vectors import VectorIndex, passages_for
from tgsearch.post import Post
from tgsearch.search.semantic import SemanticRetriever

psycopg = pytest.importorskip("psycopg")
pytest.importorskip("pgvector")

from tgsearch.pg.vectors import PgVectorIndex, table_name  # noqa: E402

MODEL = "use-multilingual-v3"

NEWS = [
    "Цены на нефть марки Brent поднялись выше 90 долларов за баррель после решения ОПЕК+ продлить сокращение добычи.",
    "Центробанк сохранил ключевую ставку на уровне 16 процентов и пообещал держать её высокой до конца года.",
    "В Казани футбольный клуб «Рубин» обыграл «Спартак» со счётом 2:1, победный мяч забит на последней минуте.",
    "Минздрав начал кампанию вакцинации от гриппа: прививку можно сделать бесплатно в любой поликлинике.",
    "На Большой кольцевой линии московского метро открылись три новые станции, пересадки заработают в марте.",
    "ЦИК подвёл предварительные итоги выборов в городскую думу, явка составила 38 процентов.",
    "Synoptics warn of a heavy snowstorm in Saint Petersburg this weekend, flights may be delayed.",
    "Аэропорт Шереметьево перевёл часть рейсов в терминал C из-за ремонта взлётной полосы.",
    "Учёные Новосибирского университета создали катализатор, который удешевляет производство водорода.",
    "Из-за паводка в Оренбургской области эвакуированы жители пяти сёл, уровень воды в Урале растёт.",
    "Сбербанк повысил ставки по вкладам на срок от полугода до 18 процентов годовых.",
    "Команда школьников из Перми выиграла золото международной олимпиады по информатике.",
    "Цены на бензин на бирже обновили рекорд, правительство обсуждает запрет экспорта топлива.",
    "В Эрмитаже открылась выставка голландской живописи XVII века из частных собраний.",
    "Тысячи пассажиров застряли на вокзалах после сбоя в системе продажи билетов РЖД.",
    "Apple представила новый iPhone с титановым корпусом, продажи в России не начнутся.",
    "Власти Петербурга ограничат движение по Невскому проспекту на время ремонта трамвайных путей.",
    "Росстат: инфляция в годовом выражении замедлилась до 7,4 процента.",
    "Хоккейный клуб СКА одержал пятую победу подряд и вышел на первое место в конференции.",
    "Врачи предупреждают о росте заболеваемости коронавирусом, в регионах вводят масочный режим в больницах.",
]

FILLER = ["Погода на выходных будет облачной, местами пройдут дожди.",
          "Курс рубля к доллару почти не изменился по итогам торгов на Мосбирже.",
          "В городском парке прошёл фестиваль уличной еды и музыки.",
          "Библиотека продлила часы работы читального зала до полуночи."]


def _long(topic: str, ending: str, n: int = 30) -> str:
    return " ".join(f"{topic} Абзац {i}: подробности о событиях недели и реакции жителей." for i in range(n)) + " " + ending


def make_posts() -> list[Post]:
    posts = [Post(id=f"news/{i + 1}", channel="news", text=text, message_ids=(i + 1,)) for i, text in enumerate(NEWS)]
    posts += [Post(id=f"misc/{j + 1}", channel="misc", text=f"{FILLER[j % len(FILLER)]} Выпуск {j + 1}.",
                   message_ids=(j + 1,)) for j in range(12)]
    posts += [
        Post(id="long/1", channel="long", title="Итоги недели в регионе", message_ids=(1,),
             text=_long("Обзор экономики области.", "В конце недели археологи нашли клад серебряных монет XII века.")),
        Post(id="long/2", channel="long", title="Спорт за неделю", message_ids=(2,),
             text=_long("Спортивные новости города.", "Пловчиха из Самары установила мировой рекорд на дистанции 50 метров.")),
        Post(id="long/3", channel="long", title="Транспорт", message_ids=(3,),
             text=_long("Городской транспорт и дороги.", "С понедельника подорожает проезд в автобусах и трамваях.")),
    ]
    return posts


QUERIES = ["oil prices after OPEC decision", "ставка центрального банка", "футбольный матч в Казани",
           "прививка от гриппа", "новые станции метро", "наводнение и эвакуация", "археологи нашли клад монет",
           "мировой рекорд по плаванию", "инфляция замедлилась", "snowstorm and flight delays"]


@pytest.fixture
def both(store, pg_url):
    posts = make_posts()
    store.upsert(posts)
    fill(store, MODEL)
    embedded = VectorIndex(store, MODEL)
    pg = PgVectorIndex(pg_url, MODEL, embedder=embedded.embedder)
    pg.write_posts(posts)
    yield store, embedded, pg, posts
    pg.close()
    embedded.close()


def test_same_nearest_posts_and_scores_as_the_embedded_index(both):
    store, embedded, pg, posts = both
    assert any(len(passages_for(p)) > 1 for p in posts)   # multi-passage posts are part of the check
    ids = [p.id for p in posts]
    for graph in (False, True):
        pg.exact_below = 0 if graph else 10 ** 9          # the HNSW index, then an exact scan
        for text in QUERIES:
            qvec = embedded.embed_query(text)
            assert np.allclose(pg.embed_query(text), qvec)
            want = embedded.search_vector(qvec, limit=5)
            got = pg.search_vector(qvec, limit=5)
            assert [pid for pid, _, _ in got] == [pid for pid, _, _ in want], text
            for (_, sim_pg, span_pg), (_, sim_emb, span_emb) in zip(got, want):
                assert sim_pg == pytest.approx(sim_emb, abs=1e-3) and span_pg == span_emb
            exact_pg, exact_emb = pg.score_posts(qvec, ids), embedded.score_posts(qvec, ids)
            assert exact_pg.keys() == exact_emb.keys() == set(ids)
            for pid in ids:
                assert exact_pg[pid][0] == pytest.approx(exact_emb[pid][0], abs=1e-4)
                assert exact_pg[pid][1:] == exact_emb[pid][1:]
            # the ranking's similarities are the exact scores
            for pid, sim, _ in got:
                assert sim == pytest.approx(exact_pg[pid][0], abs=1e-5)


def test_search_lists_each_post_once_and_goes_as_deep_as_asked(both):
    store, embedded, pg, posts = both
    qvec = pg.embed_query("еженедельный обзор событий в регионе")
    for graph in (False, True):
        pg.exact_below = 0 if graph else 10 ** 9
        found = pg.search_vector(qvec, limit=len(posts) + 10)
        ids = [pid for pid, _, _ in found]
        assert sorted(ids) == sorted(p.id for p in posts)           # every post, once
        sims = [s for _, s, _ in found]
        assert sims == sorted(sims, reverse=True)
        assert [pid for pid, _, _ in embedded.search_vector(qvec, limit=10)] == ids[:10]


def test_post_vectors_have_the_embedded_shape_and_values(both):
    store, embedded, pg, posts = both
    ids = ["long/1", "news/3", "missing/1"]
    got, want = pg.vstore.post_vectors(ids), embedded.vstore.post_vectors(ids)
    assert got.keys() == want.keys() == {"long/1", "news/3"}
    for pid in got:
        assert [e[:3] for e in got[pid]] == [e[:3] for e in want[pid]]
        for a, b in zip(got[pid], want[pid]):
            assert a[3].dtype == np.float32 and a[3].shape == (pg.embedder.dim,)
            assert np.array_equal(a[3], b[3])        # both keep float16 values


def test_semantic_retriever_runs_unchanged_on_it(both):
    store, embedded, pg, posts = both
    on_pg, on_embedded = SemanticRetriever(store, pg), SemanticRetriever(store, embedded)
    assert on_pg.model == MODEL
    got, want = on_pg.similar("misc/1", limit=5), on_embedded.similar("misc/1", limit=5)
    assert [pid for pid, _ in got] == [pid for pid, _ in want]
    assert [sim for _, sim in got] == pytest.approx([sim for _, sim in want], abs=1e-3)
    assert {pid for pid, _ in got[:2]} == {"misc/5", "misc/9"}   # misc/1's sentence, other issue numbers
    assert on_pg.best_passage("археологи нашли клад", "long/1") == on_embedded.best_passage("археологи нашли клад", "long/1")


def test_status_and_counts(both):
    store, embedded, pg, posts = both
    status = pg.status()
    want = embedded.status()
    for key in ("model", "dim", "posts_with_vectors", "vectors", "quant"):
        assert status[key] == want[key], key
    assert pg.count_posts() == len(posts)


def test_writes_are_idempotent_and_replace_a_posts_passages(store, pg_url):
    pg = PgVectorIndex(pg_url, MODEL)
    posts = make_posts()
    long_post = next(p for p in posts if p.id == "long/1")
    assert pg.write_posts(posts) == pg.write_posts(posts)
    assert pg.count_posts() == len(posts)
    assert pg.status()["vectors"] == sum(len(passages_for(p)) for p in posts)
    # the long post becomes short: its extra passages go, its one vector is the new text's
    short = Post(id="long/1", channel="long", text="Археологи нашли в Крыму древнегреческую амфору.", message_ids=(1,))
    pg.write_posts([short])
    assert len(pg.vstore.post_vectors(["long/1"])["long/1"]) == 1
    assert len(passages_for(long_post)) > 1
    assert pg.search_vector(pg.embed_query("раскопки античной амфоры"), limit=1)[0][0] == "long/1"
    # deleted at the source, or deleted: no vectors, never a result
    gone = Post(id="news/1", channel="news", text=NEWS[0], message_ids=(1,), deleted=True)
    pg.write_posts([gone])
    pg.delete_posts(["news/2", "nothing/1"])
    pg.delete_posts([])
    left = {pid for pid, _, _ in pg.search_vector(pg.embed_query("нефть ОПЕК ставка ЦБ"), limit=100)}
    assert not left & {"news/1", "news/2"}
    assert pg.count_posts() == len(posts) - 2
    assert pg.score_posts(pg.embed_query("нефть"), ["news/1"]) == {}
    pg.close()


def test_another_model_never_mixes_and_a_changed_dimension_is_refused(pg_url):
    PgVectorIndex(pg_url, MODEL).close()

    class Wider:
        name = MODEL
        dim = 768

        def embed_documents(self, texts):  # never called: opening is refused first
            raise AssertionError

        embed_queries = embed_documents

    with pytest.raises(IndexMismatchError) as info:
        PgVectorIndex(pg_url, MODEL, embedder=Wider())
    assert MODEL in str(info.value) and "reindex --vectors" in str(info.value) and info.value.status == 409
    other = PgVectorIndex(pg_url, "e5-small-4bit")       # its own table (the model loads only when used)
    with psycopg.connect(pg_url) as conn:
        rows = dict(conn.execute("SELECT model, table_name FROM vector_models").fetchall())
    assert rows == {MODEL: table_name(MODEL), "e5-small-4bit": table_name("e5-small-4bit")}
    assert other.count_posts() == 0 and other.status()["dim"] == 384
    other.close()


def test_a_callers_connection_factory_and_threads(pg_url, store):
    local = threading.local()
    opened = []

    def factory():                                        # per thread, not autocommit
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = psycopg.connect(pg_url)
            opened.append(conn)
        return conn

    pg = PgVectorIndex(factory, MODEL)
    posts = make_posts()
    pg.write_posts(posts)
    with psycopg.connect(pg_url) as other:                # committed, visible to another session
        assert other.execute(f"SELECT COUNT(DISTINCT post_id) FROM {table_name(MODEL)}").fetchone()[0] == len(posts)
    qvec = pg.embed_query("прививка от гриппа")
    results, errors = [], []

    def search():
        try:
            results.append(pg.search_vector(qvec, limit=3)[0][0])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results == ["news/4"] * 3
    pg.close()
    for conn in opened:
        conn.close()
