"""SPEC data file writer: one file per experiment, one ``#S`` scan per bluesky run.

Built on apstools' ``SpecWriterCallback2`` (rows are written as events arrive), with these
changes for adscan:

* ONE file (``spec.directory`` / ``spec.file`` in ``iconfig.yml``); a new writer (e.g. after a
  service restart) appends to it.  The file header (``#F #E #D #C #O``) is written once, and again
  only when the list of positioners (``#O``) changes.
* Scan numbers (the rule): ``#S n`` uses the run's ``scan_id`` when it is larger than every
  ``#S`` already in the file, otherwise ``highest + 1``.  So ``#S`` numbers in the file always
  increase, and equal ``RE.md["scan_id"]`` whenever the two have not diverged.  With
  ``make_spec_writer(cfg, RE)``, ``RE.md["scan_id"]`` is raised to the file's highest ``#S`` so
  the next run's scan_id continues the file.
* ``#S n  scan(detectors=['simdet'], num=5, args=['m1', -1, 1])``: the plan command rebuilt
  from the start document's ``plan_name`` and ``plan_args`` (device reprs become names).
* ``#L``: for each motor its readback then its other read fields (e.g. ``m1  m1_user_setpoint``),
  ``Epoch  Epoch_float``, other scalar fields, then detector fields (first detector field last,
  the SPEC convention).  External (image) fields and arrays are not columns; string fields are
  written as ``#U name = value`` lines when they change.
* Each resource document becomes one line, as in the how-to::

      #C Thu Jun 13 11:36:38 2024.  resource {'spec': 'AD_HDF5', 'root': '/', 'resource_path': ...}

  No ``#C datum`` lines and no ``#U externals`` line (silx crashes on lines > ~10,650 chars);
  every line written is capped at ``max_line_length`` characters.
* Each row is appended (and the file closed) as its event arrives, so a reader sees progress.
* Every run ends with ``#C ... exit_status = success|fail|abort`` (``num_events_*`` before it),
  also when the run failed before its first point (a scan with ``#N 0``).  A run that never got
  a stop document is closed with ``exit_status = incomplete`` when the next run starts.
* ``#O``/``#P`` positioner lines come from the stream named by ``positioner_stream`` (apstools'
  ``label_start_motor`` by default, or e.g. ``"baseline"``).  apstools' ``label_stream_decorator``
  is not used (it needs ``ns=`` outside IPython); without such a stream ``#O0``/``#P0`` are empty.
* Grid scans: flat rows, plus ``#MD shape = (...)`` and the other start metadata as ``#MD``.
* Errors in this callback are logged (``adscan.callbacks.specfile``) and counted in
  ``errors``, never raised into the RunEngine: the SPEC file is a by-product, the catalog is
  the record.

Use: ``RE.subscribe(make_spec_writer(cfg, RE))``.  The line formatting is in
:mod:`adscan.callbacks.specformat`.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import time
from pathlib import Path
from typing import Any

import event_model
from apstools.callbacks.spec_file_writer import (
    PRIMARY_STREAM_NAME,
    SPEC_TIME_FORMAT,
    SpecWriterCallback2,
)
from apstools.utils.misc import render

from adscan.callbacks.specformat import (
    NUMERIC_DTYPES,
    RESOURCE_KEY_ORDER,
    rebuild_plan_command,
    scalar,
)
from adscan.callbacks.textsafe import one_label, one_line

logger = logging.getLogger(__name__)


def scan_numbers_in_file(path: str | Path) -> list[int]:
    """All ``#S`` scan numbers of a SPEC file, in file order (missing file: ``[]``)."""
    path = Path(path)
    numbers: list[int] = []
    if not path.exists():
        return numbers
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("#S "):
                parts = line.split()
                if len(parts) > 1:
                    try:
                        numbers.append(int(float(parts[1])))
                    except ValueError:
                        continue
    return numbers


class AdscanSpecWriter(SpecWriterCallback2):
    """SPEC writer for adscan (see the module docstring for the file layout and rules)."""

    def __init__(
        self,
        filename: str | Path,
        *,
        RE=None,
        positioner_stream: str = "label_start_motor",
        max_line_length: int = 4000,
    ):
        super().__init__()
        self._motor_stream_name = positioner_stream
        self.max_line_length = int(max_line_length)
        self.errors = 0
        self.stats = {"rows": 0, "row_seconds": 0.0}
        self.spec_filename = Path(filename)
        self.file_name.parent.mkdir(parents=True, exist_ok=True)
        self._in_scan = False
        self._header_written = False
        self._pending: list[str] = []
        self._string_values: dict[str, Any] = {}
        self.scan_number: int | None = None
        numbers = scan_numbers_in_file(self.file_name)
        self.last_scan_number = max(numbers, default=0)
        self._read_existing_header()
        if RE is not None:
            self.sync_scan_id(RE)

    # - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
    # file & numbering

    def _read_existing_header(self) -> None:
        """Reuse the header of an existing file: epoch and the last ``#O`` positioner list."""
        path = self.file_name
        if not path.exists() or path.stat().st_size == 0:
            self.write_new_file_header = True
            return
        epoch = None
        motors: list[str] | None = None
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("#E ") and epoch is None:
                    with contextlib.suppress(IndexError, ValueError):
                        epoch = int(float(line.split()[1]))
                elif line.startswith("#F "):
                    motors = []
                elif line.startswith("#O") and motors is not None:
                    names = line.split(None, 1)[1] if len(line.split(None, 1)) > 1 else ""
                    motors += [n for n in names.strip().split("  ") if n.strip()]
        if epoch is None or motors is None:
            self.write_new_file_header = True
            return
        self.file_epoch = epoch
        self._file_header_motor_keys = sorted(m.strip() for m in motors)
        self.write_new_file_header = False

    def sync_scan_id(self, RE) -> int:
        """Raise ``RE.md["scan_id"]`` to the highest ``#S`` in the file; return it."""
        current = RE.md.get("scan_id") or 0
        try:
            current = int(current)
        except (TypeError, ValueError):
            current = 0
        if current < self.last_scan_number:
            RE.md["scan_id"] = self.last_scan_number
        return int(RE.md.get("scan_id") or 0)

    def next_scan_number(self, scan_id: Any) -> int:
        try:
            scan_id = int(scan_id)
        except (TypeError, ValueError):
            scan_id = 0
        return scan_id if scan_id > self.last_scan_number else self.last_scan_number + 1

    # - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
    # document dispatch

    def receiver(self, key: str, doc: dict) -> None:
        """bluesky callback; never raises (errors are logged and counted)."""
        try:
            if key == "event_page":
                for event in event_model.unpack_event_page(doc):
                    super().receiver("event", event)
            elif key == "datum_page":
                return
            else:
                super().receiver(key, doc)
        except Exception:
            self.errors += 1
            logger.exception("SPEC writer failed on %r document (file %s)", key, self.file_name)

    __call__ = receiver

    # - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
    # documents

    def start(self, doc):
        if self._in_scan:
            self._close_unfinished()
        super().start(doc)
        self.file_epoch = int(self.file_epoch)
        self._in_scan = True
        self._header_written = False
        self._pending = []
        self._string_values = {}
        self.write_new_scan_header = False
        self.data_labels = []
        self._string_labels = []
        self.scan_number = self.next_scan_number(doc.get("scan_id"))
        self.last_scan_number = self.scan_number
        command = one_line(rebuild_plan_command(doc), self.max_line_length - 20)
        self.scan_command = f"{self.scan_number}  {command}"

    def descriptor(self, doc):
        if not self._in_scan:
            return
        super().descriptor(doc)
        if doc["name"] == PRIMARY_STREAM_NAME:
            self.data_labels, self._string_labels = self._column_labels(doc)

    def _column_labels(self, doc: dict) -> tuple[list[str], list[str]]:
        data_keys = doc["data_keys"]
        columns, strings = [], []
        for key, dk in data_keys.items():
            if dk.get("external") or len(dk.get("shape") or []) > 0:
                continue
            if dk.get("dtype") in NUMERIC_DTYPES:
                columns.append(key)
            elif dk.get("dtype") == "string":
                strings.append(key)

        hints = doc.get("hints") or {}
        object_keys = doc.get("object_keys") or {}

        def fields(names):
            out = []
            for name in names:
                for key in (hints.get(name) or {}).get("fields", []) + object_keys.get(name, []):
                    if key in columns and key not in out:
                        out.append(key)
                if name in columns and name not in out:
                    out.append(name)
            return out

        motors = fields(self.positioners)
        detectors = [k for k in fields(self.detectors) if k not in motors]
        others = [k for k in columns if k not in motors and k not in detectors]
        if len(detectors) > 1:  # SPEC convention: the main detector is the last column
            detectors.append(detectors.pop(0))
        return motors + ["Epoch", "Epoch_float"] + others + detectors, strings

    def event(self, doc):
        if not self._in_scan:
            return
        descriptor = self._streams.get(doc["descriptor"])
        if descriptor is None:
            logger.debug("event for unknown descriptor %s ignored", doc["descriptor"])
            return
        if descriptor["name"] == self._motor_stream_name:
            for k in self.motors:
                key = (
                    k if k in doc["data"] else (descriptor.get("object_keys", {}).get(k) or [k])[0]
                )
                self.motors[k] = doc["data"].get(key)
            return
        if descriptor["name"] != PRIMARY_STREAM_NAME:
            return
        t0 = time.perf_counter()
        self.write_file_header()
        self.write_scan_header()
        self.write_scan_data_row(doc)
        self.stats["rows"] += 1
        self.stats["row_seconds"] += time.perf_counter() - t0

    def resource(self, doc):
        if not self._in_scan:
            return
        ordered = {k: doc[k] for k in RESOURCE_KEY_ORDER if k in doc}
        ordered.update({k: v for k, v in doc.items() if k not in ordered})
        line = one_line(self._cmt(f"resource {ordered!r}"), self.max_line_length)
        if self._header_written:
            self._write_lines_([line], mode="a")
        else:
            self._pending.append(line)

    def datum(self, doc):
        """Datum documents are not written (the resource line locates the file)."""

    def stop(self, doc):
        if not self._in_scan or doc.get("run_start") != self.uid:
            return
        try:
            self.write_file_header()
            self.write_scan_header()
            self.exit_status = doc.get("exit_status")
            self.stop_reason = doc.get("reason", "")
            self.stop_time = doc.get("time")
            self.scanning = False
            self.write_scan_end(doc)
        finally:
            self._in_scan = False

    # - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -
    # writing

    def write_file_header(self):
        labels = sorted(one_label(k) for k in self.motors)  # as written in #O
        if self.file_name.exists() and self.file_name.stat().st_size > 0:
            if labels != (self._file_header_motor_keys or []):
                self.write_new_file_header = True
        else:
            self.write_new_file_header = True
        raw = self.motors
        self.motors = {one_label(k): v for k, v in raw.items()}
        try:
            super().write_file_header()
        finally:
            self.motors = raw

    def write_scan_header(self):
        if self._header_written:
            return
        dt = datetime.datetime.fromtimestamp(self.start_time)
        lines = ["", f"#S {self.scan_command}", "#D " + dt.strftime(SPEC_TIME_FORMAT)]
        if self.T_or_M is not None:
            lines.append(f"#{self.T_or_M} {self.T_or_M_value}")
        lines.append(self._cmt(f"uid = {self.uid}"))
        values = list(self.motors.values())
        if not values:
            lines.append("#P0 ")
        for r in range(0, len(values), 8):
            lines.append(f"#P{r // 8} " + " ".join(render(scalar(v)) for v in values[r : r + 8]))
        for k, v in self.metadata.items():
            lines.append(one_line(f"#MD {k} = {v}", self.max_line_length))
        lines.append(f"#N {len(self.data_labels)}")
        if self.data_labels:
            lines.append("#L " + "  ".join(one_label(label) for label in self.data_labels))
        else:
            lines.append("#C no data column labels identified")
        lines += self._pending
        self._pending = []
        self._write_lines_(lines, mode="a")
        self._header_written = True
        self.write_new_scan_header = False

    def write_scan_data_row(self, doc):
        data = doc["data"]
        row = []
        for label in self.data_labels:
            if label in ("Epoch", "Epoch_float"):
                value = doc["time"] - self.start_time
                row.append(str(round(value)) if label == "Epoch" else render(value))
                continue
            value = scalar(data.get(label))
            if isinstance(value, bool):
                value = int(value)
            row.append(render(value) if isinstance(value, (int, float)) else "nan")
        lines = [" ".join(row)]
        for label in self._string_labels:
            value = data.get(label)
            if label in data and value != self._string_values.get(label):
                self._string_values[label] = value
                lines.append(one_line(f"#U {label} = {value}", self.max_line_length))
        self._write_lines_(lines, mode="a")

    def write_scan_end(self, doc):
        lines = []
        for k, v in (doc.get("num_events") or {}).items():
            lines.append(self._cmt(f"num_events_{k} = {v}"))
        if doc.get("reason"):
            lines.append(one_line(self._cmt(f"reason = {doc['reason']}"), self.max_line_length))
        lines.append(self._cmt(f"exit_status = {doc.get('exit_status', 'not available')}"))
        self._write_lines_(lines, mode="a")

    def _close_unfinished(self):
        """Close a scan whose stop document never came."""
        try:
            self.write_file_header()
            self.write_scan_header()
            self._write_lines_([self._cmt("exit_status = incomplete (no stop document)")], mode="a")
        finally:
            self._in_scan = False

    def _write_lines_(self, lines, mode="a"):
        """Append lines and close the file (a reader sees every row at once).

        Every line, also those apstools composes (``#O``, ``#C``), is made exactly one line
        for ``str.splitlines()`` (:func:`adscan.callbacks.textsafe.one_line`): one bad value
        must never cost a file that holds other scans.
        """
        text = "\n".join(one_line(line, self.max_line_length) for line in lines) + "\n"
        with open(self.file_name, "a", encoding="utf-8") as f:
            f.write(text)


def spec_file_path(cfg: dict) -> Path:
    """``spec.directory`` / ``spec.file`` from the settings."""
    spec = cfg.get("spec") or {}
    return Path(spec["directory"]).expanduser() / spec["file"]


def make_spec_writer(cfg: dict | None = None, RE=None, **kwargs) -> AdscanSpecWriter:
    """The SPEC writer for this experiment's file; with *RE*, sync ``RE.md["scan_id"]``.

    The caller subscribes it: ``RE.subscribe(writer)``.
    """
    if cfg is None:
        from adscan.core.config import load_iconfig

        cfg = load_iconfig()
    return AdscanSpecWriter(spec_file_path(cfg), RE=RE, **kwargs)
