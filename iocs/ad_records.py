"""Turn the record table of ``iocs/ad_table.py`` into caproto PVGroup classes.

One declarative :class:`caproto.server.PVGroup` subclass is generated per cam/plugin
(:func:`make_group_class`): one ``pvproperty`` per table line, ``_RBV`` readbacks
read-only.  Channel semantics chosen to match what ophyd/pyepics expect of a real IOC:

* enums (bo/bi/mbbo/mbbi/busy) are :class:`StrictEnum`: a put (CA or Python ``write``) of a
  string that is not one of the enum strings, or of an index out of range, is refused
  (raises), never stored;
* string CHAR waveforms (FilePath, FileName, FileTemplate, FullFileName_RBV, ...) are
  :class:`CharString`: a 256-element CHAR waveform whose value is kept as ``text + NUL``
  (like the real record's NORD = strlen + 1), so both pyepics and caproto clients read back
  exactly the string they wrote; a put of an empty string (ophyd's unstage restoring an empty
  FileTemplate sends ``[0]``) is accepted and stored as empty.  Use :func:`text` to get the
  Python string;
* a put to a setpoint runs the group's ``on_put(name, value)`` hook (behaviour lives in
  ``iocs/simdet.py``) and then copies the stored value to its ``_RBV`` unless the name is in
  the group's ``manual_rbv`` set (the behaviour updates those readbacks itself);
* ``DataType_RBV.DISA`` is served as its own short channel (value 0) because ophyd's
  ``DetectorBase.describe()`` reads it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from caproto import AccessRights, CaprotoValueError, ChannelType
from caproto.server import PVGroup, pvproperty
from caproto.server.server import (
    PvpropertyByte,
    PvpropertyChar,
    PvpropertyDouble,
    PvpropertyEnum,
    PvpropertyInteger,
    PvpropertyShort,
    PvpropertyString,
)

from . import ad_table
from .ad_table import PVSpec

STRING_LEN = 256


class _ReadOnly:
    """Mixin: refuse CA writes (internal ``write`` still works)."""

    def check_access(self, host, user):
        return AccessRights.READ


def _enum_check(strings: tuple[str, ...], value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        if value in strings:
            return value
        raise CaprotoValueError(f"{value!r} is not one of the enum strings {strings}")
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != 1:
            raise CaprotoValueError(f"invalid enum value {value!r}")
        return _enum_check(strings, value[0])
    try:
        idx = int(value)
    except (TypeError, ValueError):
        raise CaprotoValueError(f"invalid enum value {value!r}") from None
    if 0 <= idx < len(strings):
        return strings[idx]
    raise CaprotoValueError(f"enum index {idx} out of range for {strings}")


class StrictEnum(PvpropertyEnum):
    """ENUM that refuses unknown strings and out-of-range indices."""

    def preprocess_value(self, value):
        # Runs on every write (also with verify_value=False): never store a bad string.
        value = super().preprocess_value(value)
        if "_data" not in self.__dict__:  # during __init__ (value from the table)
            return value
        return _enum_check(self.enum_strings, value)


class StrictEnumRO(_ReadOnly, StrictEnum):
    pass


def _to_text(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.astype(np.uint8, copy=False).tobytes()
    elif isinstance(value, (list, tuple)):
        if value and isinstance(value[0], (bytes, str)):
            value = value[0]
        else:
            value = bytes(int(v) & 0xFF for v in value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("latin-1")
    value = str(value)
    return value.split("\x00", 1)[0]


class CharString(PvpropertyChar):
    """A string held in a CHAR waveform of :data:`STRING_LEN` elements (value = text + NUL)."""

    def preprocess_value(self, value):
        txt = _to_text(value)[: (self.max_length or STRING_LEN) - 1]
        return txt + "\x00"

    async def write_from_dbr(self, data, data_type, metadata, *, flags=0):
        if data_type in (
            ChannelType.CHAR,
            ChannelType.STRING,
            ChannelType.TIME_CHAR,
            ChannelType.TIME_STRING,
        ):
            return await self.write(_to_text(data), flags=flags)
        return await super().write_from_dbr(data, data_type, metadata, flags=flags)


class CharStringRO(_ReadOnly, CharString):
    pass


class DoubleRO(_ReadOnly, PvpropertyDouble):
    pass


class IntegerRO(_ReadOnly, PvpropertyInteger):
    pass


class ShortRO(_ReadOnly, PvpropertyShort):
    pass


class StringRO(_ReadOnly, PvpropertyString):
    pass


class ByteArrayRO(_ReadOnly, PvpropertyByte):
    """Read-only CHAR array of raw bytes (image data): zeros are data, never stripped."""

    def __init__(self, *args, strip_null_terminator=False, **kwargs):
        super().__init__(*args, strip_null_terminator=False, **kwargs)


def text(instance) -> str:
    """The Python string held by a :class:`CharString` (or any string-like channel)."""
    return _to_text(instance.value)


_NUMERIC = {
    "ao": (PvpropertyDouble, DoubleRO, float),
    "ai": (PvpropertyDouble, DoubleRO, float),
    "calc": (PvpropertyDouble, DoubleRO, float),
    "calcout": (PvpropertyDouble, DoubleRO, float),
    "longout": (PvpropertyInteger, IntegerRO, int),
    "longin": (PvpropertyInteger, IntegerRO, int),
    "subarray": (PvpropertyInteger, IntegerRO, int),
    "fanout": (PvpropertyInteger, IntegerRO, int),
    "disa": (PvpropertyShort, ShortRO, int),
    "wlong": (PvpropertyInteger, IntegerRO, int),
    "wdouble": (PvpropertyDouble, DoubleRO, float),
}


def attr_name(pv_suffix: str) -> str:
    """Python attribute name of a PV suffix (``DataType_RBV.DISA`` -> ``DataType_RBV_DISA``)."""
    return pv_suffix.replace(".", "_")


def _make_property(spec: PVSpec, overrides: dict[str, dict]) -> pvproperty:
    kw: dict[str, Any] = dict(name=spec.name, read_only=spec.read_only, doc=spec.rtype, record=None)
    rtype = spec.rtype
    if spec.enums:
        kw.update(
            dtype=StrictEnumRO if spec.read_only else StrictEnum,
            enum_strings=list(spec.enums),
            value=spec.default,
        )
    elif rtype == "wchar":
        kw.update(
            dtype=CharStringRO if spec.read_only else CharString,
            value=str(spec.default) + "\x00",
            max_length=spec.length,
        )
    elif rtype in ("stringout", "stringin", "asyn"):
        kw.update(dtype=StringRO if spec.read_only else PvpropertyString, value=str(spec.default))
    elif rtype in _NUMERIC:
        rw, ro, cast = _NUMERIC[rtype]
        kw["dtype"] = ro if spec.read_only else rw
        if spec.length > 1:
            kw.update(
                value=np.zeros(spec.length, dtype=np.float64 if cast is float else np.int32),
                max_length=spec.length,
            )
        else:
            kw["value"] = cast(spec.default)
        if rw is PvpropertyDouble:
            kw["precision"] = 3
    elif rtype == "wdata":
        pass  # filled from overrides
    else:  # pragma: no cover - table error
        raise ValueError(f"unknown record type {rtype!r} for {spec.name}")
    kw.update(overrides.get(spec.name, {}))
    kw.pop("record")
    return pvproperty(**kw)


class ADGroupBase(PVGroup):
    """Common machinery of the generated groups (behaviour hooks for ``iocs/simdet.py``)."""

    #: PVSpec by PV suffix (filled per generated class).
    specs: dict[str, PVSpec] = {}
    #: Setpoints whose ``_RBV`` the behaviour updates itself.
    manual_rbv: frozenset[str] = frozenset()

    def pv(self, name: str):
        """The channel instance of PV suffix ``name``."""
        return getattr(self, attr_name(name))

    def get(self, name: str):
        """Current value of PV suffix ``name`` (strings of CharString channels unwrapped)."""
        inst = self.pv(name)
        if isinstance(inst, CharString):
            return text(inst)
        return inst.value

    async def set(self, name: str, value, *, only_changed: bool = False, **metadata):
        """Write ``value`` to PV ``name`` from the IOC side (no put hooks run)."""
        inst = self.pv(name)
        if only_changed:
            cur = inst.value
            try:
                if isinstance(cur, (list, np.ndarray)) or isinstance(value, np.ndarray):
                    if np.array_equal(np.asarray(cur), np.asarray(value)):
                        return
                elif cur == value:
                    return
            except (TypeError, ValueError):
                pass
        await inst.write(value, verify_value=False, **metadata)

    async def set_pair(self, name: str, value, **kw):
        """Write a setpoint and its readback."""
        await self.set(name, value, **kw)
        rbv = self.specs[name].rbv
        if rbv:
            await self.set(rbv, value, **kw)

    async def on_put(self, name: str, value):
        """Hook: a CA client put ``value`` to setpoint ``name``; return the value to store."""
        return value

    async def group_write(self, instance, value):
        name = instance.pvspec.name
        spec = self.specs.get(name)
        new = await self.on_put(name, value)
        stored = value if new is None else new
        if spec is not None and spec.rbv and name not in self.manual_rbv:
            # Preprocess as the setpoint will, so the readback holds exactly what is stored.
            rbv = self.pv(spec.rbv)
            await rbv.write(instance.preprocess_value(stored), verify_value=False)
        return new


def make_group_class(
    suffix: str,
    *,
    name: str | None = None,
    base: type = ADGroupBase,
    overrides: dict[str, dict] | None = None,
) -> type:
    """Generate the PVGroup class of group ``suffix`` (``"cam1:"``, ``"HDF1:"``, ...).

    ``overrides`` maps a PV suffix to extra ``pvproperty`` keyword arguments (e.g. the
    ``ArrayData`` dtype/max_length).  ``base`` may be a subclass of :class:`ADGroupBase`
    carrying behaviour; it must not itself define pvproperties named like table entries.
    """
    overrides = overrides or {}
    specs = ad_table.spec_for(suffix)
    attrs: dict[str, Any] = {
        "specs": {s.name: s for s in specs},
        "__doc__": f"Generated records of areaDetector group {suffix!r}",
    }
    for spec in specs:
        attrs[attr_name(spec.name)] = _make_property(spec, overrides)
    cls_name = name or ("AD_" + suffix.rstrip(":"))
    return type(cls_name, (base,), attrs)
