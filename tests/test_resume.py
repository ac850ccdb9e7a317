"""An ingest killed with SIGKILL mid-run and run again gives the same store as an uninterrupted one."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

WORDS = ("Казахстан Россия Китай Астана Токаев уголь уран титан сделка визит саммит министр посол "
         "договор поставки энергетика санкции транзит экспорт импорт форум переговоры").split()


def make_corpus(folder: Path, files: int = 4, per_file: int = 12000) -> int:
    rng = random.Random(7)
    folder.mkdir(parents=True)
    n = 0
    for f in range(files):
        with open(folder / f"part{f}.jsonl", "w", encoding="utf-8") as out:
            for i in range(per_file):
                text = " ".join(rng.choice(WORDS) for _ in range(40))
                out.write(json.dumps({"id": i, "channel": f"chan{f}", "date": f"2025-05-{1 + i % 28:02d}T10:00:00Z",
                                      "text": text}, ensure_ascii=False) + "\n")
                n += 1
    return n


def run_ingest(corpus: Path, db: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tgsearch.cli", "ingest", str(corpus), "--db", str(db), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def snapshot(db: Path) -> set[tuple[str, str]]:
    conn = sqlite3.connect(db / "store.sqlite")
    try:
        return set(conn.execute("SELECT id, hash FROM posts"))
    finally:
        conn.close()


def count(db: Path) -> int:
    try:
        conn = sqlite3.connect(db / "store.sqlite", timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM posts").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def test_sigkill_mid_ingest_then_rerun_equals_uninterrupted(tmp_path):
    corpus = tmp_path / "corpus"
    total = make_corpus(corpus)

    reference = tmp_path / "reference"
    proc = run_ingest(corpus, reference)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    expected = snapshot(reference)
    assert len(expected) == total

    killed = tmp_path / "killed"
    proc = run_ingest(corpus, killed)
    deadline = time.time() + 120
    while time.time() < deadline and count(killed) < 3000:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    partial = count(killed)
    assert 0 < partial < total, f"kill landed outside the run ({partial} of {total} posts stored)"

    proc = run_ingest(corpus, killed)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert snapshot(killed) == expected
