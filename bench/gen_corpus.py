"""Deterministic synthetic corpus generator for indexer benchmarks.

Words are random-syllable pseudo-words drawn from a 200k vocabulary with Zipf-like
frequencies (p ~ 1/rank**1.07); text has sentences, commas, capitals and paragraphs.

    python bench/gen_corpus.py OUT_DIR --size 200MB [--files N] [--seed 0] [--format text|jsonl]

text:  one document per file, OUT_DIR/NNNN/doc-NNNNNNN.txt (<= 1000 files per folder), first
       line is the title; lengths are lognormal, from under 1 KB to a few hundred KB.
jsonl: OUT_DIR/part-NNNN.jsonl of ~64 MB, one {"id", "title", "text"} object per line.
--files N asks for about N documents (text) or N part files (jsonl).  Sizes are binary
(1KB = 1024 bytes).  Output depends only on (size, seed, format, files), not on the
number of CPUs.  A `.done` marker with the parameters is written last; if it matches,
the corpus already there is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

VOCAB_SIZE, ZIPF_S = 200_000, 1.07
ONSETS = "b c d f g h j k l m n p r s t v w z br ch cl dr fl gr pl pr sh st th tr".split()
VOWELS = "a e i o u ai ea ou io".split()
CODAS = ["", "n", "r", "s", "l", "t", "m"]
SEPS = [b" ", b", ", b". ", b".\n\n", b"\n\n"]  # what may follow a word
SPACE, COMMA, STOP, PARA, TITLE = range(len(SEPS))
P_COMMA, P_STOP, P_PARA = 0.06, 1 / 13, 0.15  # per word; P_PARA: share of sentence ends
# words per document: (mean, lognormal sigma, min, max)
DOC_WORDS = {"text": (3000, 1.0, 100, 60_000), "jsonl": (300, 0.7, 20, 20_000)}
BATCH_BYTES, LOOKAHEAD, PART_BYTES = 4 << 20, 8, 64 << 20
JSON_LINE = b'{"id": "d%06d", "title": "%s", "text": "%s"}\n'


class Vocab:
    """Each word followed by each separator, all in one byte blob, plus a sampling table."""

    def __init__(self, rng: np.random.Generator):
        syl = np.array([o + v + c for o in ONSETS for v in VOWELS for c in CODAS], dtype="S5")
        n = int(VOCAB_SIZE * 1.5)
        parts = syl[rng.integers(0, len(syl), size=(n, 4))]
        parts[np.arange(4) >= rng.choice([1, 2, 3, 4], n, p=[0.15, 0.4, 0.3, 0.15])[:, None]] = b""
        words = parts[:, 0]
        for j in range(1, 4):
            words = np.char.add(words, parts[:, j])
        words = np.array(list(dict.fromkeys(words.tolist()))[:VOCAB_SIZE], dtype=words.dtype)
        words = words[np.argsort(np.char.str_len(words), kind="stable")]  # short = frequent
        self.n, wlen, width = len(words), np.char.str_len(words), words.itemsize + 3
        forms = np.zeros((len(SEPS), self.n, width), dtype=np.uint8)
        forms[:, :, : words.itemsize] = words.view(np.uint8).reshape(self.n, -1)
        for k, sep in enumerate(SEPS):
            for j, byte in enumerate(sep):
                forms[k, np.arange(self.n), wlen + j] = byte
        lens = wlen + np.array([len(s) for s in SEPS])[:, None]  # (separator, word)
        self.blob = forms[np.arange(width) < lens[..., None]]
        self.lens = lens.ravel().astype(np.int32)
        self.offs = (np.cumsum(self.lens, dtype=np.int64) - self.lens).astype(np.int32)
        p = 1.0 / np.arange(1, self.n + 1) ** ZIPF_S
        p /= p.sum()
        # word i fills max(1, round(p_i * 2**23)) slots: sampling is a single table lookup
        slots = np.maximum(1, np.rint(p * 2**23)).astype(np.int64)
        self.table = np.repeat(np.arange(self.n, dtype=np.int32), slots)
        sep_p = [1 - P_COMMA - P_STOP, P_COMMA, P_STOP * (1 - P_PARA), P_STOP * P_PARA, 0]
        sep_bytes = np.dot(sep_p, [len(s) for s in SEPS])
        self.bytes_per_word = float(slots @ wlen / slots.sum() + sep_bytes)


def render(vocab: Vocab, seed: list[int], body: np.ndarray, first_id: int, fmt: str, out_dir: Path) -> list[bytes]:
    """Documents with `body` words each: JSON lines (jsonl), or files it writes (text)."""
    rng = np.random.default_rng(seed)
    title = rng.integers(2, 8, size=len(body))  # title words; 4.5 on average
    n = title + body
    ends = np.cumsum(n)
    starts, total = ends - n, int(ends[-1])
    bins = np.searchsorted([P_STOP * P_PARA, P_STOP, P_STOP + P_COMMA], rng.random(total))
    sep = np.array([PARA, STOP, COMMA, SPACE], dtype=np.int32)[bins]
    in_title = np.arange(title.sum()) + np.repeat(starts - np.cumsum(title) + title, title)
    sep[in_title] = SPACE
    sep[starts + title - 1] = TITLE
    sep[ends - 1] = PARA
    form = sep * vocab.n + vocab.table[rng.integers(0, len(vocab.table), total)]
    lens = vocab.lens[form]
    out_end = np.cumsum(lens, dtype=np.int64)
    out_start = out_end - lens
    shift = (out_start - vocab.offs[form]).astype(np.int32)  # output minus source position
    buf = vocab.blob[np.arange(out_end[-1], dtype=np.int32) - np.repeat(shift, lens)]
    cap = np.zeros(total, dtype=bool)
    cap[0], cap[1:] = True, sep[:-1] >= STOP  # sentence starts
    cap[in_title] = True
    buf[out_start[cap]] -= 32  # ASCII upper case
    buf = buf.tobytes()
    title_end, doc_end = out_end[starts + title - 1].tolist(), out_end[ends - 1].tolist()
    if fmt == "text":  # title, blank line, body ending ".\n"; 1000 files per folder
        docs = [buf[s : e - 1] for s, e in zip([0] + doc_end[:-1], doc_end)]
        for i, data in enumerate(docs, first_id):
            folder = out_dir / f"{(i - 1) // 1000:04d}"
            if i == first_id or i % 1000 == 1:
                folder.mkdir(exist_ok=True)
            (folder / f"doc-{i:07d}.txt").write_bytes(data)
        return docs
    return [
        JSON_LINE % (i, buf[s : t - 2], buf[t : e - 2].replace(b"\n", b"\\n"))
        for i, s, t, e in zip(range(first_id, first_id + len(body)), [0] + doc_end[:-1], title_end, doc_end)
    ]


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"bad size: {text!r}")
    return int(float(m[1]) * 1024 ** " kmgt".index(m[2].lower() or " "))


def generate(out_dir: Path, size: int, seed: int = 0, fmt: str = "text", files: int | None = None) -> None:
    """Write a synthetic corpus of about `size` bytes into out_dir (reused if already there)."""
    out_dir, marker = Path(out_dir), Path(out_dir) / ".done"
    params = json.dumps({"size": size, "seed": seed, "format": fmt, "files": files, "version": 1})
    if marker.is_file() and marker.read_text() == params:
        print(f"reusing the corpus already in {out_dir} ({params})", file=sys.stderr)
        return
    marker.unlink(missing_ok=True)
    for old in [*out_dir.glob("part-*.jsonl"), *out_dir.glob("[0-9]*/doc-*.txt")]:
        old.unlink()  # output of an earlier run with other parameters
    out_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(seed)
    vocab = Vocab(rng)
    mean, sigma, lo, hi = DOC_WORDS[fmt]
    if files and fmt == "text":
        mean = min(max(lo, size / files / vocab.bytes_per_word), hi)
    part_bytes = -(-size // files) if files and fmt == "jsonl" else PART_BYTES
    mu, slack = np.log(mean) - sigma**2 / 2, max(64, size // 500)
    # estimated bytes per body word, and per document besides (title; JSON keys and id)
    bpw, doc_extra = vocab.bytes_per_word, 4.5 * vocab.bytes_per_word
    if fmt == "jsonl":
        bpw += 2 * P_STOP * P_PARA  # escaped newlines
        doc_extra += len(JSON_LINE % (0, b"", b""))
    pending: deque = deque()  # (future, estimated bytes), in document order
    written, doc_id, n_docs, batch, part, out = 0, 0, 0, 0, 0, None
    t0 = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        while True:
            left = size - written - sum(est for _, est in pending)
            if left > slack and len(pending) < LOOKAHEAD:  # plan the next batch of documents
                want = min(BATCH_BYTES, left)
                body = np.clip(rng.lognormal(mu, sigma, int(want / bpw / mean) * 2 + 4), lo, hi)
                est = np.cumsum(body.astype(np.int64) * bpw + doc_extra)  # bytes
                body = body.astype(np.int64)[: np.searchsorted(est, want) + 1]
                body[-1] = max(5, body[-1] - int((est[len(body) - 1] - want) / bpw))  # trim
                job = pool.submit(render, vocab, [seed, batch], body, n_docs + 1, fmt, out_dir)
                pending.append((job, want))
                n_docs, batch = n_docs + len(body), batch + 1
                continue
            if not pending:
                break
            docs = pending.popleft()[0].result()
            for data in docs if fmt == "jsonl" else []:
                if out is None or out.tell() >= part_bytes:
                    if out:
                        out.close()
                    out, part = open(out_dir / f"part-{part:04d}.jsonl", "wb"), part + 1
                out.write(data)
            written, doc_id = written + sum(map(len, docs)), doc_id + len(docs)
            rate = written / 2**20 / (time.perf_counter() - t0)
            print(
                f"\r{written / 2**20:9.1f} / {size / 2**20:.1f} MB  {doc_id} docs  {rate:.0f} MB/s",
                end="",
                file=sys.stderr,
            )
    if out:
        out.close()
    print(file=sys.stderr)
    marker.write_text(params)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--size", type=parse_size, required=True, help="e.g. 512KB, 200MB, 1GB, 12345")
    ap.add_argument("--files", type=int, help="about N documents (text) or N part files (jsonl)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--format", dest="fmt", choices=["text", "jsonl"], default="text")
    a = ap.parse_args(argv)
    generate(a.out_dir, a.size, a.seed, a.fmt, a.files)


if __name__ == "__main__":
    main()
