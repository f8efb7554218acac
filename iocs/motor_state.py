"""The simulated motor record's state: coordinates, limits, switches and what it posts.

The record's "hardware" is a handful of floats (dial position and setpoint, offset, DIR sign,
dial limits, hard travel range); :class:`MotorState` turns them into the channel values
(user = dial * (DIR: Pos=+1, Neg=-1) + OFF, HLM/LLM from DHLM/DLLM, MSTA bits, RRBV = dial /
MRES) and posts them to monitors in the order clients rely on.

Put-completion replies: caproto answers a WriteNotify at once but batches monitors for up to
10 ms, so every putter of this record waits twice that (:func:`flush`) after posting its
values: a client then sees the monitors of its put (RBV, OFF, HLM, ...) before the put
completes.
"""

from __future__ import annotations

import asyncio
import math
import time

from caproto.server.records import MotorFields

#: MSTA bits (motor status word, see motorRecord.html)
MSTA_DIRECTION = 1 << 0
MSTA_DONE = 1 << 1
MSTA_PLUS_LS = 1 << 2
MSTA_HOMELS = 1 << 3
MSTA_HOME = 1 << 7
MSTA_MOVING = 1 << 10
MSTA_MINUS_LS = 1 << 13
MSTA_HOMED = 1 << 14

DOUBLE_FIELDS = (
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


#: caproto sends put-completion replies at once but batches monitors for up to its
#: HIGH_LOAD_TIMEOUT (10 ms by default, 1 ms in adscan's IOC: see iocs/server.py); putters
#: wait twice that (at least FLUSH_SECONDS) after posting so that, as with a real IOC, a
#: client sees the monitors of a put before its completion.
FLUSH_SECONDS = 0.003


#: Delay between the two processings of a Set-mode position load (the controller's reply
#: to LOAD_POS/GET_INFO, one driver poll later); long enough for a client's limit callbacks
#: to run before the put completes.
SET_LOAD_SECONDS = 0.1


async def flush() -> None:
    from caproto.server import common

    await asyncio.sleep(max(FLUSH_SECONDS, 2 * common.HIGH_LOAD_TIMEOUT))


def preset(channel, value=None, **metadata) -> None:
    """Set a channel's value/metadata before the server runs (no subscribers yet)."""
    if value is not None:
        channel._data["value"] = value
    for key, val in metadata.items():
        if key in channel._data:
            channel._data[key] = val


async def post_flush(channel, value) -> None:
    """Post a field value from its putter, then let the monitor leave before the reply."""
    await channel.write(value, verify_value=False)
    await flush()


class MotorState:
    """Mixin of :class:`adscan.iocs.motor.MotorRecord`: coordinates and posting."""

    def _preset_channels(
        self, *, prefix, velocity, acceleration, precision, egu, description
    ) -> None:
        """Set every channel's initial value and metadata (before the server runs)."""
        f = self.motor.field_inst
        mres = 1e-5
        name = prefix.rstrip(":").rsplit(":", 1)[-1] or prefix
        desc = (description or f"Simulated motor {name}")[:40]
        precision = int(precision)
        preset(self.motor, 0.0, precision=precision, units=egu)
        for fld in DOUBLE_FIELDS:
            ch = self.motor.fields.get(fld)
            if ch is not None:
                preset(ch, precision=precision, units=egu)
        preset(f.velocity, float(velocity))
        preset(f.seconds_to_velocity, float(acceleration))
        preset(f.base_velocity, 0.0)
        preset(f.max_velocity, 0.0)
        preset(f.home_velocity, float(velocity))
        preset(f.jog_velocity, float(velocity))
        preset(f.engineering_units, str(egu)[:15])
        preset(f.description, desc)
        self.motor.__doc__ = desc  # caproto serves DESC from the record's __doc__
        preset(f.motor_step_size, mres)
        preset(f.retry_deadband, 10 * mres)
        preset(f.steps_per_revolution, 200)
        preset(f.egu_s_per_revolution, 200 * mres)
        preset(f.tweak_step_size, 1.0)
        preset(f.enable_control, "Enable")
        preset(f.stop_pause_move_go, "Go")
        preset(f.user_direction, "Pos")
        preset(f.offset_freeze_switch, "Variable")
        preset(f.set_use_switch, "Use")
        preset(f.limit_violation, 0)
        preset(f.done_moving_to_value, 1)
        preset(f.motor_is_moving, 0)
        preset(f.direction_of_travel, 1)
        preset(f.device_type, "Soft Channel")
        for ch, val in self._user_values().items():
            preset(ch, val)
        preset(f.dial_high_limit, self._dhlm)
        preset(f.dial_low_limit, self._dllm)
        hlm, llm = self._user_limits()
        preset(f.user_high_limit, hlm)
        preset(f.user_low_limit, llm)
        preset(f.display_precision, precision)
        preset(
            self.motor,
            upper_ctrl_limit=hlm,
            lower_ctrl_limit=llm,
            upper_disp_limit=hlm,
            lower_disp_limit=llm,
        )
        preset(f.user_readback_value, upper_disp_limit=hlm, lower_disp_limit=llm)
        for ch, val in self._switch_values().items():
            preset(ch, val)

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
        """Post every user-coordinate value after a calibration change.

        VAL (and the other user values) go out before HLM/LLM: ophyd's pyepics and caproto
        layers hand each VAL monitor the ctrl limits cached when it arrived, so a VAL monitor
        that follows the HLM/LLM monitors (on which ophyd re-reads the ctrl limits) would put
        the old limits back into ``EpicsMotor.limits`` for good.
        """
        await self._post_ctrl_limits()
        for ch, val in self._user_values().items():
            await self._post(ch, val)
        await flush()  # the VAL monitor leaves in a batch of its own, ahead of HLM/LLM
        await self._post_limit_fields()
        await self._post_switches()

    async def _post_limits(self) -> None:
        await self._post_ctrl_limits()
        await self._post_limit_fields()

    async def _post_ctrl_limits(self) -> None:
        """VAL's ctrl limits: before HLM/LLM, on whose monitors ophyd re-reads them.

        Written without publishing: caproto's server sends a DBE_PROPERTY event to every
        subscriber whatever its mask, so pyepics/caproto clients would get a VAL value monitor
        that ophyd hands the ctrl limits it cached before, undoing its re-read on HLM/LLM.
        """
        hlm, llm = self._user_limits()
        await self.motor.write_metadata(
            publish=False,
            upper_ctrl_limit=hlm,
            lower_ctrl_limit=llm,
            upper_disp_limit=hlm,
            lower_disp_limit=llm,
        )
        await self.fields.user_readback_value.write_metadata(
            publish=False, upper_disp_limit=hlm, lower_disp_limit=llm
        )

    async def _post_limit_fields(self) -> None:
        f = self.fields
        hlm, llm = self._user_limits()
        for ch, val in (
            (f.dial_high_limit, self._dhlm),
            (f.dial_low_limit, self._dllm),
            (f.user_high_limit, hlm),
            (f.user_low_limit, llm),
        ):
            await self._post(ch, val)

    async def set_limit(self, field: str, value) -> None:
        """A put to HLM, LLM, DHLM or DLLM: a user limit sets the dial limit it maps to
        (HLM is DLLM with DIR=Neg); everything is re-posted, then the monitors leave."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{field} must be finite")
        if field in ("HLM", "LLM"):
            high = (field == "HLM") == (self._sign > 0)  # which dial limit it is
            dial = self._sign * (value - self._off)
            field = "DHLM" if high else "DLLM"
            value = dial
        if field == "DHLM":
            self._dhlm = value
        else:
            self._dllm = value
        await self._post_limits()
        await flush()

    async def _set_dmov(self, value: int) -> None:
        await self._post(self.fields.done_moving_to_value, value)

    async def _pulse_dmov(self) -> None:
        """DMOV 1 -> 0 -> 1 for a record processing that does not move (when idle)."""
        if self._busy:
            return
        await self._set_dmov(0)
        await self._set_dmov(1)
        await self._post_switches()
        await flush()

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
