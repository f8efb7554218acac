"""Issue 12.1: no string can break a SPEC file line, whatever field it reaches.

Readers split the file with ``str.splitlines()``, which breaks on ``\\n \\r \\x0b \\x0c \\x1c
\\x1d \\x1e \\x85 U+2028 U+2029``.  Each of those (and NUL, CR LF, a lone surrogate) is put in
every field that reaches the file: md keys and values, plan name and arguments, motor and
detector names (``#O``, ``#L``), string fields (``#U``), resource paths (``#C resource``),
the stop reason (``#C reason``).  The file must then parse with spec2nexus and with silx (in a
subprocess: silx can crash on long lines) with every scan intact, numbered on, with its rows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from event_model import compose_run
from spec2nexus.spec import SpecDataFile

from adscan.callbacks.specfile import AdscanSpecWriter
from adscan.callbacks.textsafe import is_one_line, one_line

#: Every character str.splitlines() splits on (the test checks the list is complete), plus
#: CR LF, NUL and a lone surrogate (cannot be encoded as UTF-8).
SPLITLINES = ["\n", "\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
BREAKS = [*SPLITLINES, "\r\n", "\x00", "\ud800"]
ROWS = 3


def test_break_list_is_every_splitlines_character():
    found = [chr(i) for i in range(0x110000) if len(f"a{chr(i)}b".splitlines()) > 1]
    assert found == SPLITLINES


@pytest.mark.parametrize("brk", BREAKS, ids=[f"U+{ord(b[0]):04X}{len(b)}" for b in BREAKS])
def test_one_line_removes_break(brk):
    text = one_line(f"a{brk}#S 999 b")
    assert is_one_line(text) and text.startswith("a") and text.endswith("#S 999 b")
    text.encode("utf-8")


def evil(brk: str, what: str) -> str:
    """A value that would start a fake scan line if the break survived."""
    return f"{what}{brk}#S 999  fake{brk}#L a  b{brk}1 2"


def write_run(writer: AdscanSpecWriter, scan_id: int, brk: str | None) -> str:
    """One 3-point run whose every string field holds ``brk`` (None: a clean run)."""

    def s(what: str) -> str:
        return what if brk is None else evil(brk, what)

    motor, det = s("mot"), s("det")
    md = {"note": s("note"), s("key"): s("value"), "nested": {s("k2"): [s("v2"), 1]}}
    run = compose_run(
        metadata=dict(
            md,
            scan_id=scan_id,
            plan_name=s("plan"),
            motors=[motor],
            detectors=[det],
            plan_args={"detectors": [det], "motor": motor, "label": s("arg")},
            num_points=ROWS,
        )
    )
    writer("start", run.start_doc)
    data_keys = {
        motor: {"source": "SIM", "dtype": "number", "shape": []},
        f"{det}_total": {"source": "SIM", "dtype": "number", "shape": []},
        f"{det}_label": {"source": "SIM", "dtype": "string", "shape": []},
    }
    desc = run.compose_descriptor(
        name="primary",
        data_keys=data_keys,
        object_keys={motor: [motor], det: [f"{det}_total", f"{det}_label"]},
        hints={motor: {"fields": [motor]}, det: {"fields": [f"{det}_total"]}},
    )
    writer("descriptor", desc.descriptor_doc)
    res = run.compose_resource(
        spec="AD_HDF5",
        root="/",
        resource_path=s("tmp/file") + ".h5",
        resource_kwargs={"frame_per_point": 1},
    )
    writer("resource", res.resource_doc)
    for i in range(ROWS):
        values = {motor: float(i), f"{det}_total": 10.0 * i, f"{det}_label": s(f"label{i}")}
        writer("event", desc.compose_event(data=values, timestamps=dict.fromkeys(values, 0.0)))
    writer(
        "stop",
        run.compose_stop(
            exit_status="abort" if brk else "success", reason=s("reason") if brk else ""
        ),
    )
    return run.start_doc["uid"]


SILX_READ = r"""
import json, sys
from silx.io.specfile import SpecFile
sf = SpecFile(sys.argv[1])
out = []
for i in range(len(sf)):
    scan = sf[i]
    out.append({"number": scan.number, "labels": list(scan.labels),
                "rows": int(scan.data.shape[1]) if scan.data.size else 0})
print(json.dumps(out))
"""


def test_every_break_in_every_field_keeps_the_file_readable(tmp_path):
    path = tmp_path / "linebreaks.dat"
    writer = AdscanSpecWriter(path)
    uids = [write_run(writer, 1, None)]
    for n, brk in enumerate(BREAKS, start=2):
        uids.append(write_run(writer, n, brk))
    uids.append(write_run(writer, len(BREAKS) + 2, None))
    assert writer.errors == 0
    n_scans = len(BREAKS) + 2

    raw = path.read_bytes()
    text = raw.decode("utf-8")  # also: nothing unencodable was written
    lines = text.split("\n")[:-1]
    assert text.splitlines() == lines, "a line holds a character splitlines() breaks on"
    assert all(is_one_line(line) for line in lines)
    assert sum(line.startswith("#S ") for line in lines) == n_scans
    assert not any(line.startswith(("#S 999", "#L a")) for line in lines)

    # spec2nexus: every scan, numbered on, with its rows and its uid
    sdf = SpecDataFile(str(path))
    numbers = [int(n) for n in sdf.getScanNumbers()]
    assert numbers == list(range(1, n_scans + 1))
    for number, uid in zip(numbers, uids, strict=True):
        scan = sdf.getScan(number)
        scan.interpret()
        assert len(scan.L) == 4, scan.L  # motor, Epoch, Epoch_float, detector total
        assert all(len(scan.data[label]) == ROWS for label in scan.L)
        assert scan.data[scan.L[-1]] == [0.0, 10.0, 20.0]
        assert any(c.endswith(f"uid = {uid}") for c in scan.comments)
        assert any("exit_status = " in c for c in scan.comments)

    # silx, in a subprocess (it can crash the process on some files)
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-c", SILX_READ, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, f"silx failed ({proc.returncode}): {proc.stderr[-2000:]}"
    scans = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [s["number"] for s in scans] == list(range(1, n_scans + 1))
    assert all(len(s["labels"]) == 4 and s["rows"] == ROWS for s in scans), scans


def test_clean_values_are_written_unchanged(tmp_path):
    """Sanitising changes nothing in ordinary text (tabs aside: SPEC columns are spaces)."""
    path = tmp_path / "clean.dat"
    writer = AdscanSpecWriter(path)
    write_run(writer, 1, None)
    text = Path(path).read_text()
    assert "#MD note = note" in text and "#U det_label = label2" in text
    assert "tmp/file.h5" in text
