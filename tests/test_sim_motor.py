"""The simulated motor record (adscan.iocs.motor) against the unmodified ophyd.EpicsMotor.

One IOC subprocess per module serves ``make_motors("tstm:", 2, velocity=5.0)`` on loopback with
a CA port of its own.  The CA client side runs in subprocesses, one per ophyd control layer
(pyepics on ``tstm:m1``, caproto on ``tstm:m2``, in parallel): the control layer and the CA
search port are per process, and other test modules in the same pytest process may already
have started a CA context on another port.  Each client process runs every scenario and
reports one JSON result per scenario; the tests below assert on those results.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from adscan import epics_env
from adscan.ports import free_port

CA_PORT = int(os.environ.get("ADSCAN_TEST_MOTOR_CA_PORT") or free_port(udp=True))
PREFIX = f"tstm{os.getpid() % 100000}:"
LAYER_MOTOR = {"pyepics": f"{PREFIX}m1", "caproto": f"{PREFIX}m2"}

SCENARIOS = [
    "read_describe",
    "move_and_wait",
    "dmov_toggles",
    "duration",
    "stop",
    "retarget",
    "soft_limit",
    "set_off",
    "dir_flip",
    "velo_zero",
    "homf",
    "hard_limit",
    "calibration_x20",
    "set_dmov_pulse",
]

IOC_RUNNER = textwrap.dedent(
    """
    import sys
    from adscan import epics_env
    epics_env.apply_loopback(ca_port=int(sys.argv[1]))
    from caproto.server import run
    from adscan.iocs.motor import make_motors

    pvdb = {}
    for m in make_motors(sys.argv[2], 2, velocity=5.0):
        pvdb.update(m.pvdb)
    # a record name with braces, as ophyd's CI motor XF:31IDA-OP{Tbl-Ax:X1}Mtr
    for m in make_motors(sys.argv[2] + "OP{Tbl-Ax:X1}", names=["Mtr"], velocity=5.0):
        pvdb.update(m.pvdb)

    async def ready(async_lib):
        print("READY", flush=True)

    run(pvdb, interfaces=["127.0.0.1"], startup_hook=ready)
    """
)

CLIENT = textwrap.dedent(
    r"""
    import json, math, sys, time, traceback
    from adscan import epics_env
    layer, port, pv = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    epics_env.apply_loopback(ca_port=port)
    import ophyd
    ophyd.set_cl(layer)
    from ophyd import EpicsMotor, EpicsSignal, EpicsSignalRO
    from ophyd.utils.errors import LimitError

    m = EpicsMotor(pv, name="m")
    m.wait_for_connection(timeout=15)
    raw_val = EpicsSignal(pv + ".VAL", name="raw_val")
    sig = {f: EpicsSignalRO(f"{pv}.{f}", name=f.lower())
           for f in ["LVIO", "DRBV", "DVAL", "HLS", "LLS", "HOMF", "RDBD", "DHLM", "DLLM",
                     "MOVN", "PREC", "DESC", "ATHM"]}
    for s in [raw_val, *sig.values()]:
        s.wait_for_connection(timeout=15)

    def g(name):
        return sig[name].get()

    def wait_until(pred, timeout=5.0):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if pred():
                return True
            time.sleep(0.02)
        return pred()

    def tol():
        return max(float(g("RDBD")), 10.0 ** -int(g("PREC")))

    class Rec:
        "Record DMOV monitor values."
        def __enter__(self):
            self.values = []
            self.cid = m.motor_done_move.subscribe(self.cb, run=False)
            return self
        def cb(self, value=None, **kw):
            self.values.append(int(value))
        def __exit__(self, *exc):
            time.sleep(0.2)
            m.motor_done_move.unsubscribe(self.cid)

    def transitions(values):
        "Consecutive duplicates dropped (ophyd's caproto layer may deliver a value twice)."
        return [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]

    def pulsed(values):
        "1 -> 0 -> 1 seen (the monitor values after subscribing)."
        try:
            i = values.index(0)
        except ValueError:
            return False
        return 1 in values[i + 1:]

    def expected_time(d, v, ta):
        if v * ta >= d:
            return 2 * math.sqrt(d * ta / v)
        return 2 * ta + (d - v * ta) / v

    def move(pos, timeout=15):
        st = m.set(pos)
        st.wait(timeout)
        return st

    results = {}

    def scenario(fn):
        t0 = time.monotonic()
        try:
            data = fn() or {}
            results[fn.__name__] = {"ok": True, "data": data}
        except Exception:
            results[fn.__name__] = {"ok": False, "error": traceback.format_exc()}
        results[fn.__name__]["seconds"] = round(time.monotonic() - t0, 3)
        return fn

    @scenario
    def read_describe():
        r = m.read()
        assert "m" in r and "m_user_setpoint" in r, r
        assert m.precision == 4, m.precision
        assert m.egu == "mm", m.egu
        assert g("DESC"), "DESC empty"
        lo, hi = m.limits
        assert (lo, hi) == (-100.0, 100.0), m.limits
        assert m.velocity.get() == 5.0
        return {"keys": sorted(r)}

    @scenario
    def move_and_wait():
        st = move(1.5)
        assert st.done and st.success
        r = m.read()
        rbv, sp = r["m"]["value"], r["m_user_setpoint"]["value"]
        assert abs(rbv - 1.5) <= tol(), rbv
        assert abs(sp - 1.5) <= tol(), sp
        assert abs(m.position - 1.5) <= tol()
        assert m.motor_done_move.get() == 1 and m.motor_is_moving.get() == 0
        assert g("LVIO") == 0
        return {"rbv": rbv, "setpoint": sp}

    @scenario
    def dmov_toggles():
        with Rec() as rec:
            move(m.position + 0.5)
        moving = rec.values
        with Rec() as rec:
            st = move(m.position)  # zero-length move
        zero = rec.values
        assert st.success
        assert pulsed(moving), moving
        assert pulsed(zero), zero
        return {"move": moving, "zero_length": zero}

    @scenario
    def duration():
        move(0.0)
        d, v, ta = 2.0, m.velocity.get(), m.acceleration.get()
        exp = expected_time(d, v, ta)
        t0 = time.monotonic()
        move(d)
        dt = time.monotonic() - t0
        assert 0.9 * exp <= dt <= exp + 0.5, (dt, exp)
        return {"expected": exp, "measured": round(dt, 3)}

    @scenario
    def stop():
        move(0.0)
        st = m.set(4.0)
        time.sleep(0.35)
        m.stop()
        assert wait_until(lambda: m.motor_done_move.get() == 1 and st.done)
        time.sleep(0.1)
        rbv = m.user_readback.get()
        assert 0.05 < rbv < 3.5, rbv
        assert abs(raw_val.get() - rbv) <= tol(), (raw_val.get(), rbv)
        assert m.motor_is_moving.get() == 0
        time.sleep(0.3)
        assert abs(m.user_readback.get() - rbv) <= tol(), "still moving after STOP"
        return {"stopped_at": rbv}

    @scenario
    def retarget():
        move(0.0)
        with Rec() as rec:
            st = m.set(4.0)
            time.sleep(0.25)
            raw_val.put(1.0, wait=True, timeout=10)  # completes when the retargeted move ends
            st.wait(10)
        assert abs(m.user_readback.get() - 1.0) <= tol()
        assert transitions(rec.values) == [0, 1], rec.values  # DMOV stays 0 across the retarget
        return {"dmov": rec.values}

    @scenario
    def soft_limit():
        move(1.0)
        try:
            m.set(150.0)
        except LimitError:
            pass
        else:
            raise AssertionError("ophyd did not raise LimitError")
        with Rec() as rec:
            raw_val.put(150.0, wait=True, timeout=5)  # raw CA put, no client-side check
        assert wait_until(lambda: g("LVIO") == 1), "LVIO not set"
        time.sleep(0.2)
        assert abs(m.user_readback.get() - 1.0) <= tol(), "moved on a limit violation"
        assert abs(raw_val.get() - 1.0) <= tol(), ("VAL not restored", raw_val.get())
        assert pulsed(rec.values), rec.values
        move(1.2)
        assert g("LVIO") == 0
        return {"dmov": rec.values}

    @scenario
    def set_off():
        move(1.0)
        dial0, hlm0 = g("DRBV"), m.high_limit_travel.get()
        m.set_current_position(10.0)
        assert abs(m.user_readback.get() - 10.0) <= tol()
        assert abs(g("DRBV") - dial0) <= tol(), "dial moved on SET (Variable)"
        off = m.user_offset.get()
        assert abs(off - (10.0 - dial0)) <= tol(), off
        assert abs(m.high_limit_travel.get() - (hlm0 + off)) <= tol()
        move(11.0)
        assert abs(g("DRBV") - (dial0 + 1.0)) <= tol()
        # FOFF=Frozen: SET changes the dial position, not OFF
        m.offset_freeze_switch.put(1, wait=True)
        m.set_current_position(20.0)
        assert abs(m.user_offset.get() - off) <= tol(), "OFF changed while Frozen"
        assert abs(m.user_readback.get() - 20.0) <= tol()
        assert abs(g("DRBV") - (20.0 - off)) <= tol()
        m.offset_freeze_switch.put(0, wait=True)
        # writing OFF shifts the user values
        m.user_offset.put(0.0, wait=True)
        assert wait_until(lambda: abs(m.user_readback.get() - g("DRBV")) <= tol())
        assert abs(m.high_limit_travel.get() - g("DHLM")) <= tol()
        m.set_current_position(0.0)  # back to dial == user == 0
        m.user_offset.put(0.0, wait=True)
        return {"offset": off}

    @scenario
    def dir_flip():
        move(0.0)
        m.user_offset.put(1.0, wait=True)
        move(3.0)
        assert abs(g("DRBV") - 2.0) <= tol()
        m.user_offset_dir.put(1, wait=True)  # Neg
        assert wait_until(lambda: abs(m.user_readback.get() - (-2.0 + 1.0)) <= tol())
        hlm, llm = m.high_limit_travel.get(), m.low_limit_travel.get()
        assert abs(hlm - (-g("DLLM") + 1.0)) <= tol(), hlm
        assert abs(llm - (-g("DHLM") + 1.0)) <= tol(), llm
        assert wait_until(lambda: m.limits == (llm, hlm)), (m.limits, llm, hlm)
        move(0.0)  # user 0 -> dial 1
        assert abs(g("DRBV") - 1.0) <= tol()
        assert m.direction_of_travel.get() == 0  # dial went 2 -> 1
        m.user_offset_dir.put(0, wait=True)
        m.user_offset.put(0.0, wait=True)
        assert wait_until(lambda: abs(m.user_readback.get() - 1.0) <= tol())
        assert wait_until(lambda: m.limits == (-100.0, 100.0)), m.limits
        return {"hlm_neg": hlm, "llm_neg": llm}

    @scenario
    def velo_zero():
        move(0.0)
        m.velocity.put(0.0, wait=True)
        try:
            st = move(1.0, timeout=5)
            assert st.success
            assert abs(m.user_readback.get() - 1.0) <= tol()
            m.velocity.put(-3.0, wait=True)
            velo = m.velocity.get()
            move(0.5, timeout=5)
        finally:
            m.velocity.put(5.0, wait=True)
        assert velo >= 0.0, velo
        # the server still answers
        assert m.velocity.get() == 5.0
        move(0.0)
        return {"velo_after_negative_put": velo}

    @scenario
    def homf():
        move(2.0)
        with Rec() as rec:
            st = m.home("forward")
            st.wait(10)
        assert abs(g("DRBV")) <= tol()
        assert g("ATHM") == 1
        assert wait_until(lambda: g("HOMF") == 0)
        assert m.motor_done_move.get() == 1
        assert pulsed(rec.values), rec.values
        return {"dmov": rec.values}

    @scenario
    def hard_limit():
        move(0.0)
        m.high_limit_travel.put(0.0, wait=True)
        m.low_limit_travel.put(0.0, wait=True)  # HLM == LLM == 0: no soft limits
        assert wait_until(lambda: m.limits == (0.0, 0.0)), m.limits
        m.velocity.put(200.0, wait=True)
        try:
            st = m.set(150.0)
            try:
                st.wait(10)
            except Exception:
                pass
            assert st.done and not st.success, "ophyd should fail on the limit switch"
            assert wait_until(lambda: g("HLS") == 1), g("HLS")
            assert g("LLS") == 0
            rbv = m.user_readback.get()
            assert 100.0 < rbv < 150.0, rbv
            assert abs(raw_val.get() - rbv) <= tol()
            move(0.0)
            assert wait_until(lambda: g("HLS") == 0), g("HLS")
        finally:
            m.velocity.put(5.0, wait=True)
            m.high_limit_travel.put(100.0, wait=True)
            m.low_limit_travel.put(-100.0, wait=True)
        assert wait_until(lambda: m.limits == (-100.0, 100.0)), m.limits
        return {"stopped_at": rbv}

    @scenario
    def calibration_x20():
        # ophyd's own test_calibration, 20 times: RBV must be posted before the put completes
        move(0.0)
        bad = []
        for i in range(20):
            m.user_offset.put(0, wait=True)
            old = m.position
            target = 10.0 + i
            m.set_current_position(target)
            if abs(m.position - target) > 1e-9 or m.user_offset.get() != target - old:
                bad.append((i, m.position, m.user_offset.get()))
            m.set_current_position(old)
        m.user_offset.put(0, wait=True)
        assert not bad, bad
        return {"runs": 20}

    @scenario
    def set_dmov_pulse():
        # Set mode: DMOV 1 -> 0 -> 1 (two processings), no motion, dial unchanged
        move(1.0)
        dial0 = g("DRBV")
        with Rec() as rec:
            m.set_current_position(5.0)
        assert pulsed(rec.values), rec.values
        assert abs(g("DRBV") - dial0) <= tol()
        m.set_current_position(1.0)
        m.user_offset.put(0, wait=True)
        return {"dmov": rec.values}

    print("RESULTS " + json.dumps(results), flush=True)
    """
)


def _env() -> dict[str, str]:
    """Loopback CA settings that reach exactly this module's IOC (and nothing else)."""
    env = epics_env.apply_loopback(dict(os.environ, PYTHONUNBUFFERED="1"), ca_port=CA_PORT)
    env["EPICS_CA_ADDR_LIST"] = f"127.0.0.1:{CA_PORT}"
    return env


@pytest.fixture(scope="module")
def ioc():
    env = _env()
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-c", IOC_RUNNER, str(CA_PORT), PREFIX],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,  # a file, not a pipe nobody reads while the tests run
        text=True,
    )
    deadline = time.monotonic() + 20
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        if "READY" in line:
            break
    if "READY" not in line:
        proc.kill()
        proc.communicate()
        log.seek(0)
        pytest.fail(f"motor IOC did not start:\n{log.read()}")
    yield proc
    alive = proc.poll() is None
    proc.terminate()
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
    log.seek(0)
    err = log.read()
    log.close()
    assert alive, f"motor IOC died during the tests:\n{err}"
    assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def client_results(ioc):
    env = _env()
    procs = {
        layer: subprocess.Popen(
            [sys.executable, "-c", CLIENT, layer, str(CA_PORT), pv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for layer, pv in LAYER_MOTOR.items()
    }
    results = {}
    for layer, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULTS ")]
        if not lines:
            results[layer] = {"_crashed": f"rc={proc.returncode}\n{out}\n{err}"}
        else:
            results[layer] = json.loads(lines[-1][len("RESULTS ") :])
    return results


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("layer", ["pyepics", "caproto"])
def test_epics_motor(client_results, layer, scenario):
    res = client_results[layer]
    assert "_crashed" not in res, res.get("_crashed")
    r = res.get(scenario)
    assert r is not None, f"scenario {scenario} did not run"
    assert r["ok"], r.get("error")


# ---------------------------------------------------------------- in-process, no CA traffic


def test_make_motors_interface():
    from adscan.iocs.motor import MotorRecord, make_motors

    motors = make_motors("gp:", 4, velocity=3.0)
    assert [m.prefix for m in motors] == ["gp:m1", "gp:m2", "gp:m3", "gp:m4"]
    pvdb = {}
    for m in motors:
        assert isinstance(m, MotorRecord)
        pvdb.update(m.pvdb)
        assert m.position == 0.0 and isinstance(m.position, float)
    assert set(pvdb) == {"gp:m1", "gp:m2", "gp:m3", "gp:m4"}
    rec = motors[0].pvdb["gp:m1"]
    assert rec.get_field("VAL") is rec
    assert rec.fields["VELO"].value == 3.0
    assert rec.fields["EGU"].value == "mm"
    assert rec.fields["HLM"].value == 100.0 and rec.fields["LLM"].value == -100.0
    assert rec.fields["DMOV"].value == 1 and rec.fields["LVIO"].value == 0
    assert rec.precision == 4
    assert (rec.lower_ctrl_limit, rec.upper_ctrl_limit) == (-100.0, 100.0)


@pytest.mark.parametrize(
    "start,target,v,ta",
    [(0.0, 2.0, 5.0, 0.2), (1.0, -3.0, 2.0, 0.5), (0.0, 0.1, 5.0, 0.2), (0.0, 1.0, 1.0, 0.0)],
)
def test_profile(start, target, v, ta):
    from adscan.iocs.motor import _Profile

    p = _Profile(start, target, v, ta)
    d = abs(target - start)
    exp = 2 * math.sqrt(d * ta / v) if v * ta >= d else 2 * ta + (d - v * ta) / v
    assert p.total == pytest.approx(exp)
    prev = start
    for i in range(101):
        pos, done = p.position(p.total * i / 100)
        assert min(start, target) - 1e-12 <= pos <= max(start, target) + 1e-12
        assert (pos - prev) * (target - start) >= -1e-12  # monotonic
        prev = pos
    assert p.position(p.total) == (target, True)


@pytest.mark.parametrize("v", [0.0, -1.0, math.nan, math.inf])
def test_profile_bad_velocity_is_instant(v):
    from adscan.iocs.motor import _Profile

    p = _Profile(0.0, 1.0, v, 0.2)
    assert p.total == 0.0
    assert p.position(0.0) == (1.0, True)


def test_braces_record_name_over_ca(ioc):
    """A record name with braces is served (caproto's PVGroup would str.format it)."""
    env = _env()
    code = (
        "import sys; from adscan import epics_env;"
        "epics_env.apply_loopback(ca_port=int(sys.argv[1]));"
        "import ophyd; ophyd.set_cl('caproto'); from ophyd import EpicsMotor;"
        "m = EpicsMotor(sys.argv[2], name='m'); m.wait_for_connection(timeout=15);"
        "m.set(0.5).wait(10); print('POS', m.position)"
    )
    name = f"{PREFIX}OP{{Tbl-Ax:X1}}Mtr"
    out = subprocess.run(
        [sys.executable, "-c", code, str(CA_PORT), name],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "POS 0.5" in out.stdout


def test_make_motors_names_and_braces():
    from adscan.iocs.motor import make_motors

    motors = make_motors("XF:31IDA-OP{Tbl-Ax:X1}", names=["Mtr"])
    assert [m.prefix for m in motors] == ["XF:31IDA-OP{Tbl-Ax:X1}Mtr"]
    assert set(motors[0].pvdb) == {"XF:31IDA-OP{Tbl-Ax:X1}Mtr"}
    rec = motors[0].pvdb["XF:31IDA-OP{Tbl-Ax:X1}Mtr"]
    assert rec.fields["DMOV"].value == 1
    assert [m.prefix for m in make_motors("gp:", names=["a", "b<1>", "c[2]"])] == [
        "gp:a",
        "gp:b<1>",
        "gp:c[2]",
    ]
    assert len(make_motors("gp:")) == 4  # default m1..m4


@pytest.mark.parametrize(
    "prefix,names,fragment",
    [
        ("gp:", ["m.1"], "not allowed"),
        ("gp ", ["m1"], "not allowed"),
        ("gp:", ["m$1"], "not allowed"),
        ("gp:", ['m"1'], "not allowed"),
        ("gp:", ["x" * 61], "longer than 60"),
        ("gp:", ["m1", "m1"], "duplicate"),
        ("gp:", [""], "non-empty"),
    ],
)
def test_make_motors_refuses_bad_names(prefix, names, fragment):
    from adscan.iocs.motor import check_record_name, make_motors

    with pytest.raises(ValueError, match=fragment):
        if names == [""]:
            check_record_name("")
        else:
            make_motors(prefix, names=names)


def test_ioc_cli_refuses_bad_motor_name_before_serving():
    env = _env()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "adscan.iocs",
            "--motor-names",
            "m1,bad.name",
            "--port",
            str(free_port(udp=True)),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "bad.name" in out.stderr and "not allowed" in out.stderr
    assert "READY" not in out.stdout


def test_gp_bits_and_uptime():
    from adscan.iocs.gp_extras import make_bits

    grp = make_bits("gp:", 20)
    names = set(grp.pvdb)
    assert {f"gp:gp:bit{i}" for i in range(1, 21)} <= names
    assert "gp:UPTIME" in names and len(names) == 21
    bit = grp.pvdb["gp:gp:bit20"]
    assert list(bit.enum_strings) == ["0", "1"] and bit.value in (0, "0")
    braces = make_bits("XF:{A}", 1)
    assert set(braces.pvdb) == {"XF:{A}gp:bit1", "XF:{A}UPTIME"}
