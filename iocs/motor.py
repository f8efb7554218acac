"""A simulated synApps motor record, served by caproto.

:class:`MotorRecord` is one EPICS motor record: the record itself is the PV ``<prefix>``
(``pvproperty(name='', record='motor')``, so ``<prefix>.VAL`` is the same channel) and its fields
are served as ``<prefix>.FIELD``.  :func:`make_motors` builds ``<prefix>m1 .. <prefix>mN``.
Everything runs in the caproto server's asyncio loop; one motion task per record is started by
the record's startup hook.

Modelled (synApps motorRecord semantics, checked against motorRecord.html / motorRecord.dbd):

* Moves: a put to VAL (or DVAL, RLV, TWF/TWR) runs a trapezoidal profile (VELO, ACCL = seconds
  to velocity, VBAS = base velocity), updating DRBV/RBV/RRBV at ``tick_rate_hz``.  DMOV goes
  1 -> 0 -> 1 on every accepted put, zero-length moves included; MOVN is 1 while the motor
  actually moves; TDIR is the dial direction of travel (1 = positive).  A put with
  put-completion (CA WriteNotify) completes when the motion ends (DMOV back to 1).
* Retarget: a VAL put during a move re-plans from the current position to the new target
  (like NTM=YES); DMOV stays 0 until the final target is reached, and every pending
  put-completion finishes then.
* STOP=1 (or SPMG=Stop/Pause) stops at once at the current position; VAL/DVAL are set to where
  the motor stopped, STOP is reset to 0, DMOV -> 1.  SPMG=Go/Move resumes towards the target
  that was interrupted by Pause (approximation: the real record keeps VAL while paused, here
  VAL shows the stop position until Go) or towards VAL; SPMG=Move drops back to Pause after
  the move.  While SPMG is Stop/Pause, VAL puts are stored but do not move (DMOV still pulses
  so waiting clients finish).  STOP=1 while idle sets VAL=RBV and reads back 0 at once.
* Soft limits: with HLM != LLM a target outside [LLM, HLM] is refused the way the record does
  it: LVIO=1, no motion, VAL (re)posted with its previous value, DMOV pulses (when idle) so
  waiting clients complete.  LVIO=0 after a good move.  HLM == LLM (e.g. both 0) disables the
  soft limits.  VAL's control limits (DRVH/DRVL, i.e. the CA ctrl limits that ophyd's
  ``EpicsSignal(limits=True)`` uses) follow HLM/LLM; the server itself does not clamp.
* Calibration: user = dial * (DIR: Pos=+1, Neg=-1) + OFF.  Writing OFF shifts VAL, RBV, HLM,
  LLM (dial values unchanged).  Writing DIR keeps dial values and OFF, recomputing the user
  values (HLM/LLM swap).  HLM/LLM writes update DHLM/DLLM and vice versa.  SET=Set: a VAL
  write does not move; with FOFF=Variable it changes OFF so that RBV becomes VAL, with
  FOFF=Frozen it redefines the dial position (DVAL/DRBV) instead.  A DVAL write in Set mode
  redefines the dial position.  Soft limits are not checked in Set mode (as in the record).
  A Set-mode load takes two processings, as with a real controller (LOAD_POS + GET_INFO):
  the first posts DMOV=0, OFF, the readbacks, VAL and the limits; the second, one driver poll
  (SET_LOAD_SECONDS) later, re-posts the readbacks and DMOV=1, and only then does a
  put-completion finish (ophyd's ``set_current_position`` then sees the new position).
* Record names: any legal EPICS record-name characters, braces included
  (``XF:31IDA-OP{Tbl-Ax:X1}Mtr``); :func:`make_motors` takes a list of names.
* Limit switches: a hard travel range in dial coordinates (by default the soft range at
  construction widened by 5% of its span on each side).  Reaching it stops the motor there
  and sets the user switch (HLS/LLS, swapped when DIR=Neg); the record then sets VAL=RBV.
* Homing: HOMF/HOMR=1 moves to the home position (dial 0) at HVEL (VELO when HVEL <= 0),
  ignoring soft limits; HOMF/HOMR go back to 0 and DMOV to 1 when done; ATHM=1 at dial 0.
* VELO <= 0 never crashes: the speed used is ``max(VELO, VBAS)``; when that is not a positive
  finite number the move is instantaneous (the position jumps, DMOV still pulses).  ACCL <= 0
  means infinite acceleration.  Non-finite targets are refused like a limit violation.
* Served with defaults: EGU ("mm"), DESC, PREC (4; PREC writes update the display precision of
  every floating-point field), MRES (1e-5), RDBD (10 * MRES), SREV (200), UREV, CNEN (Enable),
  SPMG (Go), VBAS (0), HVEL, TWV, MSTA (direction/done/plus-LS/home/minus-LS/moving bits),
  RRBV/RVAL (dial / MRES).

Put-completion replies: caproto answers a WriteNotify at once but batches monitors for up to
10 ms, so every putter of this record waits twice that (``_flush``) after posting its values:
a client then sees the monitors of its put (RBV, OFF, HLM, ...) before the put completes.

Not modelled: encoders (UEIP/ERES/REP), backlash and retries (BDST, RTRY, RCNT, MISS), jogging
(JOGF/JOGR), PID gains, record links (OUT, DOL, RDBL, RLNK, STOO), raw-value writes (RVAL),
deceleration on STOP (the stop is immediate), step quantisation of positions (RRBV is rounded,
positions are not), alarms, the home switch search itself (homing is a plain move to dial 0),
and UREV/MRES/SREV consistency.  TDIR reports the dial direction, so with DIR=Neg it is the
opposite of the user direction (as with the real record, TDIR follows the motor).

``MotorRecord.position`` (user readback, float) is readable in-process for simulators that
sit in the same server (e.g. the area detector simulator).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from caproto import SkipWrite
from caproto.server import PVGroup, PvpropertyDouble, pvproperty
from caproto.server.records import MotorFields

__all__ = ["MotorRecord", "check_record_name", "literal_prefix", "make_motors"]

logger = logging.getLogger(__name__)

#: MSTA bits (motor status word, see motorRecord.html)
MSTA_DIRECTION = 1 << 0
MSTA_DONE = 1 << 1
MSTA_PLUS_LS = 1 << 2
MSTA_HOMELS = 1 << 3
MSTA_HOME = 1 << 7
MSTA_MOVING = 1 << 10
MSTA_MINUS_LS = 1 << 13
MSTA_HOMED = 1 << 14

_DOUBLE_FIELDS = (
    "RBV",
    "DRBV",
    "DVAL",
    "HLM",
    "LLM",
    "DHLM",
    "DLLM",
    "OFF",
    "VELO",
    "VBAS",
    "VMAX",
    "ACCL",
    "HVEL",
    "JVEL",
    "BVEL",
    "RDBD",
    "MRES",
    "ERES",
    "RRES",
    "UREV",
    "TWV",
    "RLV",
    "SPDB",
    "BDST",
    "DIFF",
    "LVAL",
    "LDVL",
)


class _MotorValData(PvpropertyDouble):
    """The record's VAL channel.

    The record refuses out-of-limit targets itself (LVIO, DMOV pulse), so the ctrl limits that
    it advertises (DRVH/DRVL = HLM/LLM, used client-side by ophyd) must not make caproto reject
    the put before the record sees it.
    """

    async def verify_value(self, value):
        if self.putter is not None:
            return await self.putter(self, value)
        return value


#: caproto sends put-completion replies at once but batches monitors for up to its
#: HIGH_LOAD_TIMEOUT (10 ms by default, 1 ms in adscan's IOC: see iocs/simdet.py); putters
#: wait twice that (at least FLUSH_SECONDS) after posting so that, as with a real IOC, a
#: client sees the monitors of a put before its completion.
FLUSH_SECONDS = 0.003


#: Delay between the two processings of a Set-mode position load (the controller's reply
#: to LOAD_POS/GET_INFO, one driver poll later); long enough for a client's limit callbacks
#: to run before the put completes.
SET_LOAD_SECONDS = 0.1


async def _flush() -> None:
    from caproto.server import common

    await asyncio.sleep(max(FLUSH_SECONDS, 2 * common.HIGH_LOAD_TIMEOUT))


def _preset(channel, value=None, **metadata) -> None:
    """Set a channel's value/metadata before the server runs (no subscribers yet)."""
    if value is not None:
        channel._data["value"] = value
    for key, val in metadata.items():
        if key in channel._data:
            channel._data[key] = val


class _Profile:
    """A trapezoidal (or triangular) move of ``distance`` from ``start``."""

    def __init__(self, start: float, target: float, velocity: float, accel_time: float):
        self.start = start
        self.target = target
        d = abs(target - start)
        self.sign = 1.0 if target >= start else -1.0
        self.distance = d
        if d == 0.0 or not (velocity > 0.0 and math.isfinite(velocity)):
            self.total = 0.0
            self.ta = self.tc = self.a = self.vp = 0.0
            return
        ta = accel_time if (accel_time > 0.0 and math.isfinite(accel_time)) else 0.0
        if ta == 0.0:
            self.a = math.inf
            self.ta, self.vp, self.tc = 0.0, velocity, d / velocity
        else:
            a = velocity / ta
            if velocity * ta >= d:  # never reaches full speed: triangle
                ta = math.sqrt(d / a)
                self.vp, self.tc = a * ta, 0.0
            else:
                self.vp, self.tc = velocity, (d - velocity * ta) / velocity
            self.a, self.ta = a, ta
        self.total = 2.0 * self.ta + self.tc

    def position(self, t: float) -> tuple[float, bool]:
        """(position, finished) at time ``t`` after the start."""
        if t >= self.total:
            return self.target, True
        if t <= 0.0:
            return self.start, False
        if t < self.ta:
            s = 0.5 * self.a * t * t
        elif t < self.ta + self.tc:
            s = 0.5 * self.vp * self.ta + self.vp * (t - self.ta)
        else:
            r = self.total - t
            s = self.distance - 0.5 * (self.a * r * r if self.ta else 0.0)
        return self.start + self.sign * min(s, self.distance), False


class MotorRecord(PVGroup):
    """One simulated EPICS motor record (see the module docstring)."""

    motor = pvproperty(
        value=0.0,
        name="",
        record="motor",
        dtype=_MotorValData,
        precision=4,
        doc="Simulated motor record",
    )

    def __init__(
        self,
        prefix: str = "gp:m1",
        *,
        velocity: float = 2.0,
        acceleration: float = 0.2,
        precision: int = 4,
        egu: str = "mm",
        description: str = "",
        low_limit: float = -100.0,
        high_limit: float = 100.0,
        tick_rate_hz: float = 20.0,
        hard_limit_margin: float | None = None,
        **kwargs,
    ):
        check_record_name(prefix)
        super().__init__(prefix=literal_prefix(prefix), **kwargs)
        self.tick_rate_hz = float(tick_rate_hz) if tick_rate_hz and tick_rate_hz > 0 else 20.0
        # Internal state ("the hardware"); the channels mirror it.
        self._dial = 0.0  # dial position
        self._dval = 0.0  # dial setpoint
        self._off = 0.0  # user offset
        self._sign = 1.0  # +1 for DIR=Pos, -1 for DIR=Neg
        self._dllm = float(min(low_limit, high_limit))
        self._dhlm = float(max(low_limit, high_limit))
        if hard_limit_margin is None:
            hard_limit_margin = 0.05 * (self._dhlm - self._dllm)
        if self._dhlm > self._dllm:
            self._hard = (self._dllm - hard_limit_margin, self._dhlm + hard_limit_margin)
        else:
            self._hard = (-math.inf, math.inf)
        self._busy = False
        self._replan = False
        self._stop_req = False
        self._homing: str | None = None
        self._waiters: list[asyncio.Future] = []
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._tdir = 1
        self._moving = False
        self._pending_after_pause: float | None = None

        f = self.motor.field_inst
        mres = 1e-5
        name = prefix.rstrip(":").rsplit(":", 1)[-1] or prefix
        desc = (description or f"Simulated motor {name}")[:40]
        precision = int(precision)
        _preset(self.motor, 0.0, precision=precision, units=egu)
        for fld in _DOUBLE_FIELDS:
            ch = self.motor.fields.get(fld)
            if ch is not None:
                _preset(ch, precision=precision, units=egu)
        _preset(f.velocity, float(velocity))
        _preset(f.seconds_to_velocity, float(acceleration))
        _preset(f.base_velocity, 0.0)
        _preset(f.max_velocity, 0.0)
        _preset(f.home_velocity, float(velocity))
        _preset(f.jog_velocity, float(velocity))
        _preset(f.engineering_units, str(egu)[:15])
        _preset(f.description, desc)
        self.motor.__doc__ = desc  # caproto serves DESC from the record's __doc__
        _preset(f.motor_step_size, mres)
        _preset(f.retry_deadband, 10 * mres)
        _preset(f.steps_per_revolution, 200)
        _preset(f.egu_s_per_revolution, 200 * mres)
        _preset(f.tweak_step_size, 1.0)
        _preset(f.enable_control, "Enable")
        _preset(f.stop_pause_move_go, "Go")
        _preset(f.user_direction, "Pos")
        _preset(f.offset_freeze_switch, "Variable")
        _preset(f.set_use_switch, "Use")
        _preset(f.limit_violation, 0)
        _preset(f.done_moving_to_value, 1)
        _preset(f.motor_is_moving, 0)
        _preset(f.direction_of_travel, 1)
        _preset(f.device_type, "Soft Channel")
        for ch, val in self._user_values().items():
            _preset(ch, val)
        _preset(f.dial_high_limit, self._dhlm)
        _preset(f.dial_low_limit, self._dllm)
        hlm, llm = self._user_limits()
        _preset(f.user_high_limit, hlm)
        _preset(f.user_low_limit, llm)
        _preset(f.display_precision, precision)
        _preset(
            self.motor,
            upper_ctrl_limit=hlm,
            lower_ctrl_limit=llm,
            upper_disp_limit=hlm,
            lower_disp_limit=llm,
        )
        _preset(f.user_readback_value, upper_disp_limit=hlm, lower_disp_limit=llm)
        for ch, val in self._switch_values().items():
            _preset(ch, val)

    # ------------------------------------------------------------------ helpers
    @property
    def fields(self) -> MotorFields:
        return self.motor.field_inst

    @property
    def position(self) -> float:
        """User readback position (RBV), for in-process simulators."""
        return self._user(self._dial)

    @property
    def dial_position(self) -> float:
        return self._dial

    @property
    def moving(self) -> bool:
        return self._busy

    def _user(self, dial: float) -> float:
        return dial * self._sign + self._off

    def _to_dial(self, user: float) -> float:
        return (user - self._off) * self._sign

    def _user_limits(self) -> tuple[float, float]:
        """(HLM, LLM) from the dial limits, DIR and OFF."""
        if self._sign > 0:
            return self._dhlm + self._off, self._dllm + self._off
        return -self._dllm + self._off, -self._dhlm + self._off

    def _limits_enabled(self) -> bool:
        return self._dhlm != self._dllm

    def _dial_ok(self, dial: float) -> bool:
        if not math.isfinite(dial):
            return False
        if not self._limits_enabled():
            return True
        return self._dllm <= dial <= self._dhlm

    def _speed(self, homing: bool = False) -> float:
        f = self.fields
        velo = f.home_velocity.value if homing else f.velocity.value
        if homing and not (velo > 0):
            velo = f.velocity.value
        try:
            speed = max(float(velo), float(f.base_velocity.value))
        except (TypeError, ValueError):
            return 0.0
        return speed if (speed > 0 and math.isfinite(speed)) else 0.0

    def _raw(self, dial: float) -> int:
        mres = self.fields.motor_step_size.value
        if not mres or not math.isfinite(mres):
            return 0
        raw = dial / mres
        return int(max(min(round(raw), 2**31 - 1), -(2**31))) if math.isfinite(raw) else 0

    def _user_values(self) -> dict:
        f = self.fields
        return {
            self.motor: self._user(self._dval),
            f.user_readback_value: self._user(self._dial),
            f.dial_desired_value: self._dval,
            f.dial_readback_value: self._dial,
            f.user_offset: self._off,
            f.raw_readback_value: self._raw(self._dial),
            f.raw_desired_value: self._raw(self._dval),
            f.raw_motor_position: self._raw(self._dial),
            f.difference_dval_drbv: self._dval - self._dial,
            f.at_home: int(abs(self._dial) < 0.5 * (f.motor_step_size.value or 1e-9)),
        }

    def _switch_values(self) -> dict:
        f = self.fields
        at_hi = self._dial >= self._hard[1]
        at_lo = self._dial <= self._hard[0]
        hls, lls = (at_hi, at_lo) if self._sign > 0 else (at_lo, at_hi)
        msta = MSTA_DONE * (not self._busy) | MSTA_MOVING * self._moving
        msta |= MSTA_DIRECTION * (self._tdir == 1)
        msta |= MSTA_PLUS_LS * at_hi | MSTA_MINUS_LS * at_lo
        msta |= MSTA_HOME * (abs(self._dial) < 0.5 * (f.motor_step_size.value or 1e-9))
        return {
            f.user_high_limit_switch: int(hls),
            f.user_low_limit_switch: int(lls),
            f.raw_high_limit_switch: int(at_hi),
            f.raw_low_limit_switch: int(at_lo),
            f.motor_status: msta,
        }

    @staticmethod
    async def _post(channel, value) -> None:
        """Write a value from the server side (no putter) and post it to monitors."""
        await channel.write(value, verify_value=False)

    async def _post_readback(self) -> None:
        f = self.fields
        ts = time.time()
        for ch, val in (
            (f.dial_readback_value, self._dial),
            (f.raw_readback_value, self._raw(self._dial)),
            (f.raw_motor_position, self._raw(self._dial)),
            (f.difference_dval_drbv, self._dval - self._dial),
            (f.user_readback_value, self._user(self._dial)),
        ):
            await ch.write(val, verify_value=False, timestamp=ts)
        await self._post_switches()

    async def _post_switches(self) -> None:
        for ch, val in self._switch_values().items():
            if ch.value != val:
                await self._post(ch, val)
        athm = self._user_values()[self.fields.at_home]
        if self.fields.at_home.value != athm:
            await self._post(self.fields.at_home, athm)

    async def _post_user(self) -> None:
        """Post every user-coordinate value after a calibration change."""
        await self._post_limits()
        for ch, val in self._user_values().items():
            await self._post(ch, val)
        await self._post_switches()

    async def _post_limits(self) -> None:
        f = self.fields
        hlm, llm = self._user_limits()
        # VAL's ctrl limits first: ophyd re-reads them when its HLM/LLM monitors fire.
        await self.motor.write_metadata(
            upper_ctrl_limit=hlm, lower_ctrl_limit=llm, upper_disp_limit=hlm, lower_disp_limit=llm
        )
        await f.user_readback_value.write_metadata(upper_disp_limit=hlm, lower_disp_limit=llm)
        for ch, val in (
            (f.dial_high_limit, self._dhlm),
            (f.dial_low_limit, self._dllm),
            (f.user_high_limit, hlm),
            (f.user_low_limit, llm),
        ):
            await self._post(ch, val)

    async def _set_dmov(self, value: int) -> None:
        await self._post(self.fields.done_moving_to_value, value)

    async def _pulse_dmov(self) -> None:
        """DMOV 1 -> 0 -> 1 for a record processing that does not move (when idle)."""
        if self._busy:
            return
        await self._set_dmov(0)
        await self._set_dmov(1)
        await self._post_switches()
        await _flush()

    def _new_waiter(self) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return fut

    def _release_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    def _spmg(self) -> str:
        return self.fields.stop_pause_move_go.value

    # ------------------------------------------------------------------ commands
    async def _start_move(
        self, target_dial: float, *, homing: str | None = None, wait: bool = True
    ) -> None:
        """Begin (or retarget) a move to ``target_dial``; optionally wait for its end."""
        self._dval = target_dial
        self._homing = homing
        self._replan = True
        fut = self._new_waiter() if wait else None
        if not self._busy:
            self._busy = True
            await self._set_dmov(0)
        if self._wake is None:  # server not started: no motion task
            await self._finish_instantly()
        else:
            self._wake.set()
        if fut is not None:
            await fut

    async def _finish_instantly(self) -> None:
        self._dial = self._dval
        self._replan = False
        await self._post_readback()
        await self._finish_move(stopped=False)

    async def request_stop(self) -> None:
        """STOP: stop at the current position; VAL/DVAL := where it stopped."""
        if self._busy:
            self._stop_req = True
            if self._wake is not None:
                self._wake.set()
            return
        self._dval = self._dial
        await self._post(self.motor, self._user(self._dval))
        await self._post(self.fields.dial_desired_value, self._dval)

    async def move_user(self, value: float, *, wait: bool = True) -> None:
        """Process a VAL write (as a CA put to ``.VAL`` does)."""
        f = self.fields
        try:
            value = float(value)
        except (TypeError, ValueError):
            value = math.nan
        if f.set_use_switch.value == "Set":
            await self._calibrate_user(value)
            return
        dial = self._to_dial(value)
        if not self._dial_ok(dial):
            await self._refuse()
            return
        await self._accept(value, dial, wait=wait)

    async def move_dial(self, dial: float, *, wait: bool = True) -> None:
        """Process a DVAL write."""
        f = self.fields
        try:
            dial = float(dial)
        except (TypeError, ValueError):
            dial = math.nan
        if f.set_use_switch.value == "Set":
            if not math.isfinite(dial):
                await self._refuse()
                return
            user_before = self._user(self._dval)
            self._dial = self._dval = dial
            if f.offset_freeze_switch.value == "Variable":
                self._off = user_before - self._sign * dial
            await self._load_position()
            return
        if not self._dial_ok(dial):
            await self._refuse()
            return
        await self._accept(self._user(dial), dial, wait=wait)

    async def _accept(self, user: float, dial: float, *, wait: bool) -> None:
        f = self.fields
        if f.limit_violation.value != 0:
            await self._post(f.limit_violation, 0)
        await self._post(self.motor, user)
        await self._post(f.dial_desired_value, dial)
        await self._post(f.raw_desired_value, self._raw(dial))
        await self._post(f.last_user_des_val, user)
        await self._post(f.last_dial_des_val, dial)
        if self._spmg() in ("Stop", "Pause"):
            self._dval = dial
            await self._pulse_dmov()
            return
        await self._start_move(dial, wait=wait)

    async def _refuse(self) -> None:
        """Soft-limit violation: LVIO=1, VAL restored, no motion, DMOV pulse."""
        f = self.fields
        await self._post(f.limit_violation, 1)
        await self._post(self.motor, self._user(self._dval))
        await self._post(f.dial_desired_value, self._dval)
        await self._pulse_dmov()

    async def _calibrate_user(self, value: float) -> None:
        """SET=Set: redefine the position so that RBV == value, without motion.

        Like the real record: the first processing posts VAL/OFF/limits and DMOV=0 (it sends
        LOAD_POS + GET_INFO to the controller); the readbacks and DMOV=1 come from a later
        processing (the driver's callback), and only then does a put-completion finish.
        """
        f = self.fields
        if not math.isfinite(value):
            await self._refuse()
            return
        if f.offset_freeze_switch.value == "Frozen":
            self._dial = self._dval = self._to_dial(value)
        else:
            self._off = value - self._sign * self._dial
            self._dval = self._dial
        await self._load_position()

    async def _load_position(self) -> None:
        """The two processings of a Set-mode position load (see :meth:`_calibrate_user`)."""
        f = self.fields
        idle = not self._busy
        if idle:
            await self._set_dmov(0)
        # First processing: the new offset and the user readback computed from it, then the
        # user limits (clients re-read control limits on those, which may take a while: the
        # readback's monitor goes out first).
        await self._post(f.user_offset, self._off)
        await self._post_readback()
        await self._post(self.motor, self._user(self._dval))
        await self._post(f.dial_desired_value, self._dval)
        await self._post(f.raw_desired_value, self._raw(self._dval))
        await self._post_limits()
        await _flush()
        # The controller answers GET_INFO a poll later: the second processing.
        await asyncio.sleep(SET_LOAD_SECONDS)
        await self._post_user()
        await _flush()
        if idle and not self._busy:
            await self._set_dmov(1)
            await _flush()

    async def home(self, which: str) -> None:
        """HOMF/HOMR: move to the home position (dial 0), ignoring soft limits."""
        f = self.fields
        field = f.home_forward if which == "HOMF" else f.home_reverse
        await self._post(field, 1)
        await self._post(self.motor, self._user(0.0))
        await self._post(f.dial_desired_value, 0.0)
        await self._start_move(0.0, homing=which, wait=False)

    # ------------------------------------------------------------------ motion
    async def _motion_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._busy:
                if self._stop_req:
                    self._stop_req = False
                continue
            try:
                await self._run_motion()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("motor %s: motion failed", self.prefix)
                self._moving = False
                self._busy = False
                with contextlib.suppress(Exception):
                    await self._post(self.fields.motor_is_moving, 0)
                    await self._set_dmov(1)
                self._release_waiters()

    async def _run_motion(self) -> None:
        f = self.fields
        dt = 1.0 / self.tick_rate_hz
        profile = None
        t0 = 0.0
        stopped = False
        while True:
            if self._dial != self._dial:  # NaN guard: never keep a broken position
                self._dial = 0.0
            if self._stop_req:
                self._stop_req = False
                stopped = True
                break
            if self._replan:
                self._replan = False
                profile = _Profile(
                    self._dial,
                    self._dval,
                    self._speed(self._homing is not None),
                    float(f.seconds_to_velocity.value or 0.0),
                )
                t0 = time.monotonic()
                if profile.distance > 0:
                    tdir = 1 if profile.sign > 0 else 0
                    if tdir != self._tdir or f.direction_of_travel.value != tdir:
                        self._tdir = tdir
                        await self._post(f.direction_of_travel, tdir)
                    if not self._moving and profile.total > 0:
                        self._moving = True
                        await self._post(f.motor_is_moving, 1)
            assert profile is not None
            t = time.monotonic() - t0
            pos, finished = profile.position(t)
            lo, hi = self._hard
            hit = False
            if pos >= hi and profile.sign > 0:
                pos, hit = hi, True
            elif pos <= lo and profile.sign < 0:
                pos, hit = lo, True
            self._dial = pos
            await self._post_readback()
            if hit:
                stopped = True
                break
            if finished and not self._replan:
                break
            if self._replan or self._stop_req:
                continue
            remaining = profile.total - t
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(min(dt, remaining), 0.0))
            self._wake.clear()
        await self._finish_move(stopped=stopped)

    async def _finish_move(self, *, stopped: bool) -> None:
        f = self.fields
        if stopped:
            self._dval = self._dial
            await self._post(self.motor, self._user(self._dval))
            await self._post(f.dial_desired_value, self._dval)
            await self._post(f.raw_desired_value, self._raw(self._dval))
        if f.stop.value != 0:
            await self._post(f.stop, 0)
        if self._moving:
            self._moving = False
            await self._post(f.motor_is_moving, 0)
        if self._homing is not None:
            field = f.home_forward if self._homing == "HOMF" else f.home_reverse
            self._homing = None
            await self._post(field, 0)
        if self._spmg() == "Move":
            await self._post(f.stop_pause_move_go, "Pause")
        if self._replan and not stopped and self._wake is not None:
            # A new target arrived while finishing: keep going, DMOV stays 0.
            self._wake.set()
            return
        self._replan = False
        self._busy = False
        await self._post_switches()
        await self._set_dmov(1)
        await _flush()
        self._release_waiters()

    # ------------------------------------------------------------------ pvproperty hooks
    @motor.startup
    async def motor(self, instance, async_lib):
        self._wake = asyncio.Event()
        self._task = asyncio.current_task()
        await self._motion_loop()

    @motor.putter
    async def motor(self, instance, value):
        await self.move_user(value)
        raise SkipWrite()

    @motor.fields.dial_desired_value.putter
    async def _dval_put(fields, instance, value):
        await fields.parent.group.move_dial(value)
        raise SkipWrite()

    @motor.fields.relative_value.putter
    async def _rlv_put(fields, instance, value):
        rec = fields.parent.group
        await rec._post(instance, value)
        await rec.move_user(rec._user(rec._dval) + float(value), wait=False)
        await rec._post(instance, 0.0)
        raise SkipWrite()

    @motor.fields.tweak_motor_forward.putter
    async def _twf_put(fields, instance, value):
        rec = fields.parent.group
        if value:
            await rec.move_user(
                rec._user(rec._dval) + float(fields.tweak_step_size.value), wait=False
            )
        return 0

    @motor.fields.tweak_motor_reverse.putter
    async def _twr_put(fields, instance, value):
        rec = fields.parent.group
        if value:
            await rec.move_user(
                rec._user(rec._dval) - float(fields.tweak_step_size.value), wait=False
            )
        return 0

    @motor.fields.stop.putter
    async def _stop_put(fields, instance, value):
        rec = fields.parent.group
        if not value:
            return 0
        if rec._busy:
            await rec._post(instance, 1)  # reset to 0 when the motion task has stopped
            await rec.request_stop()
            raise SkipWrite()
        await rec.request_stop()
        return 0

    @motor.fields.stop_pause_move_go.putter
    async def _spmg_put(fields, instance, value):
        rec = fields.parent.group
        await rec._post(instance, value)
        if value in ("Stop", "Pause"):
            if value == "Stop" or not rec._busy:
                await rec.request_stop()
            else:
                # Pause keeps VAL: stop the motion, remember the target.
                target = rec._dval
                await rec.request_stop()
                rec._pending_after_pause = target
        elif value in ("Go", "Move"):
            target = getattr(rec, "_pending_after_pause", None)
            rec._pending_after_pause = None
            if target is None:
                target = rec._dval
            if not rec._busy and target != rec._dial and rec._dial_ok(target):
                await rec._accept(rec._user(target), target, wait=False)
        raise SkipWrite()

    @motor.fields.home_forward.putter
    async def _homf_put(fields, instance, value):
        if not value:
            return 0
        await fields.parent.group.home("HOMF")
        raise SkipWrite()

    @motor.fields.home_reverse.putter
    async def _homr_put(fields, instance, value):
        if not value:
            return 0
        await fields.parent.group.home("HOMR")
        raise SkipWrite()

    @motor.fields.user_offset.putter
    async def _off_put(fields, instance, value):
        rec = fields.parent.group
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"OFF must be finite, not {value}")
        rec._off = value
        await rec._post_user()
        await _flush()
        raise SkipWrite()

    @motor.fields.user_direction.putter
    async def _dir_put(fields, instance, value):
        rec = fields.parent.group
        await rec._post(instance, value)
        rec._sign = -1.0 if value == "Neg" else 1.0
        await rec._post_user()
        await _flush()
        raise SkipWrite()

    @motor.fields.user_high_limit.putter
    async def _hlm_put(fields, instance, value):
        rec = fields.parent.group
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("HLM must be finite")
        if rec._sign > 0:
            rec._dhlm = value - rec._off
        else:
            rec._dllm = rec._off - value
        await rec._post_limits()
        await _flush()
        raise SkipWrite()

    @motor.fields.user_low_limit.putter
    async def _llm_put(fields, instance, value):
        rec = fields.parent.group
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("LLM must be finite")
        if rec._sign > 0:
            rec._dllm = value - rec._off
        else:
            rec._dhlm = rec._off - value
        await rec._post_limits()
        await _flush()
        raise SkipWrite()

    @motor.fields.dial_high_limit.putter
    async def _dhlm_put(fields, instance, value):
        rec = fields.parent.group
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("DHLM must be finite")
        rec._dhlm = value
        await rec._post_limits()
        await _flush()
        raise SkipWrite()

    @motor.fields.dial_low_limit.putter
    async def _dllm_put(fields, instance, value):
        rec = fields.parent.group
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("DLLM must be finite")
        rec._dllm = value
        await rec._post_limits()
        await _flush()
        raise SkipWrite()

    @motor.fields.velocity.putter
    async def _velo_put(fields, instance, value):
        # The record keeps VELO >= VBAS; a non-finite speed is refused.
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("VELO must be finite")
        await rec_post_flush(instance, max(value, float(fields.base_velocity.value or 0.0)))
        raise SkipWrite()

    @motor.fields.seconds_to_velocity.putter
    async def _accl_put(fields, instance, value):
        await rec_post_flush(instance, value)
        raise SkipWrite()

    @motor.fields.base_velocity.putter
    async def _vbas_put(fields, instance, value):
        await rec_post_flush(instance, value)
        raise SkipWrite()

    @motor.fields.set_use_switch.putter
    async def _set_put(fields, instance, value):
        await rec_post_flush(instance, value)
        raise SkipWrite()

    @motor.fields.offset_freeze_switch.putter
    async def _foff_put(fields, instance, value):
        await rec_post_flush(instance, value)
        raise SkipWrite()

    @motor.fields.display_precision.putter
    async def _prec_put(fields, instance, value):
        rec = fields.parent.group
        prec = max(0, min(int(value), 17))
        await rec.motor.write_metadata(precision=prec)
        for fld in _DOUBLE_FIELDS:
            ch = rec.motor.fields.get(fld)
            if ch is not None:
                await ch.write_metadata(precision=prec)
        return prec

    @motor.fields.engineering_units.putter
    async def _egu_put(fields, instance, value):
        rec = fields.parent.group
        await rec.motor.write_metadata(units=str(value))
        for fld in _DOUBLE_FIELDS:
            ch = rec.motor.fields.get(fld)
            if ch is not None:
                await ch.write_metadata(units=str(value))
        return value


async def rec_post_flush(channel, value) -> None:
    """Post a field value from its putter, then let the monitor leave before the reply."""
    await channel.write(value, verify_value=False)
    await _flush()


#: EPICS base (dbRecordNameValidate) refuses these characters in record names; everything
#: else printable is legal, braces included (common in NSLS-II names such as
#: ``XF:31IDA-OP{Tbl-Ax:X1}Mtr``).  "." separates the field name, "$" starts a macro.
_BAD_RECORD_NAME_CHARS = frozenset(" \t\"'.$")
#: PVNAME_STRINGSZ (61) minus the terminating NUL.
RECORD_NAME_MAX = 60


def check_record_name(name: str) -> str:
    """Return ``name`` if it is a legal EPICS record name, else raise ValueError saying why."""
    if not isinstance(name, str) or not name:
        raise ValueError("a record name must be a non-empty string")
    bad = sorted({c for c in name if c in _BAD_RECORD_NAME_CHARS or not " " < c <= "~"})
    if bad:
        raise ValueError(f"record name {name!r}: characters {bad!r} are not allowed")
    if len(name) > RECORD_NAME_MAX:
        raise ValueError(f"record name {name!r} is longer than {RECORD_NAME_MAX} characters")
    return name


def literal_prefix(prefix: str) -> str:
    """``prefix`` escaped for caproto's PVGroup, which expands ``{macros}`` with str.format."""
    return prefix.replace("{", "{{").replace("}", "}}")


#: The default motor record names (after the prefix).
DEFAULT_MOTOR_NAMES = ("m1", "m2", "m3", "m4")


def make_motors(
    prefix: str = "gp:",
    count: int | None = None,
    *,
    names: list[str] | tuple[str, ...] | None = None,
    **kwargs,
) -> list[MotorRecord]:
    """Motor records ``<prefix><name>`` for each of ``names`` (kwargs go to MotorRecord).

    Without ``names``: ``m1 .. m<count>`` (count 4 by default).  Any legal EPICS record-name
    characters may appear in the prefix and the names, braces included.
    """
    if names is None:
        names = [f"m{i}" for i in range(1, (4 if count is None else count) + 1)]
    elif count is not None and count != len(names):
        raise ValueError(f"count={count} but {len(names)} motor names given")
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate motor names in {names}")
    full = [check_record_name(f"{prefix}{name}") for name in names]
    return [MotorRecord(prefix=name, **kwargs) for name in full]
