"""The simulated motor record's commands and motion task.

Moves run a trapezoidal profile (:mod:`adscan.iocs.motor_profile`) in one asyncio task per
record, updating the readbacks at ``tick_rate_hz``; a new target during a move re-plans from
the current position (DMOV stays 0); STOP stops at once where the motor is; the hard travel
range stops it on a limit switch.  Out-of-range or non-finite targets are refused as the
record does (LVIO=1, VAL restored, DMOV pulses).  SET=Set redefines the position in two
processings, as a real controller's LOAD_POS + GET_INFO.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

from .motor_profile import Profile
from .motor_state import SET_LOAD_SECONDS, flush

logger = logging.getLogger("adscan.iocs.motor")


def _as_float(value) -> float:
    """A put's value as a float; what is not a number becomes NaN (refused as a target)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


class MotorMotion:
    """Mixin of :class:`adscan.iocs.motor.MotorRecord`: commands and the motion loop."""

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
        value = _as_float(value)
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
        dial = _as_float(dial)
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
        await flush()
        # The controller answers GET_INFO a poll later: the second processing.
        await asyncio.sleep(SET_LOAD_SECONDS)
        await self._post_user()
        await flush()
        if idle and not self._busy:
            await self._set_dmov(1)
            await flush()

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
                profile = Profile(
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
        await flush()
        self._release_waiters()
