"""docs/tutorial.md cannot drift: its ```python blocks run, in order, in one subprocess.

The subprocess runs against the session's simulated beamline (``ADSCAN_ICONFIG`` from
conftest, inherited), so ``from adscan.instrument import *`` happens there, not in pytest.

Refresh the outputs pasted in the tutorial (the ```text block after each code block)::

    ADSCAN_ICONFIG=<iconfig of a running beamline> python tests/test_tutorial.py --update
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TUTORIAL = REPO / "docs" / "tutorial.md"
MARK = "@@tutorial-block {}@@"
_BLOCK = re.compile(r"^```python\n(.*?)^```\n(?:\n```text\n.*?^```\n)?", re.S | re.M)

pytestmark = pytest.mark.timeout(300)


def python_blocks(text: str) -> list[str]:
    """The code of every fenced ```python block, in order."""
    return [m.group(1) for m in _BLOCK.finditer(text)]


def script(blocks: list[str]) -> str:
    parts = ["import matplotlib\nmatplotlib.use('Agg')\n"]
    for i, code in enumerate(blocks):
        parts.append(f"print({MARK.format(i)!r}, flush=True)\n")
        parts.append(code)
    parts.append(f"print({MARK.format('end')!r}, flush=True)\n")
    return "".join(parts)


def iconfig_for_tutorial(directory: Path) -> Path:
    """The session's iconfig with 20 ms frames (same IOC, data directory, catalog, SPEC file).

    With the test session's 2 ms frames an acquisition can end before ophyd's
    ``SingleTrigger.trigger()`` returns, which then returns None and the run fails.
    """
    src = Path(os.environ["ADSCAN_ICONFIG"])
    cfg = yaml.safe_load(src.read_text())
    cfg["detector"].update(acquire_time=0.02, acquire_period=0.02)
    cfg["catalog"]["backend"] = "tiled"  # the tutorial reads through the Tiled data service
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "iconfig.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    devices = src.parent / "devices.yml"
    if devices.exists():
        (directory / "devices.yml").write_text(devices.read_text())
    return directory / "iconfig.yml"


def run_tutorial(
    workdir: Path, iconfig: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "tutorial_blocks.py"
    path.write_text(script(python_blocks(TUTORIAL.read_text())))
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    if iconfig is not None:
        env["ADSCAN_ICONFIG"] = str(iconfig)
    return subprocess.run(
        [sys.executable, str(path)],
        cwd=workdir,
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def outputs(stdout: str, n: int) -> list[str]:
    """stdout of each block (split at the markers)."""
    out = []
    for i in range(n):
        after = stdout.split(MARK.format(i) + "\n", 1)[1]
        nxt = MARK.format(i + 1 if i + 1 < n else "end")
        out.append(after.split(nxt, 1)[0])
    return out


def update_tutorial(stdout: str) -> str:
    """The tutorial with a ```text block of real output after each ```python block."""
    text = TUTORIAL.read_text()
    outs = iter(outputs(stdout, len(python_blocks(text))))

    def repl(m: re.Match) -> str:
        out = next(outs).strip("\n").rstrip()
        block = f"```python\n{m.group(1)}```\n"
        return block + (f"\n```text\n{out}\n```\n" if out else "")

    return _BLOCK.sub(repl, text)


def test_tutorial_has_the_steps():
    text = TUTORIAL.read_text()
    blocks = python_blocks(text)
    assert len(blocks) >= 10
    code = "\n".join(blocks)
    for needle in (
        "from adscan.instrument import *",
        "bp.count([simdet.stats1], num=5)",
        "adscan_count(",
        "adscan_scan(",
        "adscan_scan2(",
        "adscan_grid_scan(",
        '["simdet_image"]',
        "assets(run)",
        "spec_file_path",
        "plot_run",
        "verify_run",
        "frames=",
    ):
        assert needle in code, needle


def test_tutorial_runs(beamline, tmp_path):
    from adscan.core.config import load_iconfig
    from adscan.tiled import server

    path = iconfig_for_tutorial(tmp_path / "config")
    cfg = load_iconfig(path)
    server.ensure(cfg)  # what `adscan up` starts before the tutorial
    try:
        proc = run_tutorial(tmp_path / "work", path)
    finally:
        server.stop(cfg)
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    blocks = python_blocks(TUTORIAL.read_text())
    outs = outputs(proc.stdout, len(blocks))
    joined = "".join(outs)
    assert "obj.connected=True 'simdet'" in joined
    assert "image_data.shape=(5, 3, 1024, 1024)" in joined
    assert (
        "(5, 3, 1024, 1024)" in outs[blocks.index(next(b for b in blocks if "adscan_scan(" in b))]
    )
    assert "verify: PASS" in joined and "FAIL" not in joined
    assert joined.count(" True") >= 3


if __name__ == "__main__":  # refresh the outputs pasted in docs/tutorial.md
    import tempfile

    if "--update" not in sys.argv:
        sys.exit(__doc__)
    from adscan.core.config import load_iconfig
    from adscan.tiled import server

    with tempfile.TemporaryDirectory() as tmp:
        path = iconfig_for_tutorial(Path(tmp) / "config")
        server.ensure(load_iconfig(path))
        try:
            result = run_tutorial(Path(tmp) / "work", path)
        finally:
            server.stop(load_iconfig(path))
    if result.returncode:
        sys.exit(f"tutorial failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    TUTORIAL.write_text(update_tutorial(result.stdout))
    print(f"updated {TUTORIAL}")
