"""Dask executor: a real local cluster builds the same bytes as a sequential build, survives a
worker killed mid-task, fails with a named chunk when a task keeps killing workers, and refuses
to start without the extra or without a filesystem the workers share."""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

import dask  # noqa: E402
from conftest import random_docs, write_corpus  # noqa: E402

from indexer.analysis import AnalyzerConfig  # noqa: E402
from indexer.cli import cli  # noqa: E402
from indexer.corpus.discover import plan_corpus  # noqa: E402
from indexer.errors import IndexerError, WorkerError  # noqa: E402
from indexer.indexing.executors import DaskExecutor  # noqa: E402
from indexer.indexing.pipeline import BuildOptions, build_index  # noqa: E402

CHUNK = 2048  # about 60 chunks for 300 documents: many tasks in flight on two workers
OPTIONS = BuildOptions(processes=1, chunk_size=CHUNK, analyzer=AnalyzerConfig(stem="none"))


@pytest.fixture(autouse=True)
def never_hang():
    """A build waiting forever on a lost worker ends the run with a traceback instead of hanging CI."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_corpus(tmp_path / "corpus", random_docs(seed=11, count=300))


@pytest.fixture
def sequential_bytes(tmp_path, corpus) -> bytes:
    out = tmp_path / "sequential.idx"
    build_index([corpus], out, OPTIONS)
    return out.read_bytes()


class KillWorker(distributed.WorkerPlugin):
    """Kills its own worker process with SIGKILL when a task of one of `fn_names` reaches state
    `when`: once per function across the cluster (marker files in `marker_dir` decide), or every
    time when `marker_dir` is None."""

    def __init__(self, fn_names: list[str], when: str, marker_dir: str | None):
        self.fn_names, self.when, self.marker_dir = fn_names, when, marker_dir

    def transition(self, key, start, finish, **kwargs):
        names = [name for name in self.fn_names if str(key).startswith(f"{name}-")]  # keys: "<function>-<uuid>"
        if finish != self.when or not names:
            return
        fn_name = names[0]
        if self.marker_dir is not None:
            try:
                os.close(os.open(os.path.join(self.marker_dir, f"killed-{fn_name}"), os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return  # a worker was killed for this function already
        os.kill(os.getpid(), signal.SIGKILL)


def test_local_cluster_build_matches_sequential_build(tmp_path, corpus, sequential_bytes, runner):
    out = tmp_path / "dask.idx"
    args = ["build", str(corpus), "-o", str(out), "--chunk-size", str(CHUNK), "--stem", "none"]
    result = runner.invoke(cli, [*args, "--scheduler", "local:2", "--progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == sequential_bytes
    assert "Invert" in result.stderr and "Merge" in result.stderr  # the bar, fed by the executor
    assert "Indexed 300 documents" in result.stderr and "with 2 processes" in result.stderr
    assert not list(tmp_path.glob(".indexer-*")), "run folder left behind"


def test_workers_killed_mid_task_are_replaced_and_the_index_is_the_same(tmp_path, corpus, sequential_bytes):
    # The first invert task and the first merge task to finish each kill their worker after
    # writing their files and before reporting: Dask reruns them on a live worker, over the files
    # the dead attempt left, and the nanny starts a new worker.
    markers = tmp_path / "markers"
    markers.mkdir()
    executor = DaskExecutor("local:2")
    try:
        executor._client.register_plugin(KillWorker(["invert_chunk", "merge_range"], "memory", str(markers)))
        out = tmp_path / "dask.idx"
        stats = build_index([corpus], out, OPTIONS, executor=executor)
    finally:
        executor.close()
    assert sorted(p.name for p in markers.iterdir()) == ["killed-invert_chunk", "killed-merge_range"]
    assert stats.documents == 300
    assert out.read_bytes() == sequential_bytes


def test_task_that_keeps_killing_workers_fails_naming_its_chunk(tmp_path, corpus):
    out = tmp_path / "dask.idx"
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):  # the first death is final
        executor = DaskExecutor("local:2")
    try:
        executor._client.register_plugin(KillWorker(["invert_chunk"], "executing", None))
        with pytest.raises(
            WorkerError, match=r"^chunk \d+ \(first file: .*corpus.*doc\d+\.txt\): the Dask workers running it died"
        ):
            build_index([corpus], out, OPTIONS, executor=executor)
    finally:
        executor.close()
    assert not out.exists()
    assert not list(tmp_path.glob(".indexer-*")), "run folder left behind"


def test_workers_that_cannot_see_the_corpus_are_refused(tmp_path, corpus, monkeypatch):
    # A relative corpus path and workers in another working folder: what a remote worker without
    # the shared filesystem looks like. The check names the file before any task is sent.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    executor = DaskExecutor("local:2")
    try:
        # (and, while a cluster is up: local workers keep glibc's adaptive malloc, see DaskExecutor)
        assert set(executor._client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == {None}
        executor._client.run(os.chdir, str(elsewhere))
        with pytest.raises(IndexerError, match=r"^corpus/\S+: not visible to Dask worker tcp://\S+ \(2 of 2 workers"):
            build_index([Path("corpus")], tmp_path / "out.idx", OPTIONS, executor=executor)
    finally:
        executor.close()
    assert not (tmp_path / "out.idx").exists()
    assert not list(tmp_path.glob(".indexer-*")), "run folder left behind"


def test_without_the_extra_the_option_says_how_to_install_it(tmp_path, corpus, runner, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    result = runner.invoke(cli, ["build", str(corpus), "-o", str(tmp_path / "x.idx"), "--scheduler", "local:2"])
    assert result.exit_code == 1
    assert (
        result.stderr
        == "Error: running on a Dask cluster needs the dask extra; install it with: pip install 'indexer[dask]'\n"
    )
    assert not (tmp_path / "x.idx").exists()


@pytest.mark.parametrize(
    ("address", "message"),
    [("local:0", "give local:N with N >= 1"), ("nonsense", "not a Dask scheduler address")],
)
def test_bad_scheduler_address_is_one_line_error(tmp_path, corpus, runner, address, message):
    result = runner.invoke(cli, ["build", str(corpus), "-o", str(tmp_path / "x.idx"), "--scheduler", address])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {address}: ") and message in result.stderr
    assert result.stderr.count("\n") == 1


def test_scheduler_and_process_count_contradict(corpus, runner):
    result = runner.invoke(cli, ["build", str(corpus), "--scheduler", "local:2", "-p", "2"])
    assert result.exit_code == 2
    assert "--scheduler" in result.stderr


def test_remote_scheduler_is_used_and_left_running(tmp_path, corpus, sequential_bytes):
    # An in-process cluster stands in for one started with `dask scheduler` / `dask worker`.
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        executor = DaskExecutor(cluster.scheduler_address)
        try:
            assert executor.processes == 1
            build_index([corpus], tmp_path / "remote.idx", OPTIONS, executor=executor)
        finally:
            executor.close()
        assert (tmp_path / "remote.idx").read_bytes() == sequential_bytes
        with distributed.Client(cluster) as client:  # closing our client did not stop the cluster
            assert len(client.scheduler_info()["workers"]) == 1


def test_scheduler_without_workers_is_an_error(tmp_path):
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        with pytest.raises(IndexerError, match=r"no Dask worker joined .* start some with 'dask worker "):
            DaskExecutor(address, worker_timeout=0.5)


def test_lost_scheduler_fails_the_build_in_one_line(tmp_path, corpus):
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
    executor = DaskExecutor(cluster.scheduler_address)

    def stop_the_scheduler(progress) -> None:
        if cluster.status.name == "running":
            cluster.close()

    try:
        with pytest.raises(WorkerError, match=r"^\S+: lost the connection to the Dask scheduler during the build;"):
            build_index([corpus], tmp_path / "x.idx", OPTIONS, on_progress=stop_the_scheduler, executor=executor)
    finally:
        executor.close()
        cluster.close()
    assert not (tmp_path / "x.idx").exists()


def _fails_like_a_bug(chunk):
    raise ZeroDivisionError("division by zero")


def _fails_on_a_file(chunk):
    raise FileNotFoundError(2, "No such file or directory", chunk.pieces[0].path)


def test_failing_task_names_its_chunk_and_os_errors_pass_through(corpus):
    chunks = [(chunk,) for chunk in plan_corpus([corpus], CHUNK).chunks]
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as c:
        executor = DaskExecutor(c.scheduler_address)
        try:
            with pytest.raises(WorkerError, match=r"^a worker failed on chunk \d+ \(first file: \S+\.txt\): "):
                list(executor.run(_fails_like_a_bug, chunks))
            with pytest.raises(FileNotFoundError) as raised:
                list(executor.run(_fails_on_a_file, chunks))
            assert raised.value.filename.endswith(".txt")
        finally:
            executor.close()
