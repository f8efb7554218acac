"""The simulated ADSimDetector driver (cam1:) and the plugin chain of one AD IOC.

Acquisition runs in the driver's own thread, like an areaDetector driver's simTask:
ImageMode Single/Multiple/Continuous, NumImages, AcquireTime/AcquirePeriod (frame period
``max(AcquireTime, AcquirePeriod)``, timed from the start of each frame), ``Acquire=0``
aborts (DetectorState ``Aborted``).  Each NDArray goes to every enabled plugin whose
NDArrayPort is ``SIM1``.  ``AcquireBusy`` is 1 from ``Acquire=1`` until acquisition is
over and, with ``WaitForPlugins=Yes`` (or after an abort), every plugin has processed every
array it received.  Frames come from :class:`~adscan.iocs.frames.FrameSynth`; the peak
follows the motors, whose ``.RBV`` this process monitors over Channel Access
(:class:`MotorWatch`; without a motor IOC the peak stays centred).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import types

import numpy as np

from .frames import DTYPES, FrameSynth, NDArr
from .records import KEEP_RBV, Group

logger = logging.getLogger("adscan.iocs.driver")


class _LoopbackSocket(socket.socket):
    """A socket whose wildcard bind binds 127.0.0.1 (caproto's search socket binds ``''``)."""

    def bind(self, address):
        host, port = address[:2]
        super().bind(("127.0.0.1" if host in ("", "0.0.0.0") else host, port))


_LOOPBACK_SOCKET = types.ModuleType("loopback_socket")
_LOOPBACK_SOCKET.__dict__.update(socket.__dict__)
_LOOPBACK_SOCKET.socket = _LoopbackSocket


class MotorWatch:
    """Latest ``.RBV`` of each motor, from CA monitors (caproto client, loopback sockets)."""

    def __init__(self, names: list[str]):
        self.names = names
        self.values: dict[str, float] = {}
        self.ctx = None
        if names:
            threading.Thread(target=self._connect, name="motor-watch", daemon=True).start()

    def _connect(self) -> None:
        try:
            import caproto.threading.client as cl

            orig = cl.ca.bcast_socket
            cl.ca.bcast_socket = lambda socket_module=None: orig(_LOOPBACK_SOCKET)
            try:
                self.ctx = cl.Context()
            finally:
                cl.ca.bcast_socket = orig
            pvs = self.ctx.get_pvs(*[n + ".RBV" for n in self.names], timeout=2.0)
            self._subs = []  # caproto keeps weak references to callbacks: keep them here
            for name, pv in zip(self.names, pvs, strict=True):
                sub = pv.subscribe(data_type="time")

                def update(sub, resp, name=name):
                    self.values[name] = float(resp.data[0])

                sub.add_callback(update)
                self._subs.append((sub, update))
        except Exception:  # noqa: BLE001 - no motors: centred peak
            logger.exception("motor monitor failed")

    def positions(self) -> list[float]:
        return [self.values.get(n, 0.0) for n in self.names]


class Camera:
    """cam1: behaviour (puts) and the acquisition thread."""

    def __init__(self, ioc, group: Group, shape: tuple[int, int], data_type: str):
        self.ioc = ioc
        self.g = group
        group.on_put = self.on_put
        group.active = frozenset({"Acquire", "ArrayCounter", "SizeX", "SizeY", "MinX", "MinY"})
        self.shape = shape
        self.data_type = data_type
        #: FrameSynth per DataType, most recent last (a pool is 4 frames: keep a few)
        self._synths: dict[str, FrameSynth] = {data_type: FrameSynth(shape, data_type)}
        self._synth_lock = threading.Lock()
        self.acquiring = False
        self.abort = threading.Event()
        self.thread: threading.Thread | None = None
        self.unique_id = 0
        self.counter = 0
        self.lock = threading.Lock()

    # -- puts (dispatcher thread: in order, last write wins)
    def on_put(self, name: str, value):
        g = self.g
        if name == "Acquire":
            if value == "Acquire":
                self.start()
            else:
                self.stop()
        elif name == "ArrayCounter":
            self.counter = int(value)
        elif name == "DataType":
            # as ADSimDetector: the readback follows within the write (records.Group's
            # early readback), the next frame has the new type, even mid-acquisition; a
            # new type's frame pool is built in the background (that frame waits for it)
            self.data_type = value
            if value not in self._synths:
                threading.Thread(
                    target=self.synth, args=(value,), name="synth", daemon=True
                ).start()
            self.update_geometry()
        elif name in ("SizeX", "SizeY", "MinX", "MinY"):
            g.set(name + "_RBV", int(value))
            self.update_geometry()
            return KEEP_RBV
        return value

    def synth(self, data_type: str | None = None) -> FrameSynth:
        """The frame synthesiser of ``data_type`` (default: the current DataType)."""
        name = data_type or self.data_type
        with self._synth_lock:
            s = self._synths.pop(name, None) or FrameSynth(self.shape, name)
            self._synths[name] = s
            while len(self._synths) > 3:
                del self._synths[next(iter(self._synths))]
            return s

    def geometry(self):
        ny, nx = self.shape
        g = self.g
        x0 = min(max(int(g.get("MinX")), 0), nx - 1)
        y0 = min(max(int(g.get("MinY")), 0), ny - 1)
        sx, sy = int(g.get("SizeX")), int(g.get("SizeY"))
        sx = nx - x0 if sx <= 0 else min(sx, nx - x0)
        sy = ny - y0 if sy <= 0 else min(sy, ny - y0)
        return x0, y0, sx, sy

    def update_geometry(self) -> None:
        x0, y0, sx, sy = self.geometry()
        self.g.set("ArraySizeX_RBV", sx, only_changed=True)
        self.g.set("ArraySizeY_RBV", sy, only_changed=True)
        self.g.set(
            "ArraySize_RBV", sx * sy * np.dtype(DTYPES[self.data_type]).itemsize, only_changed=True
        )

    def frame_data(self) -> np.ndarray:
        data = self.synth().frame(self.ioc.motors.positions())
        x0, y0, sx, sy = self.geometry()
        ny, nx = self.shape
        if (x0, y0, sx, sy) != (0, 0, nx, ny):
            data = data[y0 : y0 + sy, x0 : x0 + sx]
        if self.g.get("ReverseX") == "Yes":
            data = data[:, ::-1]
        if self.g.get("ReverseY") == "Yes":
            data = data[::-1, :]
        return data

    # -- acquisition
    def start(self) -> None:
        with self.lock:
            if self.acquiring or self.ioc.closed:
                return
            self.acquiring = True
            self.abort.clear()
        g = self.g
        g.set("AcquireBusy", "Acquiring")
        g.set("Acquire_RBV", "Acquiring")
        g.set("DetectorState_RBV", "Acquire")
        g.set("StatusMessage_RBV", "Acquiring data")
        g.set("NumImagesCounter_RBV", 0)
        self.thread = threading.Thread(target=self._acquire, name="acquire", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.acquiring:
            self.abort.set()

    def _acquire(self) -> None:
        g = self.g
        aborted = False
        try:
            mode = g.get("ImageMode")
            total = {"Single": 1, "Multiple": max(int(g.get("NumImages")), 1)}.get(
                mode, float("inf")
            )
            i = 0
            t_next = time.monotonic()
            while i < total:
                t0 = max(time.monotonic(), t_next) if i else time.monotonic()
                acq = max(float(g.get("AcquireTime")), 0.0)
                period = max(acq, float(g.get("AcquirePeriod")))
                t_next = t0 + period
                if total != float("inf"):
                    g.set("TimeRemaining_RBV", (total - i) * period)
                g.set("DetectorState_RBV", "Acquire", only_changed=True)
                data = self.frame_data()  # synthesised during the exposure
                if self.abort.wait(max(t0 + acq - time.monotonic(), 0)):
                    aborted = True
                    break
                self.unique_id += 1
                arr = NDArr.new(data, self.unique_id)
                i += 1
                arr.end_of_acquisition = i >= total
                self.counter += 1
                g.set("ArrayCounter_RBV", self.counter)
                g.set("NumImagesCounter_RBV", i)
                g.set("NumExposuresCounter_RBV", 1)
                if g.get("ArrayCallbacks") == "Enable":
                    self.ioc.publish("SIM1", arr)
                if i >= total:
                    break
                if self.abort.wait(max(t_next - time.monotonic(), 0)):
                    aborted = True
                    break
        except Exception:  # noqa: BLE001 - keep the IOC alive; report like a driver error
            logger.exception("acquisition failed")
            g.set("StatusMessage_RBV", "Acquisition error (see IOC log)")
        finally:
            self._finish(aborted)

    def _finish(self, aborted: bool) -> None:
        g = self.g
        g.set("Acquire_RBV", "Done")
        g.set("TimeRemaining_RBV", 0.0)
        g.set("DetectorState_RBV", "Aborted" if aborted else "Idle")
        g.set("StatusMessage_RBV", "Acquisition aborted" if aborted else "Acquisition completed")
        if g.get("WaitForPlugins") == "Yes" or aborted:
            self.ioc.wait_plugins_idle(2.0 if self.ioc.closed else 300.0)
        if aborted:
            for p in self.ioc.plugins:
                if hasattr(p, "abort"):
                    p.abort("Capture stopped: acquisition aborted")
        with self.lock:
            self.acquiring = False
        g.set("Acquire", "Done", edge=True)  # clients wait for these 1 -> 0 edges
        g.set("AcquireBusy", "Done", edge=True)
