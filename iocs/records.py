"""Real EPICS records (softioc) generated from the record table of ``iocs/ad_table.txt``.

Each table line becomes a base record of the ADCore template's kind (ao/ai, longout/longin,
bo/bi, mbbo/mbbi, stringout/stringin, CHAR waveforms for strings, numeric waveforms), so the
IOC core itself gives what a real areaDetector IOC gives: enum strings checked by the CA
server, ``.DISA`` and every other field, monitors posted by rsrv.  A few template types have
no Python device support in softioc and are served as the nearest base record: ``busy`` as
bo, ``calc`` as ai, ``calcout`` as ao, ``fanout`` as longout, ``asyn`` as stringout.

Writes: every output record is *blocking* (PACT until its behaviour ran) and processed on
every put (``always_update``); behaviour runs in one dispatcher thread in arrival order, so
the last write wins and a put callback completes only after the readback (``_RBV``) was set,
as in an asyn driver whose ``writeXxx`` sets the readback within the write.

The IOC's own edges on output records (``AcquireBusy`` 1 then 0, ``Acquire`` back to 0)
each reach clients as a monitor, in order: such a record posts its value when its
processing completes, so a second write while the first is still PACT would
overwrite it unseen ("1" never posted, "0" no change) and ophyd, waiting for AcquireBusy's
1 -> 0 edge, would wait forever.  For such edges (``Group.set(..., edge=True)``) the write
first waits (bounded) until the record's previous processing completed; see
:func:`await_posted`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .ad_table import PVSpec, spec_for

logger = logging.getLogger("adscan.iocs.records")

#: Returned by a behaviour's ``on_put``: the behaviour set the readback itself (or keeps it).
KEEP_RBV = object()

OUT_TYPES = {"ao", "longout", "bo", "busy", "mbbo", "stringout", "calcout", "fanout", "asyn"}


#: how long an IOC-side write waits for the record's previous value to be posted
POST_WAIT_S = 10.0

_THREAD = threading.local()


def on_dispatcher_thread() -> bool:
    """True in the thread that runs put behaviour (it completes PACT records: never wait)."""
    return getattr(_THREAD, "dispatcher", False)


def await_posted(rec, name: str, timeout: float = POST_WAIT_S) -> bool:
    """Wait until ``rec`` is not PACT (its last value was posted to clients); False on timeout.

    Returns at once on the dispatcher thread, whose queue holds the completion waited for.
    """
    record = getattr(rec, "_record", None)  # None before iocInit: nothing posted yet
    if record is None or on_dispatcher_thread() or not record.PACT:
        return True
    deadline = time.monotonic() + timeout
    pause = 0.0002
    while record.PACT:
        if time.monotonic() > deadline:
            logger.error(
                "%s: previous value not posted after %.0f s; writing anyway", name, timeout
            )
            return False
        time.sleep(pause)
        pause = min(2 * pause, 0.005)
    return True


class Dispatcher:
    """softioc dispatcher: put behaviour in one thread, first come first served."""

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="ioc-puts", daemon=True)
        self.thread.start()

    def __call__(self, func, func_args=(), completion=None, completion_args=()):
        self.q.put((func, func_args, completion, completion_args))

    def _run(self) -> None:
        _THREAD.dispatcher = True
        while True:
            func, args, completion, cargs = self.q.get()
            try:
                func(*args)
            except Exception:  # noqa: BLE001 - a behaviour error must not stop the IOC
                logger.exception("put behaviour failed")
            finally:
                if completion:
                    completion(*cargs)


def _same(a, b) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    except (TypeError, ValueError):
        return a == b


def _is_out(spec: PVSpec) -> bool:
    if spec.rtype in ("wchar", "wlong", "wdouble"):
        return not spec.read_only
    return spec.rtype in OUT_TYPES


class Group:
    """The records of one cam/plugin (``kad:cam1:`` ...), with get/set by PV suffix.

    ``on_put(name, value)`` (set by the behaviour) runs for client puts to output records;
    it may return a different value to store (a refused put puts back the old value), or
    :data:`KEEP_RBV` when it set the readback itself.
    """

    def __init__(
        self,
        prefix: str,
        suffix: str,
        overrides: dict[str, dict] | None = None,
        inputs: frozenset[str] = frozenset(),
    ):
        from softioc import builder

        self.prefix = prefix + suffix
        self.suffix = suffix
        self.specs = {s.name: s for s in spec_for(suffix)}
        self.records: dict[str, Any] = {}
        self.on_put: Callable[[str, Any], Any] | None = None
        #: output records whose ``on_put`` acts (may refuse, change or own the readback);
        #: the others' readbacks follow a write at once (see :meth:`_early_rbv`)
        self.active: frozenset[str] | None = None
        self._internal: dict[str, list[tuple[Any, float]]] = {}
        self._lock = threading.Lock()
        #: written by the IOC only: input records, so their monitors queue behind the others'
        self.inputs = inputs
        overrides = overrides or {}
        builder.SetDeviceName(self.prefix.rstrip(":"))
        for spec in self.specs.values():
            if spec.rtype == "disa":
                continue  # a field of its record (e.g. DataType_RBV.DISA), served by the core
            rec = self._make(builder, spec, overrides.get(spec.name, {}))
            self.records[spec.name] = rec
        builder.UnsetDevice()

    # -- construction
    def _is_out(self, spec: PVSpec) -> bool:
        return spec.name not in self.inputs and _is_out(spec)

    def _make(self, builder, spec: PVSpec, extra: dict):
        out = self._is_out(spec)
        kw: dict[str, Any] = {}
        if out:
            kw.update(always_update=True, blocking=True, on_update=self._updater(spec.name))
            if spec.rbv:
                kw["validate"] = self._early_rbv(spec.name, spec.rbv)
        name, rt, default = spec.name, spec.rtype, spec.default
        if spec.enums:
            idx = spec.enums.index(default) if default in spec.enums else 0
            enums = [e[:25] for e in spec.enums[:16]]  # mbb records: 16 states, 25 chars
            if rt in ("bo", "bi", "busy"):
                zn, on = (enums + ["", ""])[:2]
                make = builder.boolOut if out else builder.boolIn
                return make(name, ZNAM=zn, ONAM=on, initial_value=idx, **kw)
            make = builder.mbbOut if out else builder.mbbIn
            return make(name, *enums, initial_value=min(idx, len(enums) - 1), **kw)
        if rt == "wchar":
            make = builder.longStringOut if out else builder.longStringIn
            return make(name, length=spec.length, initial_value=str(default), **kw)
        if rt in ("wlong", "wdouble"):
            dt = np.int32 if rt == "wlong" else np.float64
            make = builder.WaveformOut if out else builder.WaveformIn
            return make(
                name, datatype=dt, length=spec.length, initial_value=np.zeros(spec.length, dt), **kw
            )
        if rt == "wdata":
            make = builder.WaveformIn
            return make(name, **extra)
        if rt in ("ao", "calcout"):
            return builder.aOut(name, PREC=3, initial_value=float(default or 0), **kw)
        if rt in ("ai", "calc"):
            return builder.aIn(name, PREC=3, initial_value=float(default or 0), **kw)
        if rt in ("longout", "fanout") or (rt == "subarray" and out):
            return builder.longOut(name, initial_value=int(default or 0), **kw)
        if rt in ("longin", "subarray"):
            return builder.longIn(name, initial_value=int(default or 0), **kw)
        if rt in ("stringout", "asyn"):
            return builder.stringOut(name, initial_value=str(default)[:39], **kw)
        if rt == "stringin":
            return builder.stringIn(name, initial_value=str(default)[:39], **kw)
        raise ValueError(f"unknown record type {rt!r} for {self.prefix}{name}")

    def _early_rbv(self, name: str, rbv: str):
        """softioc ``validate`` hook: runs within the record's processing (the CA server's
        thread), before the behaviour is dispatched.  A write the behaviour does not act on
        (not in :attr:`active`: FileName, FileTemplate, AutoSave, ...) sets its readback at
        once, as an asyn driver's ``writeOctet``/``writeInt32`` sets the parameter within the
        write: a client reading the readback right after a write without callback sees the
        written value, however busy the behaviour threads are."""

        def validate(_record, value) -> bool:
            if self.active is not None and name not in self.active:
                try:
                    self.set(rbv, value)
                except Exception:  # noqa: BLE001 - the dispatched put sets it again
                    logger.exception("readback of %s%s", self.prefix, name)
            return True

        return validate

    def prioritise_early_readbacks(self) -> int:
        """After iocInit: the readbacks :meth:`_early_rbv` sets go through the high-priority
        callback thread (``PRIO=HIGH``); how many.

        A softioc input record posts its value from the callback thread of its ``PRIO``
        (scanIoRequest); at frame rate the low-priority one queues ~60 values a frame, and a
        configuration write's readback (ImageMode, BlockingCallbacks, ...) waited over 10 s
        behind them under load.  Only readbacks of writes no behaviour acts on move: they
        are not part of a frame's sequence, and a HIGH one can only arrive earlier.  Frame
        values, AcquireBusy and the behaviours' readbacks stay on cbLow, in order.
        """
        if self.active is None:
            return 0
        moved = 0
        for spec in self.specs.values():
            if spec.rtype == "disa" or not self._is_out(spec) or spec.name in self.active:
                continue
            if spec.rbv and spec.rbv in self.records:
                self.records[spec.rbv].set_field("PRIO", "HIGH")
                moved += 1
        return moved

    def _updater(self, name: str):
        def on_update(value):
            self._client_put(name, value)

        return on_update

    # -- values
    def _py(self, name: str, raw):
        spec = self.specs[name]
        if spec.enums and not isinstance(raw, str):
            i = int(raw)
            return spec.enums[i] if 0 <= i < len(spec.enums) else str(i)
        return raw

    def get(self, name: str):
        """Current value of PV suffix ``name`` (enums as their strings)."""
        return self._py(name, self.records[name].get())

    def set(self, name: str, value, only_changed: bool = False, edge: bool = False) -> None:
        """Write ``value`` from the IOC side (posts monitors; runs no behaviour).

        ``edge``: a transition clients wait for (AcquireBusy/Acquire back to 0): an output
        record's previous value is posted first (:func:`await_posted`).  Other values may
        be merged (last write wins), as ADCore's parameter callbacks may be: waiting there
        would tie a plugin thread's throughput to the put dispatcher's latency."""
        rec = self.records[name]
        spec = self.specs[name]
        if spec.enums and isinstance(value, str):
            value = spec.enums.index(value)
        if only_changed:
            cur = rec.get()
            try:
                if np.array_equal(np.asarray(cur), np.asarray(value)):
                    return
            except (TypeError, ValueError):
                pass
        if self._is_out(spec):
            if edge:
                await_posted(rec, self.prefix + name)  # clients must see the value before
            with self._lock:
                self._internal.setdefault(name, []).append((value, time.monotonic()))
        rec.set(value)

    def set_pair(self, name: str, value, only_changed: bool = False) -> None:
        """Write a setpoint and its readback."""
        self.set(name, value, only_changed=only_changed)
        rbv = self.specs[name].rbv
        if rbv:
            self.set(rbv, value, only_changed=only_changed)

    def _is_internal(self, name: str, value) -> bool:
        with self._lock:
            pending = self._internal.get(name)
            now = time.monotonic()
            while pending:
                v, t = pending[0]
                if now - t > 5.0:  # merged into a later processing: forget it
                    pending.pop(0)
                    continue
                same = _same(v, value)
                if same:
                    pending.pop(0)
                    return True
                return False
            return False

    def _client_put(self, name: str, raw) -> None:
        spec = self.specs[name]
        value = self._py(name, raw)
        if self._is_internal(name, raw):
            if spec.rbv:
                self.set(spec.rbv, raw)
            return
        stored = value
        if self.on_put is not None:
            new = self.on_put(name, value)
            if new is KEEP_RBV:
                return
            if new is not None and new is not value and not _same(new, value):
                stored = new
                self.set(name, new)
        if spec.rbv and stored is not None:
            self.set(spec.rbv, stored)

    def put_initial(self, name: str, value) -> None:
        """Start-up value (before iocInit): stored without behaviour."""
        spec = self.specs[name]
        if spec.enums and isinstance(value, str):
            value = spec.enums.index(value)
        self.records[name].set(value)
