"""Compact record table of the simulated ADSimDetector v3.4 IOC (areaDetector ADCore 3.4 era).

Written by hand from ADCore's ``ADApp/Db/*.template`` files (ADBase, NDArrayBase,
NDPluginBase, NDFile, NDFileHDF5, NDStats, NDROI, NDStdArrays, NDPva) and ADSimDetector's
``simDetector.template``.  Only the records that ophyd's ``*_V34`` classes and
apstools' ``SimDetectorCam_V34`` instantiate are listed (1,061 PVs for the how-to's detector);
:func:`spec_for` returns the expanded per-PV specification used by ``iocs/records.py``.

The table itself is the text file ``iocs/ad_table.txt`` beside this module (one line per record
base name, in ``[BLOCK]`` sections; its header documents the line format); this module
composes the groups from its blocks and expands the lines.
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass
from pathlib import Path

# Shared enum string lists (as in the templates).
ENUMS = {
    "NOYES": "No;Yes",
    "DISEN": "Disable;Enable",
    "DATATYPE": "Int8;UInt8;Int16;UInt16;Int32;UInt32;Float32;Float64",
    "COLORMODE": "Mono;Bayer;RGB1;RGB2;RGB3;YUV444;YUV422;YUV421",
    "BAYER": "RGGB;GBRG;GRBG;BGGR",
    "NDATTR": "Attributes file OK;File not found;XML syntax error;Macro substitution error",
    "DETSTATE": "Idle;Acquire;Readout;Correct;Saving;Aborting;Error;Waiting;Initializing;"
    "Disconnected;Aborted",
    "ROITYPE": "Int8;UInt8;Int16;UInt16;Int32;UInt32;Float32;Float64;Automatic",
    "ONOFF": "Off;On",
    "DONE": "Done;Acquiring",
    "FILTERTYPE": "RecursiveAve;Average;Sum;Difference;RecursiveAveDiff;CopyToFilter",
    "TRANSFORM": "None;Rot90;Rot180;Rot270;Mirror;Rot90Mirror;Rot180Mirror;Rot270Mirror",
}


#: The record table (text), read once on first use: importing this module reads no file.
TABLE_FILE = Path(__file__).with_name("ad_table.txt")


@functools.cache
def blocks() -> dict[str, str]:
    """The table's ``[NAME]`` sections: block name -> its lines (comments kept)."""
    out: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in TABLE_FILE.read_text().splitlines():
        if line.startswith("[") and line.rstrip().endswith("]"):
            current = out.setdefault(line.strip()[1:-1], [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in out.items()}


#: Groups of the how-to's detector: (suffix, blocks, plugin type, port, upstream port).
GROUPS = {
    "cam1:": (("NDARRAY_BASE", "CAM"), "", "SIM1", ""),
    "image1:": (("NDARRAY_BASE", "PLUGIN_BASE", "IMAGE"), "NDPluginStdArrays", "IMAGE1", "SIM1"),
    "Pva1:": (("NDARRAY_BASE", "PLUGIN_BASE", "PVA"), "NDPluginPva", "PVA1", "SIM1"),
    "ROI1:": (("NDARRAY_BASE", "PLUGIN_BASE", "ROI"), "NDPluginROI", "ROI1", "SIM1"),
    "Stats1:": (("NDARRAY_BASE", "PLUGIN_BASE", "STATS"), "NDPluginStats", "STATS1", "ROI1"),
    "HDF1:": (("NDARRAY_BASE", "PLUGIN_BASE", "HDF5"), "NDFileHDF5", "FileHDF1", "SIM1"),
}

#: The commonPlugins.cmd plugins (suffix as there: netCDF1: is lower-case in ADCore's file).
_B = ("NDARRAY_BASE", "PLUGIN_BASE")
_F = (*_B, "NDFILE")
COMMON_GROUPS = {
    "TIFF1:": ((*_F, "TIFF", "TIFF_DEFAULTS", "DISABLED"), "NDFileTIFF", "FileTIFF1", "SIM1"),
    "JPEG1:": ((*_F, "JPEG", "JPEG_DEFAULTS", "DISABLED"), "NDFileJPEG", "FileJPEG1", "SIM1"),
    "netCDF1:": (
        (*_F, "NETCDF", "NETCDF_DEFAULTS", "DISABLED"),
        "NDFileNetCDF",
        "FileNetCDF1",
        "SIM1",
    ),
    "Nexus1:": ((*_F, "NEXUS", "NEXUS_DEFAULTS", "DISABLED"), "NDFileNexus", "FileNexus1", "SIM1"),
    "Magick1:": (
        (*_F, "MAGICK", "MAGICK_DEFAULTS", "DISABLED"),
        "NDFileMagick",
        "FileMagick1",
        "SIM1",
    ),
    "Proc1:": ((*_B, "PROCESS", "DISABLED"), "NDPluginProcess", "PROC1", "SIM1"),
    "Trans1:": ((*_B, "TRANSFORM", "DISABLED"), "NDPluginTransform", "TRANS1", "SIM1"),
    "Over1:": ((*_B, "OVERLAY", "OVERLAY_N", "DISABLED"), "NDPluginOverlay", "OVER1", "SIM1"),
    "CC1:": ((*_B, "COLORCONV", "DISABLED"), "NDPluginColorConvert", "CC1", "SIM1"),
    "CB1:": ((*_B, "CIRCBUFF", "DISABLED"), "NDPluginCircularBuff", "CB1", "SIM1"),
    "ROIStat1:": ((*_B, "ROISTAT", "ROISTAT_N", "DISABLED"), "NDPluginROIStat", "ROISTAT1", "SIM1"),
    "Attr1:": ((*_B, "ATTRIBUTE", "ATTRIBUTE_N", "DISABLED"), "NDPluginAttribute", "ATTR1", "SIM1"),
    "FFT1:": ((*_B, "FFT", "DISABLED"), "NDPluginFFT", "FFT1", "SIM1"),
    "Codec1:": ((*_B, "CODEC", "DISABLED"), "NDPluginCodec", "CODEC1", "SIM1"),
    "Scatter1:": ((*_B, "SCATTER", "DISABLED"), "NDPluginScatter", "SCATTER1", "SIM1"),
    "Gather1:": ((*_B, "GATHER", "GATHER_N", "DISABLED"), "NDPluginGather", "GATHER1", "SIM1"),
    "BadPix1:": ((*_B, "BADPIXEL", "DISABLED"), "NDPluginBadPixel", "BADPIX1", "SIM1"),
}

#: The how-to's groups (HOWTO_GROUPS) plus the common plugins: what the IOC serves.
HOWTO_GROUPS = dict(GROUPS)
GROUPS = {**GROUPS, **COMMON_GROUPS}

# Setpoint type -> readback type.
RBV_TYPE = {
    "ao": "ai",
    "longout": "longin",
    "bo": "bi",
    "busy": "bi",
    "mbbo": "mbbi",
    "stringout": "stringin",
    "wchar": "wchar",
    "subarray": "subarray",
}

# Records the cam does not have although NDArrayBase lists them for plugins... (none here:
# "NDARRAY_BASE" above is already trimmed to what cam and plugins share).
CAM_SKIP: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PVSpec:
    """One served PV (suffix relative to the group's prefix)."""

    name: str
    rtype: str
    default: object
    enums: tuple[str, ...] = ()
    read_only: bool = False
    rbv: str | None = None  # the readback's name when this is a setpoint
    setpoint: str | None = None  # the setpoint's name when this is a readback
    length: int = 1  # waveform element count


def _parse_default(rtype: str, raw: str, enums: tuple[str, ...]):
    if raw == "-":
        raw = ""
    if enums:
        if raw == "":
            return enums[0]
        if raw in enums:
            return raw
        return enums[int(raw)]
    if rtype in ("ao", "ai", "calc", "calcout") or rtype.startswith("wdouble"):
        return float(raw or 0)
    if rtype in ("longout", "longin", "subarray", "fanout", "disa") or rtype.startswith("wlong"):
        return int(raw or 0)
    return raw


def parse_block(block: str) -> list[PVSpec]:
    """Expand one text block into PV specifications (setpoint + _RBV pairs expanded)."""
    out: list[PVSpec] = []
    for line in block.splitlines():
        line = line.split("#", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        head, _, enum_txt = line.partition(" : ")
        enum_txt = enum_txt.strip()
        if enum_txt.startswith("$"):
            enum_txt = ENUMS[enum_txt[1:]]
        enums = tuple(e for e in enum_txt.split(";")) if enum_txt else ()
        parts = shlex.split(head)
        name, rtype, raw = parts[0], parts[1], parts[2]
        flags = parts[3] if len(parts) > 3 else "-"
        length = 1
        if ":" in rtype:
            rtype, n = rtype.split(":")
            rtype = rtype + ""
            length = int(n)
        elif rtype == "wchar":
            length = 256
        default = _parse_default(rtype, raw, enums)
        if flags == "rbv":
            rbv_name = name + "_RBV"
            out.append(PVSpec(name, rtype, default, enums, False, rbv=rbv_name, length=length))
            rb_type = RBV_TYPE.get(rtype, rtype)
            out.append(
                PVSpec(rbv_name, rb_type, default, enums, True, setpoint=name, length=length)
            )
        else:
            out.append(PVSpec(name, rtype, default, enums, flags == "ro", length=length))
    return out


def spec_for(suffix: str) -> list[PVSpec]:
    """All PV specifications of one group (``"cam1:"``, ``"HDF1:"``, ...), without duplicates."""
    table = blocks()
    seen: dict[str, PVSpec] = {}
    for name in GROUPS[suffix][0]:
        for spec in parse_block(table[name]):
            seen[spec.name] = spec  # later blocks override (e.g. "ROI" MinX over cam lines)
    return list(seen.values())


def all_pv_names(prefix: str = "kad:") -> list[str]:
    """Every PV name served for the how-to's detector under ``prefix``."""
    return [prefix + sfx + s.name for sfx in GROUPS for s in spec_for(sfx)]
