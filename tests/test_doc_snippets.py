"""Issue 12.7: every shell and Python snippet of README.md and docs/*.md is executed.

Blocks fenced ```bash / ```sh / ```python run in document order, each document in one
private service (own Redis, RE Manager, data directory; the session's simulated IOC),
with ``.venv/bin`` first on ``PATH`` and ``ADSCAN_ICONFIG`` naming the private settings.
The only changes made to a snippet before it runs are the documented default ports
(60615, 60625 for ZMQ, 60610 for HTTP) replaced by the private ones.  ``docs/tutorial.md``'s
Python blocks are run by ``tests/test_tutorial.py``; its shell blocks run here.

Two visible markers, on the line right before a fence, change how a block runs:

* ``<!-- snippet: illustrative: REASON -->``: not run.  Allowed only for a listed reason
  (production Docker, remote IOC hosts, a GUI window) and rarely (see MAX_ILLUSTRATIVE).
* ``<!-- snippet: background -->``: a server started in the background; the blocks after
  it in the same document talk to it; it is stopped at the end of the document.

A bash block runs with ``set -euo pipefail``: any failing command fails the test.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from helpers import CA_PORTS, REPO, TAG, write_iconfig

from adscan import services
from adscan.core.config import load_iconfig
from adscan.ports import free_ports

pytestmark = pytest.mark.timeout(900)

DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
_FENCE = re.compile(
    r"(?:^[ \t]*<!-- snippet: (?P<marker>[^>]*?) -->[ \t]*\n)?"
    r"^(?P<indent>[ \t]*)```(?P<lang>bash|sh|shell|python)[ \t]*\n(?P<code>.*?)^(?P=indent)```",
    re.S | re.M,
)
#: Reasons a block may be illustrative only, and at most how many such blocks there are.
ILLUSTRATIVE_REASONS = ("docker", "remote ioc hosts", "gui window")
MAX_ILLUSTRATIVE = 9


def blocks(doc: str) -> list[dict]:
    text = (REPO / doc).read_text()
    out = []
    for m in _FENCE.finditer(text):
        code = "\n".join(line[len(m["indent"]) :] for line in m["code"].splitlines())
        out.append(
            {
                "doc": doc,
                "line": text[: m.start("lang")].count("\n") + 1,
                "lang": "python" if m["lang"] == "python" else "bash",
                "marker": (m["marker"] or "").strip(),
                "code": code + "\n",
            }
        )
    return out


ALL = [b for doc in DOCS for b in blocks(doc)]


def test_markers_are_rare_and_justified():
    illustrative = [b for b in ALL if b["marker"].startswith("illustrative")]
    assert len(ALL) >= 20, f"only {len(ALL)} snippets found: is the fence pattern wrong?"
    assert len(illustrative) <= MAX_ILLUSTRATIVE, [(b["doc"], b["line"]) for b in illustrative]
    for b in illustrative:
        reason = b["marker"].partition(":")[2].strip().lower()
        assert any(r in reason for r in ILLUSTRATIVE_REASONS) and len(reason) > 25, b
        if "gui window" in reason:  # a GUI must be exercised by a named test
            named = re.findall(r"tests/test_\w+\.py", reason)
            assert named and all((REPO / n).exists() for n in named), b
    unknown = [
        b
        for b in ALL
        if b["marker"]
        and b["marker"] != "background"
        and not b["marker"].startswith("illustrative")
    ]
    assert not unknown, unknown


def test_the_readme_grid_scan_line_is_python_literal():
    """The qserver CLI parses with ast.literal_eval: JSON's true/false/null fail there."""
    import ast

    readme = (REPO / "README.md").read_text()
    for line in readme.splitlines():
        for arg in re.findall(r"queue add plan '([^']*)'", line):
            ast.literal_eval(arg)


@pytest.fixture(scope="module")
def service(tmp_path_factory, beamline):
    directory = tmp_path_factory.mktemp("snippets")

    def default_backend(raw):  # the docs describe the shipped default: the Tiled data service
        raw["catalog"]["backend"] = "tiled"

    cfg = load_iconfig(write_iconfig(directory, tag=TAG, ca_port=CA_PORTS[0], edit=default_backend))
    old = os.environ.get("ADSCAN_ICONFIG")
    os.environ["ADSCAN_ICONFIG"] = cfg["_path"]
    try:
        services.up(cfg, ioc=False)
        yield cfg
    finally:
        services.down(cfg)
        if old is None:
            os.environ.pop("ADSCAN_ICONFIG", None)
        else:
            os.environ["ADSCAN_ICONFIG"] = old


def environment(cfg: dict, http_port: int) -> dict:
    env = dict(
        os.environ,
        ADSCAN_ICONFIG=cfg["_path"],
        QT_QPA_PLATFORM="offscreen",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        QSERVER_ZMQ_CONTROL_ADDRESS=cfg["queueserver"]["zmq_control_addr"],
        QSERVER_ZMQ_INFO_ADDRESS=cfg["queueserver"]["zmq_info_addr"],
        QSERVER_HTTP_SERVER_URI=f"http://127.0.0.1:{http_port}",
    )
    # `./run test` inside a snippet: one quick test file, not the whole suite again
    env["PYTEST_ADDOPTS"] = "-q -p no:cacheprovider tests/test_spec_linebreaks.py"
    return env


def localise(code: str, cfg: dict, http_port: int) -> str:
    ctl = cfg["queueserver"]["zmq_control_addr"].rsplit(":", 1)[1]
    info = cfg["queueserver"]["zmq_info_addr"].rsplit(":", 1)[1]
    ports = {"60615": ctl, "60625": info, "60610": str(http_port)}
    return re.sub(r"\b(60615|60625|60610)\b", lambda m: ports[m[1]], code)


def wait_idle(cfg: dict, timeout: float = 600) -> None:
    api = services.re_manager_api(cfg, timeout=10)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if api.status()["manager_state"] == "idle":
                return
            time.sleep(0.2)
        raise TimeoutError(api.status())
    finally:
        api.close()


def http_key(proc: subprocess.Popen) -> str:
    """The API key the background block generated (read from the server's environment)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for p in [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]:
            key = p.environ().get("QSERVER_HTTP_SERVER_SINGLE_USER_API_KEY")
            if key:
                return key
        time.sleep(0.2)
    raise TimeoutError("no API key in the background server's environment")


def run_block(block: dict, cfg: dict, env: dict, http_port: int, key: str | None):
    code = localise(block["code"], cfg, http_port)
    where = f"{block['doc']}:{block['line']}"
    if block["lang"] == "python":
        preamble = f"KEY = {key!r}\n" if key else ""
        proc = subprocess.run(
            [sys.executable, "-c", preamble + code],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    else:
        if key:
            env = dict(env, KEY=key)
        proc = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + code],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
    assert proc.returncode == 0, (
        f"{where} failed ({proc.returncode}):\n{code}\n"
        f"--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n"
        f"{proc.stderr[-3000:]}"
    )
    return proc


@pytest.mark.parametrize("doc", DOCS)
def test_snippets_run(service, doc):
    cfg = service
    http_port = free_ports(1)[0]
    env = environment(cfg, http_port)
    background: list[subprocess.Popen] = []
    key = None
    ran = 0
    try:
        for block in blocks(doc):
            if block["marker"].startswith("illustrative"):
                continue
            if doc == "docs/tutorial.md" and block["lang"] == "python":
                continue  # tests/test_tutorial.py runs them, in one interpreter, in order
            if block["marker"] == "background":
                code = localise(block["code"], cfg, http_port)
                log_path = Path(cfg["instrument"]["data_dir"]) / f"background-{block['line']}.log"
                log = open(log_path, "wb")  # noqa: SIM115 - the process's, closed with it
                proc = subprocess.Popen(
                    ["bash", "-c", "set -euo pipefail\n" + code],
                    cwd=REPO,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                background.append(proc)
                key = http_key(proc)
                deadline = time.monotonic() + 60
                while not services.port_open("127.0.0.1", http_port):
                    assert proc.poll() is None and time.monotonic() < deadline, (
                        f"{doc}:{block['line']}: no server:\n{log_path.read_text()[-3000:]}"
                    )
                    time.sleep(0.2)
                ran += 1
                continue
            run_block(block, cfg, env, http_port, key)
            wait_idle(cfg)  # a queue started by one block ends before the next block
            ran += 1
    finally:
        for proc in background:
            with_children = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(True))]
            for pid in with_children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 15)
            proc.wait(20)
    if doc == "docs/tutorial.md":
        from test_tutorial import python_blocks

        n = len([b for b in blocks(doc) if b["lang"] == "python"])
        assert len(python_blocks((REPO / doc).read_text())) == n
    else:
        assert ran > 0 or all(b["marker"] for b in blocks(doc)), doc


def _readme_table_commands() -> list[list[str]]:
    """The sub-commands of the README's command table (``./run up`` / ``down`` / ...)."""
    commands = []
    for row in (REPO / "README.md").read_text().splitlines():
        first = row.split("|")[1] if row.startswith("| `./run ") else ""
        for i, cell in enumerate(re.findall(r"`([^`]+)`", first)):
            words = cell.split()[1:] if i == 0 else cell.split()
            commands.append(words)
    return commands


def test_run_without_a_command_prints_its_usage():
    """``./run`` and ``./run help``: the README's entry point explains itself (exit 0)."""
    for argv in (["./run"], ["./run", "help"]):
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, (argv, proc.stderr[-2000:])
        assert "./run demo" in proc.stdout and "./run test" in proc.stdout, proc.stdout
        assert "usage: adscan" in proc.stdout and "verify" in proc.stdout, proc.stdout


def test_every_command_of_the_readme_table_exists():
    """Each ``./run <cmd>`` the README's table lists is a sub-command ``adscan`` accepts."""
    commands = _readme_table_commands()
    assert len(commands) >= 8 and ["ioc", "--help"] in commands, commands
    adscan = str(Path(sys.executable).with_name("adscan"))
    for words in commands:
        sub = list(itertools.takewhile(re.compile(r"[a-z][a-z-]*$").match, words))
        proc = subprocess.run([adscan, *sub, "--help"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "usage:" in proc.stdout, (words, proc.stderr[-2000:])
