"""The simulated ADSimDetector v3.4 IOC on the real EPICS IOC core (softioc), one process.

``python -m adscan.iocs.ad_ioc --prefix kad: --data-dir D --port P --pva-port Q`` serves
every group of ``iocs/ad_table.txt`` (cam1, image1, Pva1, ROI1, Stats1, HDF1 and whatever
plugins the table holds) as real base records through rsrv on 127.0.0.1:P, and
``<prefix>Pva1:Image`` as an NTNDArray through a p4p pvAccess server (UDP search port Q,
TCP Q+1, loopback).  It prints ``READY-AD ...`` once the IOC runs; the launcher
(``iocs/server.py``) checks that every PV answers.  SIGTERM/SIGINT stop acquisition and
close open files (valid HDF5) before the process exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from adscan import epics_env

logger = logging.getLogger("adscan.ioc.ad")


#: Behaviour class per NDPlugin type; anything else is a pass-through plugin.
def _plugin_classes():
    from . import filewriter, plugins

    return {
        "NDPluginROI": plugins.ROIPlugin,
        "NDPluginStats": plugins.StatsPlugin,
        "NDPluginStdArrays": plugins.StdArraysPlugin,
        "NDPluginPva": plugins.PvaPlugin,
        **filewriter.FILE_PLUGINS,
        "NDFileNetCDF": filewriter.FilePlugin,
        "NDFileNexus": filewriter.FilePlugin,
        "NDFileMagick": filewriter.FilePlugin,
    }


class ADIOC:
    """Records, driver and plugins of one simulated detector."""

    def __init__(
        self,
        prefix: str,
        data_dir: Path,
        shape: tuple[int, int],
        data_type: str,
        motors: list[str],
        pva_pv=None,
    ):
        import numpy as np

        from . import plugins
        from .ad_table import GROUPS
        from .driver import Camera, MotorWatch
        from .frames import DTYPES
        from .records import Group

        self.prefix = prefix
        self.closed = False
        self.motors = MotorWatch(motors)
        ny, nx = shape
        dt = np.dtype(DTYPES[data_type])
        wave_dt = np.uint8 if dt.itemsize == 1 else dt
        classes = _plugin_classes()
        self.groups: dict[str, Group] = {}
        self.plugins: list = []
        for suffix, (_, ptype, port, upstream) in GROUPS.items():
            overrides = {}
            if "ArrayData" in {s for s in _names(suffix)}:
                overrides["ArrayData"] = dict(datatype=wave_dt, length=nx * ny)
            inputs = frozenset({"AcquireBusy"}) if suffix == "cam1:" else frozenset()
            g = Group(prefix, suffix, overrides, inputs=inputs)
            self.groups[suffix] = g
            if suffix == "cam1:":
                self.cam = Camera(self, g, shape, data_type)
                continue
            cls = classes.get(ptype, plugins.PassThroughPlugin)
            kw = {"pv": pva_pv} if cls is plugins.PvaPlugin else {}
            p = cls(self, g, ptype, port, **kw)
            self.plugins.append(p)
            self._initial_plugin(g, ptype, port, upstream, nx, ny, data_dir, data_type)
        self._initial_cam(nx, ny, data_type, dt.itemsize)

    @property
    def acquiring(self) -> bool:
        return self.cam.acquiring

    def _initial_cam(self, nx, ny, data_type, itemsize) -> None:
        g = self.groups["cam1:"]
        for name, val in (
            ("PortName_RBV", "SIM1"),
            ("MaxSizeX_RBV", nx),
            ("MaxSizeY_RBV", ny),
            ("SizeX", nx),
            ("SizeX_RBV", nx),
            ("SizeY", ny),
            ("SizeY_RBV", ny),
            ("ArraySizeX_RBV", nx),
            ("ArraySizeY_RBV", ny),
            ("ArraySize_RBV", nx * ny * itemsize),
            ("DataType", data_type),
            ("DataType_RBV", data_type),
            ("AcquireTime", 0.1),
            ("AcquireTime_RBV", 0.1),
            ("AcquirePeriod", 0.1),
            ("AcquirePeriod_RBV", 0.1),
            ("StatusMessage_RBV", "Idle"),
            ("DriverVersion_RBV", "3.4.0"),
        ):
            g.put_initial(name, val)

    def _initial_plugin(self, g, ptype, port, upstream, nx, ny, data_dir, data_type) -> None:
        put = g.put_initial
        for name, val in (
            ("PortName_RBV", port),
            ("PluginType_RBV", ptype),
            ("NDArrayPort", upstream),
            ("NDArrayPort_RBV", upstream),
            ("DriverVersion_RBV", "3.4.0"),
        ):
            if name in g.specs:
                put(name, val)
        if ptype == "NDPluginROI":
            for name, val in (("SizeX", nx), ("SizeX_RBV", nx), ("SizeY", ny), ("SizeY_RBV", ny)):
                put(name, val)
        elif ptype == "NDPluginStats":
            put("MaxSizeX", nx)
            put("MaxSizeY", ny)
        elif ptype == "NDPluginPva":
            put("PvName_RBV", f"{self.prefix}Pva1:Image")
        elif ptype == "NDPluginStdArrays":
            # image1 starts with the cam's dimensions (ophyd's ImagePlugin.image derived
            # signal logs tracebacks on 0 sizes); HDF1 keeps 0s on purpose (priming)
            for name, val in (
                ("NDimensions_RBV", 2),
                ("ArraySize0_RBV", nx),
                ("ArraySize1_RBV", ny),
                ("Dim0SA_RBV", nx),
                ("Dim1SA_RBV", ny),
                ("ArraySizeX_RBV", nx),
                ("ArraySizeY_RBV", ny),
                ("DataType_RBV", data_type),
            ):
                put(name, val)
        if ptype.startswith("NDFile"):
            path = str(data_dir).rstrip("/") + "/"
            for name, val in (
                ("FilePath", path),
                ("FilePath_RBV", path),
                ("FilePathExists_RBV", "Yes" if os.path.isdir(path) else "No"),
                ("FileName", "image"),
                ("FileName_RBV", "image"),
                ("NumCapture", 1),
                ("NumCapture_RBV", 1),
            ):
                put(name, val)
            if ptype == "NDFileHDF5":
                put("FileWriteMode", "Stream")
                put("FileWriteMode_RBV", "Stream")

    def publish(self, port: str, arr) -> None:
        """Hand ``arr`` (produced by ``port``) to every plugin connected to that port."""
        for p in self.plugins:
            if p.g.get("NDArrayPort") == port:
                p.receive(arr)

    def wait_plugins_idle(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        # a plugin's pending includes arrays it is passing downstream, so one pass suffices
        # once upstream plugins are idle; loop until all are idle at once
        while True:
            for p in self.plugins:
                p.wait_idle(deadline)
            if all(p.pending == 0 for p in self.plugins) or time.monotonic() > deadline:
                return

    def shutdown(self) -> None:
        """Stop acquiring, close every open file."""
        self.closed = True
        self.cam.stop()
        t = self.cam.thread
        if t is not None:
            t.join(10)
        for p in self.plugins:
            if hasattr(p, "shutdown"):
                try:
                    p.shutdown()
                except Exception:  # noqa: BLE001 - close the others anyway
                    logger.exception("closing %s", p.port)


def _names(suffix: str) -> list[str]:
    from .ad_table import spec_for

    return [s.name for s in spec_for(suffix)]


def load_database() -> None:
    """``softioc.builder.LoadDatabase`` through a pipe instead of a temporary file.

    softioc writes the generated database (hundreds of kB) to a temporary file; a process
    with a small RLIMIT_FSIZE (tests simulate a full disk that way) would die of SIGXFSZ.
    A forked writer feeds the text to ``dbLoadDatabase`` through a pipe (no file size).
    """
    import io

    from epicsdbbuilder.recordset import recordset
    from softioc import builder, pythonSoftIoc
    from softioc.softioc import dbLoadDatabase

    builder.load_autosave()
    text = io.StringIO()
    recordset.Print(text, True)
    data = text.getvalue().encode()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: write and leave, whatever happens (never run on as a 2nd IOC)
        try:
            os.close(r)
            view = memoryview(data)
            while view:
                view = view[os.write(w, view) :]
        finally:
            os._exit(0)
    os.close(w)
    try:
        dbLoadDatabase(f"/dev/fd/{r}")
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    pythonSoftIoc.RecordWrapper.reset_builder()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m adscan.iocs.ad_ioc", description=__doc__.splitlines()[0]
    )
    p.add_argument("--prefix", default="kad:")
    p.add_argument("--data-dir", type=Path, default=Path("/tmp/adscan-ioc"))
    p.add_argument("--port", type=int, default=None, help="CA server port")
    p.add_argument(
        "--pva-port", type=int, default=None, help="pvAccess UDP search port (TCP: the next port)"
    )
    p.add_argument("--rows", type=int, default=1024)
    p.add_argument("--cols", type=int, default=1024)
    p.add_argument("--data-type", default="UInt8")
    p.add_argument("--motors", default="", help="motor record names the peak follows")
    p.add_argument(
        "--parent-pid", type=int, default=None, help="stop when this process (the launcher) ends"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    # Threads hand the GIL over every 5 ms by default: a plugin thread in a GIL-holding numpy
    # call then delays the acquisition thread's next frame by up to 5 ms.
    sys.setswitchinterval(0.0005)
    # the beamline's repeater (the launcher's: motor port + 1), never our port + 1 (= PVA's)
    inherited = os.environ.get("EPICS_CA_REPEATER_PORT")
    rport = int(inherited) if inherited else None
    if rport is None and args.port:
        rport = epics_env.repeater_port_for(args.port - epics_env.AD_PORT_OFFSET)
    env = epics_env.apply_loopback(ca_port=args.port, repeater_port=rport)
    if args.pva_port:
        env["EPICS_PVAS_BROADCAST_PORT"] = str(args.pva_port)
        env["EPICS_PVAS_SERVER_PORT"] = str(args.pva_port + 1)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    import numpy as np
    from p4p.nt import NTNDArray
    from p4p.server import Server
    from p4p.server.thread import SharedPV
    from softioc import softioc

    from . import callback_queue
    from .frames import DTYPES
    from .records import Dispatcher

    args.data_dir.mkdir(parents=True, exist_ok=True)
    pva_pv = SharedPV(
        initial=NTNDArray().wrap(np.zeros((args.rows, args.cols), DTYPES[args.data_type]))
    )
    ioc = ADIOC(
        args.prefix,
        args.data_dir,
        (args.rows, args.cols),
        args.data_type,
        args.motors.split(),
        pva_pv,
    )
    load_database()
    softioc.iocInit(Dispatcher(), enable_pva=False)
    for g in ioc.groups.values():  # configuration readbacks never wait behind frame values
        g.prioritise_early_readbacks()
    server = Server(providers=[{f"{args.prefix}Pva1:Image": pva_pv}], useenv=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    conf = server.conf()
    print(
        f"READY-AD records={sum(len(g.records) for g in ioc.groups.values())} "
        f"prefix={args.prefix} port={epics_env.ca_port()} "
        f"pva={conf.get('EPICS_PVAS_BROADCAST_PORT')} startup_s={time.monotonic() - t0:.2f}",
        flush=True,
    )
    overflow = callback_queue.OverflowWatch()
    while not stop.wait(0.5):
        overflow.poll()
        if args.parent_pid and os.getppid() != args.parent_pid:
            break  # the launcher is gone (its death signal can be missed): never an orphan
    # close files, but never linger: clients must see the circuits close promptly
    threading.Timer(8.0, os._exit, args=(0,)).start()
    overflow.poll()
    ioc.shutdown()
    with contextlib.suppress(Exception):  # a diagnostic: never in the way of the shutdown
        print(f"callback queues at exit: {callback_queue.status()}", flush=True)
    server.stop()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
