"""The softioc area-detector IOC: ADCore behaviour, fresh frames, Pva1 over pvAccess, loopback.

One beamline (``python -m adscan.iocs``: motor IOC + AD IOC, 256x256 frames) on a CA port
block of its own; clients here are caproto's (a fresh Context reads the address list) and
p4p's, so the session's pyepics configuration is untouched.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
from helpers import TAG, start_ioc, stop_process

from adscan import epics_env
from adscan.ports import free_port

AD = f"{TAG}ad:"
MOTORS = f"{TAG}adgp:"
ROWS, COLS = 256, 256


@pytest.fixture(scope="module")
def ioc(tmp_path_factory):
    port = free_port(udp=True)
    data_dir = tmp_path_factory.mktemp("simad")
    saved = os.environ.get("EPICS_CA_ADDR_LIST", "")
    os.environ["EPICS_CA_ADDR_LIST"] = f"{saved} 127.0.0.1:{epics_env.ad_ca_port(port)}"
    proc = start_ioc(
        port=port, motors_prefix=MOTORS, ad_prefix=AD, data_dir=data_dir, rows=ROWS, cols=COLS
    )
    yield {"proc": proc, "data_dir": data_dir, "port": port}
    stop_process(proc)
    os.environ["EPICS_CA_ADDR_LIST"] = saved


@pytest.fixture(scope="module")
def ca(ioc):
    from caproto.threading.client import Context

    ctx = Context()
    yield ctx
    ctx.disconnect()


def get(ctx, name, as_string=False):
    from caproto import ChannelType

    (pv,) = ctx.get_pvs(AD + name, timeout=5)
    pv.wait_for_connection(timeout=10)
    if as_string:
        if pv.channel.native_data_type == ChannelType.CHAR:  # string in a CHAR waveform
            return pv.read(timeout=5).data.tobytes().split(b"\0")[0].decode()
        return pv.read(data_type=ChannelType.STRING, timeout=5).data[0].decode()
    return pv.read(timeout=5).data


def put(ctx, name, value, wait=True):
    (pv,) = ctx.get_pvs(AD + name, timeout=5)
    pv.wait_for_connection(timeout=10)
    if isinstance(value, str):
        from caproto import ChannelType

        return pv.write([value.encode()], data_type=ChannelType.STRING, wait=wait, timeout=10)
    return pv.write(value if isinstance(value, list) else [value], wait=wait, timeout=10)


def put_text(ctx, name, text):
    """A string to a CHAR waveform (FilePath, FileName, FileTemplate)."""
    (pv,) = ctx.get_pvs(AD + name, timeout=5)
    pv.wait_for_connection(timeout=10)
    return pv.write(np.frombuffer(text.encode() + b"\0", dtype=np.uint8), wait=True, timeout=10)


def wait_for(fn, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():
            return
        time.sleep(0.02)
    raise TimeoutError


def acquire(ctx, n, period=0.01, capture=True, compression="LZ4"):
    """``n`` frames into one HDF5 file (Stream); returns the file name."""
    put(ctx, "cam1:ImageMode", "Multiple")
    put(ctx, "cam1:NumImages", n)
    put(ctx, "cam1:AcquireTime", period)
    put(ctx, "cam1:AcquirePeriod", period)
    put(ctx, "cam1:WaitForPlugins", "Yes")
    put(ctx, "HDF1:EnableCallbacks", "Enable")
    put(ctx, "Pva1:EnableCallbacks", "Enable")
    if capture:
        put(ctx, "HDF1:FileWriteMode", "Stream")
        put(ctx, "HDF1:NumCapture", n)
        put(ctx, "HDF1:Compression", compression)
        put(ctx, "HDF1:LazyOpen", "Yes")
        put(ctx, "HDF1:Capture", 1)
        wait_for(lambda: get(ctx, "HDF1:Capture_RBV")[0] == 1)
    put(ctx, "cam1:Acquire", 1, wait=False)
    wait_for(lambda: get(ctx, "cam1:AcquireBusy")[0] == 1, 5)
    wait_for(lambda: get(ctx, "cam1:AcquireBusy")[0] == 0, 60)
    if capture:
        wait_for(lambda: get(ctx, "HDF1:Capture_RBV")[0] == 0)
        return get(ctx, "HDF1:FullFileName_RBV", as_string=True)
    return None


def read_h5(fn):
    import h5py
    import hdf5plugin  # noqa: F401 - LZ4 filter

    with h5py.File(fn, "r") as f:
        return (f["/entry/data/data"][()], f["/entry/instrument/NDAttributes/NDArrayUniqueId"][()])


def test_fresh_frames_distinct_totals_and_poisson(ca):
    fn = acquire(ca, 12)
    frames, uids = read_h5(fn)
    assert frames.shape == (12, ROWS, COLS)
    totals = [int(f.sum(dtype=np.int64)) for f in frames]
    assert len(set(totals)) == 12, totals
    assert list(np.diff(uids)) == [1] * 11
    # no two frames equal, and pixel noise is Poisson-like (variance ~ mean) off the peak
    assert len({f.tobytes() for f in frames}) == 12
    corner = frames[:, :32, :32].astype(np.float64)
    assert 0.7 < corner.var() / corner.mean() < 1.3
    # the last frame's Stats are those of the last frame written
    assert get(ca, "Stats1:Total_RBV")[0] == totals[-1]
    assert get(ca, "Stats1:UniqueId_RBV")[0] == uids[-1]


def test_pva_frame_matches_hdf5(ioc, ca):
    from p4p.client.thread import Context

    fn = acquire(ca, 3)
    frames, uids = read_h5(fn)
    pva = epics_env.pva_port(ioc["port"])
    ctx = Context(
        "pva",
        conf={
            "EPICS_PVA_ADDR_LIST": f"127.0.0.1:{pva}",
            "EPICS_PVA_AUTO_ADDR_LIST": "NO",
            "EPICS_PVA_BROADCAST_PORT": str(pva),
        },
        useenv=False,
    )
    try:
        img = ctx.get(AD + "Pva1:Image", timeout=10)
    finally:
        ctx.close()
    uid = int(img.raw.uniqueId)
    assert uid == int(uids[-1])
    assert [d.size for d in img.raw.dimension] == [COLS, ROWS]
    assert np.array_equal(np.asarray(img), frames[-1])


def test_datatype_last_write_wins(ca):
    from caproto import ChannelType

    (pv,) = ca.get_pvs(AD + "cam1:DataType", timeout=5)
    pv.wait_for_connection(timeout=10)
    pv.write([b"Int8"], data_type=ChannelType.STRING, wait=False)
    time.sleep(0.05)
    pv.write([b"UInt8"], data_type=ChannelType.STRING, wait=True, timeout=10)
    # the readback is set within the write: right after the put completes
    assert get(ca, "cam1:DataType_RBV", as_string=True) == "UInt8"
    time.sleep(1.0)
    assert get(ca, "cam1:DataType_RBV", as_string=True) == "UInt8"
    assert get(ca, "cam1:DataType", as_string=True) == "UInt8"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("%s%s.h5", "{name}.h5"),
        ("%s%s_%3.3d.h5", "{name}_{num:03d}.h5"),
        ("%s%s_%6.6d.h5", "{name}_{num:06d}.h5"),
    ],
)
def test_file_template_like_adcore(ioc, ca, template, expected):
    put_text(ca, "HDF1:FileTemplate", template)
    put_text(ca, "HDF1:FileName", "tmpl")
    put(ca, "HDF1:FileNumber", 7)
    put(ca, "HDF1:AutoIncrement", "Yes")
    fn = acquire(ca, 1)
    path = get(ca, "HDF1:FilePath_RBV", as_string=True)
    assert fn == path + expected.format(name="tmpl", num=7)
    assert os.path.exists(fn)
    assert get(ca, "HDF1:FileNumber_RBV")[0] == 8
    put_text(ca, "HDF1:FileTemplate", "%s%s_%6.6d.h5")
    put_text(ca, "HDF1:FileName", "image")


def test_file_path_checks_like_adcore(ioc, ca):
    good = get(ca, "HDF1:FilePath_RBV", as_string=True)
    put_text(ca, "HDF1:FilePath", "/")
    assert get(ca, "HDF1:FilePathExists_RBV")[0] == 0  # checkPath: stat("") fails
    put_text(ca, "HDF1:FilePath", str(ioc["data_dir"]))
    assert get(ca, "HDF1:FilePathExists_RBV")[0] == 1
    assert get(ca, "HDF1:FilePath_RBV", as_string=True) == good  # one trailing "/"
    put_text(ca, "HDF1:FilePath", "")
    assert get(ca, "HDF1:FilePathExists_RBV")[0] == 1  # empty: unchanged
    assert get(ca, "HDF1:FilePath_RBV", as_string=True) == ""  # stored as written
    put_text(ca, "HDF1:FilePath", good)


def test_no_array_lost_silently(ca):
    """At AcquirePeriod 0 with a 1-deep queue, processed + dropped == produced."""
    put(ca, "Stats1:QueueSize", 1)
    put(ca, "Stats1:DroppedArrays", 0)
    put(ca, "Stats1:ArrayCounter", 0)
    put(ca, "ROI1:ArrayCounter", 0)
    try:
        acquire(ca, 60, period=0.0, capture=False)
        done = get(ca, "Stats1:ArrayCounter_RBV")[0]
        dropped = get(ca, "Stats1:DroppedArrays_RBV")[0]
        roi = get(ca, "ROI1:ArrayCounter_RBV")[0]
        assert done + dropped == roi == 60
    finally:
        put(ca, "Stats1:QueueSize", 20)


def test_plugin_primed_state(ioc):
    """A fresh HDF1 is unprimed (ArraySize 0); apstools' AD_prime_plugin2 primes it."""
    import subprocess
    import sys

    script = f"""
import ophyd
ophyd.set_cl("caproto")
from apstools.devices import AD_plugin_primed, AD_prime_plugin2
from ophyd.areadetector import ADComponent, DetectorBase, SimDetectorCam
from ophyd.areadetector.plugins import HDF5Plugin_V34
class Det(DetectorBase):
    cam = ADComponent(SimDetectorCam, "cam1:")
    hdf1 = ADComponent(HDF5Plugin_V34, "TIFF1:" if False else "HDF1:")
d = Det("{AD}", name="d")
d.wait_for_connection(timeout=30)
print("BEFORE", AD_plugin_primed(d.hdf1))
AD_prime_plugin2(d.hdf1)
print("AFTER", AD_plugin_primed(d.hdf1))
"""
    env = dict(os.environ)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert "AFTER True" in out.stdout, out.stdout + out.stderr[-3000:]


def test_no_ioc_socket_binds_a_non_loopback_address(ioc):
    """Servers listen on 127.0.0.1 only; wildcard sockets are send-only, listed by kind."""
    import psutil

    launcher = psutil.Process(ioc["proc"].pid)
    children = launcher.children()
    roles = sorted(next(w for w in c.cmdline() if w.startswith("adscan.")) for c in children)
    assert roles == ["adscan.ca_repeater", "adscan.iocs.ad_ioc", "adscan.iocs.server"], roles
    port = ioc["port"]
    server_ports = {
        port,
        epics_env.repeater_port_for(port),
        epics_env.ad_ca_port(port),
        epics_env.pva_port(port),
        epics_env.pva_port(port) + 1,
    }
    seen = set()
    for proc in [launcher, *children]:
        for c in proc.net_connections("inet"):
            seen.add(c.laddr.port)
            if c.status == psutil.CONN_LISTEN:
                assert c.laddr.ip == "127.0.0.1", (proc.cmdline(), c)
            if c.laddr.port in server_ports and c.type == psutil.socket.SOCK_STREAM:
                assert c.laddr.ip == "127.0.0.1", (proc.cmdline(), c)
            if c.type == psutil.socket.SOCK_DGRAM and c.laddr.port in server_ports - {
                epics_env.pva_port(port)
            }:
                assert c.laddr.ip.startswith("127."), (proc.cmdline(), c)
    assert {port, epics_env.ad_ca_port(port)} <= seen
