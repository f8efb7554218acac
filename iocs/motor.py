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

Put-completion replies wait for the monitors of the put: see :mod:`adscan.iocs.motor_state`.

Not modelled: encoders (UEIP/ERES/REP), backlash and retries (BDST, RTRY, RCNT, MISS), jogging
(JOGF/JOGR), PID gains, record links (OUT, DOL, RDBL, RLNK, STOO), raw-value writes (RVAL),
deceleration on STOP (the stop is immediate), step quantisation of positions (RRBV is rounded,
positions are not), alarms, the home switch search itself (homing is a plain move to dial 0),
and UREV/MRES/SREV consistency.  TDIR reports the dial direction, so with DIR=Neg it is the
opposite of the user direction (as with the real record, TDIR follows the motor).

``MotorRecord.position`` (user readback, float) is readable in-process.  Modules:
:mod:`~adscan.iocs.motor_state` (coordinates, posting), :mod:`~adscan.iocs.motor_motion`
(commands, motion task), :mod:`~adscan.iocs.motor_profile`, :mod:`~adscan.iocs.motor_names`.
"""

from __future__ import annotations

import asyncio
import math

from caproto import SkipWrite
from caproto.server import PVGroup, PvpropertyDouble, pvproperty

from .motor_motion import MotorMotion
from .motor_names import check_record_name, literal_prefix
from .motor_profile import Profile
from .motor_state import DOUBLE_FIELDS, MotorState, flush, post_flush

__all__ = ["MotorRecord", "check_record_name", "literal_prefix", "make_motors"]

_Profile = Profile  # the name the profile tests use


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


class MotorRecord(MotorMotion, MotorState, PVGroup):
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
        self._preset_channels(
            prefix=prefix,
            velocity=velocity,
            acceleration=acceleration,
            precision=precision,
            egu=egu,
            description=description,
        )

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
        await flush()
        raise SkipWrite()

    @motor.fields.user_direction.putter
    async def _dir_put(fields, instance, value):
        rec = fields.parent.group
        await rec._post(instance, value)
        rec._sign = -1.0 if value == "Neg" else 1.0
        await rec._post_user()
        await flush()
        raise SkipWrite()

    @motor.fields.user_high_limit.putter
    async def _hlm_put(fields, instance, value):
        await fields.parent.group.set_limit("HLM", value)
        raise SkipWrite()

    @motor.fields.user_low_limit.putter
    async def _llm_put(fields, instance, value):
        await fields.parent.group.set_limit("LLM", value)
        raise SkipWrite()

    @motor.fields.dial_high_limit.putter
    async def _dhlm_put(fields, instance, value):
        await fields.parent.group.set_limit("DHLM", value)
        raise SkipWrite()

    @motor.fields.dial_low_limit.putter
    async def _dllm_put(fields, instance, value):
        await fields.parent.group.set_limit("DLLM", value)
        raise SkipWrite()

    @motor.fields.velocity.putter
    async def _velo_put(fields, instance, value):
        # The record keeps VELO >= VBAS; a non-finite speed is refused.
        value = float(value)
        if not math.isfinite(value):
            raise ValueError("VELO must be finite")
        await post_flush(instance, max(value, float(fields.base_velocity.value or 0.0)))
        raise SkipWrite()

    @motor.fields.seconds_to_velocity.putter
    async def _accl_put(fields, instance, value):
        await post_flush(instance, value)
        raise SkipWrite()

    @motor.fields.base_velocity.putter
    async def _vbas_put(fields, instance, value):
        await post_flush(instance, value)
        raise SkipWrite()

    @motor.fields.set_use_switch.putter
    async def _set_put(fields, instance, value):
        await post_flush(instance, value)
        raise SkipWrite()

    @motor.fields.offset_freeze_switch.putter
    async def _foff_put(fields, instance, value):
        await post_flush(instance, value)
        raise SkipWrite()

    @motor.fields.display_precision.putter
    async def _prec_put(fields, instance, value):
        rec = fields.parent.group
        prec = max(0, min(int(value), 17))
        await rec.motor.write_metadata(precision=prec)
        for fld in DOUBLE_FIELDS:
            ch = rec.motor.fields.get(fld)
            if ch is not None:
                await ch.write_metadata(precision=prec)
        return prec

    @motor.fields.engineering_units.putter
    async def _egu_put(fields, instance, value):
        rec = fields.parent.group
        await rec.motor.write_metadata(units=str(value))
        for fld in DOUBLE_FIELDS:
            ch = rec.motor.fields.get(fld)
            if ch is not None:
                await ch.write_metadata(units=str(value))
        return value


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
