"""The PostgreSQL schema of the store (`PgStore`): a list of SQL steps applied in order at open.

Each step runs once, in one transaction under `pg_advisory_xact_lock(SCHEMA_LOCK)` (so processes that
open the same database at once apply it once), and `tgsearch_schema` records how many ran. A database
whose schema is newer than this tgsearch is refused with a readable message.

Posts are partitioned by month (`month` = yyyymm of the post's UTC date, 0 for undated); the
partitions are created on demand by `ensure_months` (no DEFAULT partition). The primary key must hold
the partition key, so `(id, month)`; writers keep one row per id by taking an advisory lock per id
(see PgStore.upsert). `version` comes from a sequence; `xid` is the writing transaction's id (set
again on every write that takes a new version), so a reader that keeps a snapshot mark never skips a
row (see PgStore.iter_changed).
"""

from __future__ import annotations

from ..errors import StoreError

# Advisory lock keys (bigint), one per purpose; any two distinct constants will do.
SCHEMA_LOCK = 0x7467_7365_6172_0001      # 'tgsear' + 1: migrations
PARTITION_LOCK = 0x7467_7365_6172_0002   # creating month partitions

MIGRATIONS: list[str] = [
    # 1: posts (partitioned by month), files, meta, channel names, collector state
    """
    CREATE SEQUENCE posts_version_seq AS bigint;
    CREATE TABLE posts (
        id text COLLATE "C" NOT NULL,
        month integer NOT NULL,
        channel text COLLATE "C" NOT NULL,
        channel_title text NOT NULL DEFAULT '',
        date timestamptz,
        edit_date timestamptz,
        title text NOT NULL DEFAULT '',
        text text NOT NULL DEFAULT '',
        source_url text NOT NULL DEFAULT '',
        publication text NOT NULL DEFAULT '',
        publication_country text NOT NULL DEFAULT '',
        author text NOT NULL DEFAULT '',
        forwarded_from text NOT NULL DEFAULT '',
        reply_to bigint,
        views bigint,
        kind text NOT NULL DEFAULT 'post',
        language text NOT NULL DEFAULT '',
        origin_file text NOT NULL DEFAULT '',
        message_ids jsonb NOT NULL DEFAULT '[]',
        links jsonb NOT NULL DEFAULT '[]',
        reactions text NOT NULL DEFAULT '{}',
        media jsonb NOT NULL DEFAULT '[]',
        edited boolean NOT NULL DEFAULT false,
        preview_site text NOT NULL DEFAULT '',
        preview_title text NOT NULL DEFAULT '',
        preview_description text NOT NULL DEFAULT '',
        preview_url text NOT NULL DEFAULT '',
        deleted boolean NOT NULL DEFAULT false,
        forward_date timestamptz,
        topic_id bigint,
        hash text NOT NULL,
        version bigint NOT NULL,
        xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
        ingested_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (id, month)
    ) PARTITION BY RANGE (month);
    CREATE INDEX posts_version ON posts (version);
    CREATE INDEX posts_xid ON posts (xid);
    CREATE INDEX posts_channel_date ON posts (channel, date);
    CREATE INDEX posts_date ON posts (date);
    CREATE TABLE files (
        path text PRIMARY KEY,
        format text NOT NULL DEFAULT '',
        size bigint,
        mtime_ns bigint,
        posts integer NOT NULL DEFAULT 0,
        status text NOT NULL,
        error text NOT NULL DEFAULT '',
        ingested_at timestamptz NOT NULL
    );
    CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE channel_names (channel text COLLATE "C" PRIMARY KEY, title text NOT NULL);
    CREATE TABLE crawl_cursors (
        channel text PRIMARY KEY,
        newest bigint,
        oldest bigint,
        complete boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL
    );
    CREATE TABLE links (
        url text COLLATE "C" PRIMARY KEY,
        status text NOT NULL,
        reason text NOT NULL DEFAULT '',
        article_id text COLLATE "C",
        fetched_at timestamptz NOT NULL
    );
    CREATE INDEX links_article ON links (article_id);
    CREATE TABLE source_runs (
        key text COLLATE "C" PRIMARY KEY,
        started_at text NOT NULL,
        finished_at text,
        posts integer NOT NULL DEFAULT 0,
        error text NOT NULL DEFAULT ''
    );
    CREATE TABLE sync_cursors (
        channel text PRIMARY KEY,
        last_id bigint NOT NULL DEFAULT 0,
        peer_id bigint,
        access_hash bigint,
        complete boolean NOT NULL DEFAULT false,
        updated_at timestamptz NOT NULL
    );
    CREATE INDEX sync_cursors_peer ON sync_cursors (peer_id);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn) -> int | None:
    """The number of steps applied to this database, None when it holds no tgsearch schema."""
    if conn.execute("SELECT to_regclass('tgsearch_schema')").fetchone()[0] is None:
        return None
    row = conn.execute("SELECT version FROM tgsearch_schema").fetchone()
    return row[0] if row else 0


def migrate(conn, where: str, *, create: bool = True, migrations: list[str] | None = None) -> int:
    """Bring the schema up to date (psycopg connection in autocommit mode); returns its version.
    `migrations` (tests) replaces MIGRATIONS."""
    steps = MIGRATIONS if migrations is None else migrations
    current = schema_version(conn)
    if current is None and not create:
        raise StoreError(f"{where}: no tgsearch store in this database "
                         f"(run `tgsearch ingest PATH --db URL` first)")
    if current is not None and current > len(steps):
        raise StoreError(f"{where}: store schema {current} is newer than this tgsearch ({len(steps)}); upgrade tgsearch")
    if current == len(steps):
        return current
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS tgsearch_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM tgsearch_schema").fetchone()
        if row is None:
            conn.execute("INSERT INTO tgsearch_schema(version) VALUES (0)")
        current = row[0] if row else 0
        if current > len(steps):
            raise StoreError(f"{where}: store schema {current} is newer than this tgsearch ({len(steps)}); "
                             "upgrade tgsearch")
        for number in range(current, len(steps)):
            conn.execute(steps[number])
            conn.execute("UPDATE tgsearch_schema SET version = %s", (number + 1,))
    return len(steps)


def partition_name(month: int) -> str:
    return f"posts_m{month:06d}"


def existing_months(conn) -> set[int]:
    """The months that have a partition of posts."""
    rows = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "WHERE i.inhparent = 'posts'::regclass").fetchall()
    return {int(name[len("posts_m"):]) for (name,) in rows if name.startswith("posts_m")}


def ensure_months(conn, months) -> set[int]:
    """Create the partitions of these months that do not exist yet: one short transaction under an
    advisory lock (before any data transaction). Returns every month that has one."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
        have = existing_months(conn)
        for month in sorted(set(months) - have):
            conn.execute(f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF posts "
                         f"FOR VALUES FROM ({int(month)}) TO ({int(month) + 1})")
            have.add(month)
    return have


def have_relations(conn, names) -> bool:
    """Every named table or index exists in the current schema (read without locks). Check this
    before running `CREATE ... IF NOT EXISTS` statements at open: `CREATE INDEX IF NOT EXISTS` locks
    its table even when the index exists, and a process opening while another writes two of the
    tables in the other order deadlocks."""
    names = list(names)
    row = conn.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s) "
                       "AND relnamespace = current_schema()::regnamespace", (names,)).fetchone()
    return int(row[0]) == len(set(names))
