"""CLI: exit codes, stdout vs stderr, --json, and real processes (a killed worker, Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import PREVIOUS_INDEX, write_corpus

from indexer.cli import cli
from indexer.indexing.pipeline import BuildOptions, build_index

COMMANDS = ["build", "search", "postings", "stats", "verify", "eval", "bench"]


def test_help_lists_every_command(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert f"  {name} " in result.stdout
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0 and "indexer, version" in version.stdout


def test_build_search_postings_stats_verify(runner, small_corpus, tmp_path):
    out = tmp_path / "x.idx"
    result = runner.invoke(
        cli, ["build", str(small_corpus), "-o", str(out), "-p", "2", "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    for key in ("documents", "terms", "postings", "tokens", "bytes_read", "seconds", "processes", "skipped", "index"):
        assert key in summary
    assert summary["documents"] == 40 and summary["index"] == str(out)

    result = runner.invoke(cli, ["search", str(out), "parallel merge", "--json", "-k", "3"], catch_exceptions=False)
    assert result.exit_code == 0
    found = json.loads(result.stdout)
    assert found["query"] == "parallel merge" and len(found["results"]) == 3
    assert [r["rank"] for r in found["results"]] == [1, 2, 3]
    scores = [r["score"] for r in found["results"]]
    assert scores == sorted(scores, reverse=True)

    result = runner.invoke(cli, ["postings", str(out), "Merging", "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    postings = json.loads(result.stdout)
    assert postings["term"] == "merg" and postings["df"] == len(postings["postings"]) > 0

    result = runner.invoke(cli, ["stats", str(out), "--json"], catch_exceptions=False)
    stats = json.loads(result.stdout)
    assert stats["documents"] == 40 and stats["format_version"] == 2 and stats["segments"] == 1
    assert stats["bytes_per_token_without_positions"] < stats["bytes_per_token"]

    result = runner.invoke(cli, ["verify", str(out)], catch_exceptions=False)
    assert result.exit_code == 0 and "OK" in result.stdout


def test_plain_output_has_results_on_stdout_and_messages_on_stderr(runner, small_index):
    result = runner.invoke(cli, ["search", str(small_index), "merge"], catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines and lines[0].split()[0] == "1"
    assert "matching documents" in result.stderr and "matching" not in result.stdout


def test_search_with_no_hits_exits_zero(runner, small_index):
    result = runner.invoke(cli, ["search", str(small_index), "zzzunknown", "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    empty = {"query": "zzzunknown", "total_hits": 0, "total_hits_relation": "eq", "results": []}
    assert json.loads(result.stdout) == empty


def _one_line_error(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_missing_corpus_path(runner, tmp_path):
    result = runner.invoke(cli, ["build", str(tmp_path / "nope"), "-o", str(tmp_path / "x.idx")])
    _one_line_error(result, 1, "nope", "no such file")


def test_empty_corpus(runner, tmp_path):
    (tmp_path / "empty").mkdir()
    result = runner.invoke(cli, ["build", str(tmp_path / "empty"), "-o", str(tmp_path / "x.idx")])
    _one_line_error(result, 1, "nothing to index")


def test_unwritable_output_folder(runner, small_corpus, tmp_path):
    if os.geteuid() == 0:  # root may write anywhere on a normal file system, but not into /proc
        target = Path("/proc/indexer-test/x.idx")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = locked / "x.idx"
    result = runner.invoke(cli, ["build", str(small_corpus), "-o", str(target)])
    _one_line_error(result, 1, str(target))
    assert not target.exists()


def test_file_that_is_not_an_index(runner, tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"not an index at all, just some text" * 10)
    for command in (["stats", str(bad)], ["search", str(bad), "x"], ["verify", str(bad)], ["postings", str(bad), "x"]):
        _one_line_error(runner.invoke(cli, command), 1, "bad.idx", "not an index")


def test_verify_names_damaged_section(runner, small_index, tmp_path):
    data = bytearray(small_index.read_bytes())
    data[len(data) // 2] ^= 0x10
    damaged = tmp_path / "damaged.idx"
    damaged.write_bytes(bytes(data))
    result = runner.invoke(cli, ["verify", str(damaged)])
    _one_line_error(result, 1, "damaged sections:")


def test_conflicting_options_are_usage_errors(runner, small_corpus, tmp_path):
    result = runner.invoke(cli, ["build", str(small_corpus), "--sequential", "-p", "2"])
    assert result.exit_code == 2 and "contradict" in result.stderr
    result = runner.invoke(cli, ["build", str(small_corpus), "--chunk-size", "lots"])
    assert result.exit_code == 2 and "not a size" in result.stderr


def test_malformed_query_exits_2_with_one_line(runner, small_index):
    result = runner.invoke(cli, ["search", str(small_index), '"unbalanced'])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "column 1" in result.stderr


def test_default_output_name_is_corpus_name_in_current_folder(runner, small_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["build", str(small_corpus), "-q"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    assert (tmp_path / "corpus.idx").is_file()


# ---------------------------------------------------------------------------------------------
# Real processes


def _indexer_command() -> list[str]:
    script = Path(sys.executable).with_name("indexer")
    return [str(script)] if script.exists() else [sys.executable, "-m", "indexer"]


def test_real_subprocess_build_and_search(small_corpus, tmp_path):
    out = tmp_path / "x.idx"
    build = subprocess.run(
        [*_indexer_command(), "build", str(small_corpus), "-o", str(out), "-p", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    assert build.stdout == "" and "Indexed 40 documents" in build.stderr
    search = subprocess.run(
        [*_indexer_command(), "search", str(out), "river", "-k", "2"], capture_output=True, text=True, timeout=60
    )
    assert search.returncode == 0 and len(search.stdout.splitlines()) == 2


def _big_corpus(root: Path, files: int = 240, words_per_file: int = 40_000) -> Path:
    """About 60 MB of random words: enough work that a build is still running when we interrupt
    it (a -p 2 build of it takes about 3 s on 2 cores)."""
    rng = np.random.default_rng(0)
    vocab = np.array(["".join(rng.choice(list("abcdefghij"), size=rng.integers(2, 9))) for _ in range(5000)])
    for i in range(files):
        write_corpus(root, {f"f{i:03d}.txt": " ".join(rng.choice(vocab, size=words_per_file))})
    return root


def _descendants(pid: int) -> list[int]:
    """Pids of every process below `pid` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _start_build(corpus: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*_indexer_command(), "build", str(corpus), "-o", str(out), "-p", "2", "--chunk-size", "256KB"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_workers(proc: subprocess.Popen, count: int) -> list[int]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        pids = _descendants(proc.pid)
        if len(pids) >= count:
            return pids
        time.sleep(0.02)
    pytest.fail("the build's worker processes never appeared")


def _interrupt_build(tmp_path: Path, interrupt, delay: float = 0.3) -> tuple[subprocess.CompletedProcess, float]:
    """Start a real -p 2 build over an existing index, call interrupt(build process, worker pids)
    once its workers run, and return (finished process with stderr, seconds it took to stop).
    Whatever happened, the previous index must be intact and no temporary file left."""
    corpus = _big_corpus(tmp_path / "corpus")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "x.idx"
    out.write_bytes(PREVIOUS_INDEX)
    proc = _start_build(corpus, out)
    pids = _wait_for_workers(proc, 3)  # forkserver + 2 workers
    time.sleep(delay)
    interrupt(proc, pids)
    started = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    stopped = time.monotonic() - started
    assert "Traceback" not in stderr
    assert out.read_bytes() == PREVIOUS_INDEX
    assert {p.name for p in out_dir.iterdir()} == {"x.idx"}
    return subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr), stopped


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker pids through Linux /proc")
@pytest.mark.parametrize("delay", [0.0, 0.3])  # 0: as soon as it starts, while the corpus is planned
def test_killed_worker_fails_the_build_quickly(tmp_path, delay):
    done, stopped = _interrupt_build(tmp_path, lambda proc, pids: os.kill(pids[-1], signal.SIGKILL), delay)
    assert stopped < 30
    assert done.returncode == 1 and "worker process died" in done.stderr, done.stderr


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker pids through Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_ctrl_c_sigterm_and_sighup_leave_previous_index_no_files_and_no_processes(tmp_path, signum):
    seen: list[int] = []

    def interrupt(proc, pids):
        seen.extend(pids)
        proc.send_signal(signum)

    done, stopped = _interrupt_build(tmp_path, interrupt)
    assert stopped < 30
    assert done.returncode == 128 + signum, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith(f"Aborted: {signal.Signals(signum).name} received"), done.stderr
    _assert_gone(seen)


def _assert_gone(pids: list[int], seconds: float = 10) -> None:
    """Every process in `pids` exits within `seconds` (workers, forkserver, resource tracker)."""
    deadline = time.monotonic() + seconds
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if _running(p)]
        time.sleep(0.1)
    assert not alive, f"processes left running: {alive}"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker pids through Linux /proc")
def test_a_build_killed_outright_leaves_no_process_and_the_next_build_cleans_up(tmp_path):
    corpus = _big_corpus(tmp_path / "corpus")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "x.idx"
    out.write_bytes(PREVIOUS_INDEX)
    proc = _start_build(corpus, out)
    pids = _wait_for_workers(proc, 3)
    time.sleep(0.3)
    pids = _descendants(proc.pid)
    proc.kill()  # SIGKILL: no cleanup can run in the build itself
    proc.communicate(timeout=60)
    _assert_gone(pids)  # the workers notice their parent is gone and exit by themselves
    assert out.read_bytes() == PREVIOUS_INDEX
    left = {p.name for p in out_dir.iterdir()} - {"x.idx"}
    assert left  # its temporary runs are still there...
    small = write_corpus(tmp_path / "small", {"a.txt": "some words"})
    again = subprocess.run(
        [*_indexer_command(), "build", str(small), "-o", str(out)], capture_output=True, text=True, timeout=120
    )
    assert again.returncode == 0, again.stderr
    assert {p.name for p in out_dir.iterdir()} == {"x.idx"}  # ...until the next build removes them
    assert "left by an interrupted build" in again.stderr


def test_snippets_read_back_records_with_custom_fields(runner, tmp_path):
    corpus = tmp_path / "docs.jsonl"
    records = [{"key": "a", "body": "the river bends past the old mill"}, {"key": "b", "body": "bread and salt"}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "x.idx"
    args = ["build", str(corpus), "-o", str(out), "--id-field", "key", "--text-field", "body", "-q"]
    assert runner.invoke(cli, args, catch_exceptions=False).exit_code == 0
    result = runner.invoke(cli, ["search", str(out), "mill", "--snippets", "--json"], catch_exceptions=False)
    hit = json.loads(result.stdout)["results"][0]
    assert hit["doc"] == "a" and "**mill**" in hit["snippet"]


def test_output_that_is_not_an_index_is_not_overwritten(runner, small_corpus, tmp_path):
    precious = sorted(small_corpus.rglob("*.txt"))[0]
    before = precious.read_bytes()
    result = runner.invoke(cli, ["build", str(small_corpus), "-o", str(precious)])
    _one_line_error(result, 1, "not an index file")
    assert precious.read_bytes() == before


def test_index_written_inside_the_corpus_is_not_indexed_next_time(runner, small_corpus):
    out = small_corpus / "corpus.idx"
    for _ in range(2):
        result = runner.invoke(cli, ["build", str(small_corpus), "-o", str(out), "--strict", "--json"])
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["documents"] == 40


def test_broken_pipe_is_quiet(small_index):
    script = f"{' '.join(_indexer_command())} search {small_index} merge -k 40 | head -c 1 >/dev/null"
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert "Error" not in done.stderr and "Traceback" not in done.stderr


def test_json_summary_keeps_warnings_on_stderr(runner, tmp_path):
    corpus = write_corpus(tmp_path / "c", {"a.txt": "good words", "b.txt": ""})
    result = runner.invoke(cli, ["build", str(corpus), "-o", str(tmp_path / "x.idx"), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["skipped"] == 1
    assert result.stderr.startswith("Warning: 1 skipped: 1 empty (first: ")


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--stem", "klingon", "unknown stemmer language 'klingon'"),
        ("--encoding", "bogus", "unknown encoding 'bogus'"),
        ("--stopwords", "/no/such/stopwords.txt", "cannot read stopword file"),
    ],
)
def test_bad_build_option_values_are_usage_errors(runner, small_corpus, tmp_path, option, value, needle):
    result = runner.invoke(cli, ["build", str(small_corpus), "-o", str(tmp_path / "x.idx"), option, value])
    assert result.exit_code == 2 and needle in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x.idx").exists()


def test_a_full_or_closed_stdout_is_one_line_and_a_written_index_is_reported(small_corpus, small_index, tmp_path):
    indexer = " ".join(_indexer_command())
    cases = {
        f"{indexer} search {small_index} merge -k 40 >/dev/full": "No space left on device",
        f"{indexer} stats {small_index} --json >/dev/full": "No space left on device",
        f"{indexer} search {small_index} merge >&-": "it is closed",
    }
    for script, why in cases.items():
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, script
        assert done.stderr.strip().splitlines()[-1] == f"Error: cannot write to standard output ({why})", script
    out = tmp_path / "new.idx"
    done = subprocess.run(
        ["bash", "-c", f"{indexer} build {small_corpus} -o {out} --json >/dev/full"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().endswith(f"the index was written to {out}")
    assert runner_ok(["verify", str(out)])


def runner_ok(args: list[str]) -> bool:
    from click.testing import CliRunner

    return CliRunner().invoke(cli, args).exit_code == 0


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker pids through Linux /proc")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_batch_search_stops_its_workers_and_says_one_line(tmp_path, signum):
    """Ctrl-C reaches the whole process group (the workers too): one line, 128 + signal, no hang."""
    corpus = write_corpus(
        tmp_path / "c", {f"d{i}.txt": " ".join(f"w{(i * j) % 97}" for j in range(300)) for i in range(400)}
    )
    index = tmp_path / "x.idx"
    build_index([corpus], index, BuildOptions(processes=1))
    queries = tmp_path / "q.tsv"
    queries.write_text("".join(f"q{i}\tw{i % 97} w{(i * 7) % 97}\n" for i in range(200_000)), encoding="utf-8")
    proc = subprocess.Popen(
        [*_indexer_command(), "search", str(index), "--queries", str(queries), "-p", "2", "--trec", "run"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a group of its own, as a terminal gives a command
    )
    pids = _wait_for_workers(proc, 2)
    time.sleep(0.5)
    os.killpg(proc.pid, signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr
    assert stderr.strip() == f"Aborted: {signal.Signals(signum).name} received", stderr
    _assert_gone(pids)


def test_a_reader_that_goes_away_ends_the_command_quietly_with_141(small_corpus, tmp_path):
    index = tmp_path / "x.idx"
    build_index([small_corpus], index, BuildOptions(processes=1))
    for command in (["stats", str(index)], ["search", str(index), "merge", "-k", "1000"]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # nobody will read: the first write fails with EPIPE
        done = subprocess.run([*_indexer_command(), *command], stdout=write_end, stderr=subprocess.PIPE, text=True)
        os.close(write_end)
        assert done.returncode == 141 and done.stderr == "", (command, done.stderr)
