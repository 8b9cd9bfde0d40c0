"""Fetch the Linux kernel documentation as a benchmark corpus, and make its x10 variants.

    python bench/get_kernel_docs.py [--data bench/data] [--package linux-source-6.1] [--suffixed-only]

Downloads Debian's linux-source-6.1 package with `apt-get download` (into DATA/downloads, once),
reads the kernel tarball inside it as a stream and writes the Documentation/ .rst and .txt files
(regular files that decode as UTF-8 and hold no NUL byte; hidden files left out), and the text files
with no dot in their name, mostly the ABI/ entries (590 files, 1.8 MB; --suffixed-only leaves them
out): 5,719 files, 30 MB, the corpus earlier measurements used. It writes:

    DATA/kernel-docs/             the files as they are, paths relative to Documentation/
    DATA/kernel-docs-x10/         ten copies of them, in copy-0 .. copy-9
    DATA/kernel-docs-x10.jsonl    the same ten copies as {"id": "copy-3/<path>", "text": ...} lines

Each output gets a `.done` marker with its parameters, written last (the JSONL one is
kernel-docs-x10.jsonl.done); an output whose marker matches is reused. Output depends only on the
package file, so a rerun after a new Debian upload gives a new corpus (the marker names the file).
The corpus statistics go to stdout as one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from bench_corpus import corpus_files

PACKAGE = "linux-source-6.1"
SUFFIXES = (".rst", ".txt")
COPIES = 10
MARKER_VERSION = 1
AR_MAGIC, AR_HEADER = b"!<arch>\n", 60


def download(package: str, folder: Path) -> Path:
    """The package's .deb in `folder`, fetched with apt-get unless one is already there."""
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob(f"{package}_*.deb"))
    if not found:
        print(f"apt-get download {package} (into {folder})", file=sys.stderr)
        subprocess.run(["apt-get", "download", package], cwd=folder, check=True)
        found = sorted(folder.glob(f"{package}_*.deb"))
    if not found:
        sys.exit(f"{folder}: apt-get left no {package}_*.deb there")
    return found[-1]


class _Slice(io.RawIOBase):
    """A read-only window [start, start + size) of an open binary file."""

    def __init__(self, f, start: int, size: int):
        self.f, self.left = f, size
        f.seek(start)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.f.read(min(len(buffer), self.left))
        buffer[: len(data)] = data
        self.left -= len(data)
        return len(data)


def _ar_member(f, prefix: bytes) -> _Slice:
    """The first member of an ar archive (a .deb) whose name starts with `prefix`."""
    if f.read(len(AR_MAGIC)) != AR_MAGIC:
        sys.exit(f"{f.name}: not a .deb (no ar header)")
    offset = len(AR_MAGIC)
    while True:
        f.seek(offset)
        header = f.read(AR_HEADER)
        if len(header) < AR_HEADER:
            sys.exit(f"{f.name}: no {prefix.decode()}* member")
        name, size = header[:16].rstrip(b" /"), int(header[48:58])
        if name.startswith(prefix):
            return _Slice(f, offset + AR_HEADER, size)
        offset += AR_HEADER + size + size % 2  # members are 2-byte aligned


def _wanted(rel: str, extensionless: bool) -> bool:
    """Whether a path's name makes it a candidate (its bytes are checked next)."""
    if any(part.startswith(".") for part in rel.split("/")):
        return False
    return rel.endswith(SUFFIXES) or (extensionless and "." not in rel.rsplit("/", 1)[-1])


def _text(data: bytes) -> str | None:
    """The file's text when it is UTF-8 text, else None."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def extract_docs(deb: Path, out: Path, package: str, extensionless: bool) -> dict:
    """Write the Documentation/ text files of the kernel tarball inside `deb` to `out`."""
    params = {"package_file": deb.name, "suffixes": SUFFIXES, "extensionless": extensionless}
    params = json.dumps({**params, "version": MARKER_VERSION})
    marker = out / ".done"
    if marker.is_file() and marker.read_text() == params:
        print(f"reusing {out}", file=sys.stderr)
        return json.loads(params)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    kept = skipped = 0
    inner_name = f"usr/src/{package}.tar.xz"
    with open(deb, "rb") as f:
        with tarfile.open(fileobj=io.BufferedReader(_ar_member(f, b"data.tar")), mode="r|*") as outer:
            for member in outer:
                if member.name.lstrip("./") != inner_name:
                    continue
                with tarfile.open(fileobj=outer.extractfile(member), mode="r|xz") as inner:
                    for item in inner:
                        rest = item.name.partition("/")[2]  # below the top folder
                        if not item.isfile() or not rest.startswith("Documentation/"):
                            continue
                        rel = rest[len("Documentation/") :]
                        if not _wanted(rel, extensionless):
                            continue
                        text = _text(inner.extractfile(item).read())
                        if text is None:
                            skipped += 1
                            continue
                        target = tmp / rel
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(text, encoding="utf-8", newline="")
                        kept += 1
                break
            else:
                sys.exit(f"{deb}: no {inner_name} inside")
    print(f"{kept} files kept, {skipped} skipped (binary or not UTF-8)", file=sys.stderr)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    marker.write_text(params)
    return json.loads(params)


def make_copies(source: Path, out: Path, source_params: dict) -> None:
    params = json.dumps({"source": source_params, "copies": COPIES, "version": MARKER_VERSION})
    marker = out / ".done"
    if marker.is_file() and marker.read_text() == params:
        print(f"reusing {out}", file=sys.stderr)
        return
    shutil.rmtree(out, ignore_errors=True)
    files = corpus_files(source)
    for i in range(COPIES):
        for rel in files:
            target = out / f"copy-{i}" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, target)  # real copies: no shared page cache between copies
    marker.write_text(params)


def make_jsonl(source: Path, out: Path, source_params: dict) -> None:
    params = json.dumps({"source": source_params, "copies": COPIES, "version": MARKER_VERSION})
    marker = out.with_name(out.name + ".done")
    if marker.is_file() and marker.read_text() == params and out.is_file():
        print(f"reusing {out}", file=sys.stderr)
        return
    marker.unlink(missing_ok=True)
    files = corpus_files(source)
    texts = [(source / rel).read_text(encoding="utf-8") for rel in files]
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        for i in range(COPIES):
            for rel, text in zip(files, texts):
                f.write(json.dumps({"id": f"copy-{i}/{rel}", "text": text}, ensure_ascii=False) + "\n")
    tmp.replace(out)
    marker.write_text(params)


def corpus_stats(root: Path) -> dict:
    files = corpus_files(root)
    size = sum((root / rel).stat().st_size for rel in files)
    return {"corpus": str(root), "files": len(files), "bytes": size, "mb": size / 1e6}


def main() -> None:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=here / "data")
    parser.add_argument("--package", default=PACKAGE)
    parser.add_argument(
        "--suffixed-only",
        dest="extensionless",
        action="store_false",
        help="keep only .rst and .txt files (leave out text files with no extension)",
    )
    args = parser.parse_args()
    deb = download(args.package, args.data / "downloads")
    docs = args.data / "kernel-docs"
    params = extract_docs(deb, docs, args.package, args.extensionless)
    make_copies(docs, args.data / "kernel-docs-x10", params)
    jsonl = args.data / "kernel-docs-x10.jsonl"
    make_jsonl(docs, jsonl, params)
    stats = corpus_stats(docs)
    stats.update(package_file=deb.name, x10_documents=stats["files"] * COPIES, jsonl_bytes=jsonl.stat().st_size)
    print(json.dumps(stats))


if __name__ == "__main__":
    main()
