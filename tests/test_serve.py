"""Tests for indexer.serving and `indexer serve`: the JSON API through real HTTP requests on a real
server process (answers, limits, bad input, path tricks, stopping), a slow search beside a fast
one, the command without its extra, and the page in a real headless browser (skipped without one)."""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import write_corpus

from indexer.analysis import AnalyzerConfig
from indexer.cli import cli
from indexer.errors import ArgumentError
from indexer.indexing.pipeline import BuildOptions, build_index

try:
    import starlette  # noqa: F401
    import uvicorn

    HAVE_STACK = True
except ImportError:
    HAVE_STACK = False

needs_stack = pytest.mark.skipif(not HAVE_STACK, reason="the 'serve' extra (starlette, uvicorn) is not installed")

DOCS = {
    "merge_sort.txt": "Merge sort splits a list in halves, sorts each half and merges the sorted halves.",
    "parallel.txt": "A parallel merge sort hands each half to its own worker; the merge runs at the end.",
    "bread.txt": "Sourdough bread needs flour, water, salt and a lively starter. Bake it hot.",
    "notes/café menu.txt": "Soup of the day, bread and butter, and a merge of two menus.",
    "hostile.txt": 'Beware <script>window.pwned = 1</script> and <img src=x onerror="window.pwned = 2"> pwned text.',
    "changed.txt": "This file is changed after the build: its bytes no longer match the index.",
    "deleted.txt": "This file is deleted after the build.",
}
DOCS.update({f"more/sort{i:02d}.txt": f"sort number {i} " + "sort merge " * (i % 5 + 1) for i in range(30)})


@pytest.fixture(scope="module")
def served_index(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("serve")
    corpus = write_corpus(root / "corpus", DOCS)
    index = root / "served.idx"
    build_index([corpus], index, BuildOptions(processes=1, analyzer=AnalyzerConfig(stem="none")))
    (corpus / "changed.txt").write_text("This file was changed after the build: bytes no longer match the index.")
    (corpus / "deleted.txt").unlink()
    return index


class Server:
    """`indexer serve INDEX --port 0` in a subprocess, its address read from its ready line."""

    def __init__(self, index: Path, *options: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "indexer", "serve", str(index), "--port", "0", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready_line = _read_line(self.proc.stderr, timeout=30)
        found = re.fullmatch(r"Serving .* on (http://127\.0\.0\.1:(\d+)) \(Ctrl-C to stop\)\n", self.ready_line)
        if found is None:
            self.proc.kill()
            raise AssertionError(f"no ready line: {self.ready_line!r} {self.proc.communicate()}")
        self.address, self.port = found[1], int(found[2])

    def get(self, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, str, object]:
        """(status, content type, body: parsed JSON, or text); `path` is sent exactly as given."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            body = response.read().decode("utf-8")
            kind = response.getheader("content-type", "")
            return response.status, kind, json.loads(body) if kind.startswith("application/json") else body
        finally:
            conn.close()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, err


def _read_line(stream, timeout: float) -> str:
    """One line of a pipe, or "" when nothing came in `timeout` seconds (a server that hangs)."""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        return stream.readline() if selector.select(timeout) else ""


@pytest.fixture(scope="module")
def server(served_index):
    if not HAVE_STACK:
        pytest.skip("the 'serve' extra (starlette, uvicorn) is not installed")
    running = Server(served_index)
    yield running
    if running.proc.poll() is None:
        running.stop()


# --- the JSON API ------------------------------------------------------------------------------------


def test_search_answers_what_indexer_search_json_prints_with_offset_and_time(server, served_index, runner):
    for query, snippets in [("merge sort", False), ('"merge sort" OR bread', True)]:
        status, kind, answer = server.get(f"/search?q={quote(query)}&k=5" + ("&snippets=1" if snippets else ""))
        assert status == 200 and kind.startswith("application/json")
        cli_args = ["search", str(served_index), query, "-k", "5", "--json", *(["--snippets"] if snippets else [])]
        printed = json.loads(runner.invoke(cli, cli_args, catch_exceptions=False).stdout)
        assert answer["offset"] == 0 and 0 <= answer["took_ms"] < 10_000 and answer["notes"] == []
        rows = answer.pop("results")
        assert [{k: v for k, v in row.items() if k != "snippet_parts"} for row in rows] == printed.pop("results")
        assert {k: answer[k] for k in printed} == printed
        if snippets:
            for row in rows:  # the parts say what the ** marks say, without ambiguity
                assert "".join(f"**{t}**" if marked else t for t, marked in row["snippet_parts"]) == row["snippet"]


def test_pages_of_results_follow_the_ranking(server):
    _, _, whole = server.get("/search?q=sort+merge&k=40")
    assert len(whole["results"]) == whole["total_hits"] == 33
    _, _, page = server.get("/search?q=sort+merge&k=10&offset=30")
    assert page["offset"] == 30 and page["results"] == whole["results"][30:]
    assert [r["rank"] for r in page["results"]] == [31, 32, 33]
    _, _, beyond = server.get("/search?q=sort+merge&k=10&offset=10000")
    assert beyond["results"] == [] and beyond["total_hits"] == whole["total_hits"]


def test_plain_words_notes_and_an_empty_query(server):
    _, _, plain = server.get("/search?q=%22merge+sort&syntax=0")  # unbalanced quote: a word like any other
    assert plain["results"] and plain["notes"] == []
    status, _, too_long = server.get("/search?q=" + "x" * 70)  # longer than a term can be
    assert status == 200 and too_long["results"] == [] and "no searchable words" in too_long["notes"][0]
    assert server.get("/search?q=") == (400, "application/json", {"error": "empty query"})


def test_stats_are_those_of_indexer_stats(server, served_index, runner):
    status, _, stats = server.get("/stats")
    printed = json.loads(runner.invoke(cli, ["stats", str(served_index), "--json"], catch_exceptions=False).stdout)
    assert status == 200 and stats == printed and stats["documents"] == len(DOCS)


def test_doc_serves_the_indexed_text_of_an_id_the_index_holds(server, served_index):
    for name in ["merge_sort.txt", "notes/café menu.txt"]:
        status, _, doc = server.get("/doc/" + quote(name))
        assert status == 200
        source = served_index.parent / "corpus" / name
        assert doc == {
            "doc": name,
            "source": str(source),
            "offset": 0,
            "length": len(DOCS[name].encode()),
            "text": DOCS[name],
        }


def test_doc_of_a_changed_or_deleted_source_is_gone(server):
    for name, why in [("changed.txt", "changed since indexing"), ("deleted.txt", "moved or deleted")]:
        status, _, answer = server.get("/doc/" + name)
        assert status == 410 and why in answer["error"] and "indexer update" in answer["error"]


def _bad_requests(index: Path) -> list[tuple[str, str, int, str]]:
    """(method, path sent as is, status, words of the error) for input the server must refuse."""
    source = str(index.parent / "corpus" / "merge_sort.txt")
    return [
        ("GET", "/search?q=%22unbalanced", 400, "unbalanced quote"),
        ("GET", "/search?q=(merge+AND", 400, ""),
        ("GET", "/search?q=merge+AND+", 400, ""),
        ("GET", "/search", 400, "missing parameter q"),
        ("GET", "/search?q=" + "a" * 1001, 400, "at most 1,000"),
        ("GET", "/search?q=a&k=101", 400, "k must be from 0 to 100"),
        ("GET", "/search?q=a&k=99999999999999999999999", 400, "k must be"),
        ("GET", "/search?q=a&k=-1", 400, "k must be"),
        ("GET", "/search?q=a&k=1e3", 400, "k must be"),
        ("GET", "/search?q=a&k=%EF%BC%95", 400, "k must be"),  # a full-width digit 5
        ("GET", "/search?q=a&offset=10001", 400, "offset must be"),
        ("GET", "/search?q=a&snippets=maybe", 400, "snippets must be 1 or 0"),
        ("GET", "/doc/nothing.txt", 404, "no document"),
        ("GET", "/doc/", 404, "no document"),
        ("GET", "/doc/../../../etc/passwd", 404, ""),
        ("GET", "/doc/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 404, "no document"),
        ("GET", "/doc/..%2f..%2f..%2fetc%2fpasswd", 404, "no document"),
        ("GET", "/doc//etc/passwd", 404, "no document"),
        ("GET", "/doc/" + quote(source), 404, "no document"),  # a source's path is not a doc id
        ("GET", "/doc/merge_sort.txt%00.png", 404, "no document"),
        ("GET", "/nowhere", 404, "Not Found"),
        ("POST", "/search?q=a", 405, "Method Not Allowed"),
        ("DELETE", "/doc/merge_sort.txt", 405, "Method Not Allowed"),
    ]


@needs_stack
def test_bad_input_gets_a_4xx_json_error_and_the_server_keeps_serving(server, served_index):
    for method, path, status, words in _bad_requests(served_index):
        got, kind, answer = server.get(path, method)
        assert (got, kind.split(";")[0]) == (status, "application/json"), (method, path, answer)
        assert set(answer) == {"error"} and words in answer["error"], (path, answer)
    assert server.get("/stats")[0] == 200 and server.proc.poll() is None


def test_odd_but_harmless_input_is_searched(server):
    many_words = " ".join(f"w{i}" for i in range(300))[:1000]  # the longest query allowed, many terms
    for path in ["/search?q=" + quote(many_words), "/search?q=%ff%fe%00merge", "/search?q=merge&q=sort&k=&offset="]:
        status, _, answer = server.get(path)
        assert status == 200 and "results" in answer, (path, answer)


def test_requests_for_another_host_name_are_refused(server):
    # a web page whose own name is re-pointed at 127.0.0.1 (DNS rebinding) must not read the index
    status, _, answer = server.get("/stats", headers={"Host": "attacker.example:8080"})
    assert status == 400 and "localhost" in answer["error"]
    assert server.get("/stats", headers={"Host": f"localhost:{server.port}"})[0] == 200


def test_the_page_is_self_contained_and_allows_only_its_own_script(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/?q=merge")
    response = conn.getresponse()
    page = response.read().decode()
    conn.close()
    assert response.status == 200 and response.getheader("content-type").startswith("text/html")
    policy = response.getheader("content-security-policy")
    assert "script-src 'sha256-" in policy and "connect-src 'self'" in policy
    assert not re.search(r"""(src|href)=["']?https?:""", page)  # nothing from the network: works offline


# --- concurrency and stopping ------------------------------------------------------------------------


@needs_stack
def test_one_slow_search_does_not_hold_up_the_others(served_index, monkeypatch):
    from indexer.serving.app import bind, create_app
    from indexer.serving.service import SearchService

    service = SearchService(served_index, searchers=2)
    slow_started, release = threading.Event(), threading.Event()
    search = service.search

    def slow_or_not(request):
        if request.query == "slow":
            slow_started.set()
            release.wait(30)
        return search(request)

    monkeypatch.setattr(service, "search", slow_or_not)
    ready = threading.Event()
    sock = bind("127.0.0.1", 0)
    app = create_app(service, on_ready=ready.set)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert ready.wait(10)
        port = sock.getsockname()[1]
        answers: dict[str, int] = {}

        def ask(query: str) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            conn.request("GET", f"/search?q={query}")
            answers[query] = conn.getresponse().status
            conn.close()

        slow = threading.Thread(target=ask, args=("slow",))
        slow.start()
        assert slow_started.wait(10)
        ask("merge")  # answered while the slow search still holds its thread
        assert answers == {"merge": 200} and slow.is_alive()
        release.set()
        slow.join(20)
        assert answers == {"merge": 200, "slow": 200}
    finally:
        release.set()
        server.should_exit = True
        thread.join(10)
        sock.close()
        service.close()


@needs_stack
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_cleanly(served_index, sig):
    running = Server(served_index)
    assert running.get("/search?q=merge")[0] == 200
    code, out, err = running.stop(sig)
    assert code == 0 and out == ""
    assert err.strip() == f"Stopped by {signal.Signals(sig).name}.", err
    assert "Traceback" not in err


def test_the_load_generator_counts_every_answer(server, tmp_path):
    queries = tmp_path / "q.tsv"
    queries.write_text("a\tmerge sort\nb\tbread\nc\t(unbalanced\n", encoding="utf-8")  # plain words: no error
    script = Path(__file__).resolve().parents[1] / "bench" / "serve_load.py"
    done = subprocess.run(
        [sys.executable, str(script), "unused.idx", "--url", server.address, "--queries", str(queries)]
        + ["-c", "3", "-n", "60", "--warmup", "6", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["queries"], summary["warmup_queries"], summary["failures"]) == (60, 3, 0)  # one pass at most
    assert summary["queries_per_second"] > 0 and 0 < summary["latency_ms"]["median"] <= summary["latency_ms"]["max"]


# --- the command -------------------------------------------------------------------------------------


def test_serve_without_the_extra_says_how_to_install_it(runner, served_index, monkeypatch):
    monkeypatch.delitem(sys.modules, "indexer.serving.app", raising=False)
    for name in ("starlette", "uvicorn"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import uvicorn` fail, installed or not
    result = runner.invoke(cli, ["serve", str(served_index)])
    assert result.exit_code == 1 and result.stdout == ""
    assert re.fullmatch(
        r"Error: 'indexer serve' needs the optional web stack \((uvicorn|starlette) is missing\): "
        r"pip install 'indexer\[serve\]'\n",
        result.stderr,
    )


@needs_stack
def test_serve_reports_a_bad_index_or_a_busy_port_in_one_line(runner, served_index, tmp_path):
    not_an_index = tmp_path / "x.idx"
    not_an_index.write_bytes(b"hello")
    result = runner.invoke(cli, ["serve", str(not_an_index), "--port", "0"])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "not an index" in result.stderr

    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = runner.invoke(cli, ["serve", str(served_index), "--port", str(port)])
    assert result.exit_code == 1, result.stderr
    assert result.stderr == f"Error: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_search_parameters_are_checked_against_the_limits():
    from indexer.serving.service import SearchRequest

    assert SearchRequest.from_params({"q": "a"}) == SearchRequest("a", 10, 0, True, False)
    request = SearchRequest.from_params({"q": "a", "k": "100", "offset": "10000", "syntax": "0", "snippets": "true"})
    assert request == SearchRequest("a", 100, 10_000, False, True)
    for params in [{"q": "a", "k": "٣"}, {"q": "a", "offset": "+1"}, {"q": "a", "syntax": "2"}, {}]:
        with pytest.raises(ArgumentError):
            SearchRequest.from_params(params)


# --- the page in a real browser ------------------------------------------------------------------


def _chromium() -> str | None:
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    return next((found for found in map(shutil.which, names) if found), None)


def _moved_up(fd: int) -> int:
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return moved


class Browser:
    """Headless Chromium driven through the DevTools protocol over a pipe (--remote-debugging-pipe:
    JSON messages ending in a NUL byte, commands on its fd 3, answers on its fd 4)."""

    def __init__(self, binary: str):
        self.profile = tempfile.mkdtemp(prefix="indexer-chromium-")
        its_in, ours_to_it = os.pipe()
        ours_from_it, its_out = os.pipe()
        # its ends are moved up to 10 or more, so that putting them on fds 3 and 4 in the child
        # cannot overwrite one with the other
        its_in, its_out = (_moved_up(fd) for fd in (its_in, its_out))
        self.proc = subprocess.Popen(
            [
                binary,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            pass_fds=(3, 4),  # kept open in the child: they are the ends set up below
            preexec_fn=lambda: (os.dup2(its_in, 3), os.dup2(its_out, 4)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(its_in)
        os.close(its_out)
        self.to_it, self.from_it = os.fdopen(ours_to_it, "wb"), os.fdopen(ours_from_it, "rb")
        self.buffer, self.last_id, self.session = b"", 0, None
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def send(self, method: str, **params) -> dict:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        self.to_it.write(json.dumps(message).encode() + b"\0")
        self.to_it.flush()
        while True:  # events in between are of no interest here
            while b"\0" not in self.buffer:
                chunk = self.from_it.read1(1 << 16)
                if not chunk:
                    raise AssertionError("the browser went away")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            answer = json.loads(raw)
            if answer.get("id") == self.last_id:
                if "error" in answer:
                    raise AssertionError(f"{method}: {answer['error']}")
                return answer["result"]

    def run(self, script: str):
        """The value of a JavaScript expression in the page, a promise awaited."""
        answer = self.send("Runtime.evaluate", expression=script, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in answer:
            raise AssertionError(f"{script}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def wait_for(self, condition: str, seconds: float = 10):
        """Wait, in the page, until the JavaScript `condition` is truthy; its value."""
        return self.run(
            f"""new Promise((resolve, reject) => {{
                const until = Date.now() + {seconds * 1000};
                const check = () => {{
                    const value = ({condition});
                    if (value) resolve(value);
                    else if (Date.now() > until) reject(new Error("timed out: " + {json.dumps(condition)}));
                    else setTimeout(check, 20);
                }};
                check();
            }})"""
        )

    def open(self, url: str) -> None:
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete' && location.href !== 'about:blank'")

    def type_and_enter(self, text: str) -> None:
        self.run("document.getElementById('q').select()")
        self.send("Input.insertText", text=text)
        enter = {"key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
        self.send("Input.dispatchKeyEvent", type="keyDown", text="\r", **enter)
        self.send("Input.dispatchKeyEvent", type="keyUp", **enter)

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(10)
        except (AssertionError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


@needs_stack
def test_the_page_in_a_browser_searches_as_you_type_and_enter_and_shows_text_as_text(server):
    binary = _chromium()
    if binary is None:
        pytest.skip("no Chromium or Chrome found (apt-get install chromium)")
    browser = Browser(binary)
    try:
        # a bookmarked search: the page reads ?q= from its address
        browser.open(server.address + "/?q=pwned")
        assert browser.wait_for("document.querySelectorAll('li.hit').length") == 1
        assert browser.run("document.getElementById('q').value") == "pwned"
        # document text is shown as text: no element, no script from it
        snippet = browser.run("document.querySelector('.snippet').textContent")
        assert "<script>window.pwned = 1</script>" in snippet and 'onerror="window.pwned' in snippet
        assert browser.run("document.querySelectorAll('.snippet *:not(mark)').length") == 0
        assert browser.run("typeof window.pwned") == "undefined"

        # typing a query and pressing Enter shows its results and puts it in the address
        browser.type_and_enter("merge sort")
        browser.wait_for("location.search === '?q=merge+sort' && document.querySelectorAll('li.hit').length === 10")
        summary = browser.run("document.getElementById('summary').textContent")
        assert re.fullmatch(r"10 of 33 matching documents · \d+\.\d ms", summary), summary
        rows = browser.run(
            "[...document.querySelectorAll('li.hit')].map(li => [li.querySelector('.rank').textContent,"
            " li.querySelector('.doc').textContent, li.querySelector('.doc').getAttribute('href')])"
        )
        _, _, answer = server.get("/search?q=merge+sort&k=10")
        assert rows == [[str(r["rank"]), r["doc"], "/doc/" + quote(r["doc"])] for r in answer["results"]]
        marked = browser.run("[...document.querySelectorAll('mark')].map(m => m.textContent.toLowerCase())")
        assert marked and set(marked) <= {"merge", "sort", "merges", "sorts"}

        # the next page, and a malformed query's error shown on the page
        browser.run("document.getElementById('next').click()")
        browser.wait_for("location.search === '?q=merge+sort&offset=10' && document.querySelector('.rank')"
                         ".textContent === '11'")  # fmt: skip
        browser.type_and_enter('"merge')
        assert "unbalanced quote" in browser.wait_for("document.getElementById('error').textContent")
        assert browser.run("document.querySelectorAll('li.hit').length") == 0
    finally:
        browser.close()


def test_doc_of_a_file_whose_name_is_not_utf8_is_served(tmp_path):
    from indexer.indexing.pipeline import BuildOptions, build_index
    from indexer.serving.service import SearchService

    corpus = tmp_path / "c"
    folder = os.path.join(os.fsencode(corpus), b"d\xffir")
    os.makedirs(folder)
    with open(os.path.join(folder, b"x.txt"), "w", encoding="utf-8") as f:
        f.write("an odd name for a plain file")
    index = tmp_path / "x.idx"
    build_index([corpus], index, BuildOptions(processes=1))
    service = SearchService(index, searchers=1)
    answer = service.document("d\\xffir/x.txt")
    assert answer["text"] == "an odd name for a plain file" and answer["source"].endswith("d\\xffir/x.txt")
    json.dumps(answer)  # what the server sends: no surrogate left in it
