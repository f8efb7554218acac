"""Compact record table of the simulated ADSimDetector v3.4 IOC (areaDetector ADCore 3.4 era).

Written by hand from ADCore's ``ADApp/Db/*.template`` files (ADBase, NDArrayBase,
NDPluginBase, NDFile, NDFileHDF5, NDStats, NDROI, NDStdArrays, NDPva) and ADSimDetector's
``simDetector.template``.  Only the records that ophyd's ``*_V34`` classes and
apstools' ``SimDetectorCam_V34`` instantiate are listed (1,061 PVs for the how-to's detector);
:func:`spec_for` returns the expanded per-PV specification used by ``iocs/ad_records.py``.

Line format (one line per record base name; ``#`` starts a comment)::

    Name  type  default  flags  [: enum strings separated by ';']

``type``
    EPICS record type: ao ai longout longin bo bi mbbo mbbi stringout stringin busy,
    ``wchar`` (waveform FTVL=CHAR NELM=256 holding a string), ``wlong:N`` / ``wdouble:N``
    (numeric waveform of N elements), ``subarray`` (LONG, NELM=1), ``calc`` / ``calcout``
    (served as a double), ``fanout`` (served as a long), ``asyn`` (asyn record: its VAL is
    a string), ``disa`` (a record's ``.DISA`` field, a short).
``default``
    Initial value.  For enums an index or one of the strings; ``-`` means zero/empty.
``flags``
    ``rbv``: the line is a setpoint with a read-only ``Name_RBV`` readback of the matching
    input type (ao->ai, longout->longin, bo->bi, mbbo->mbbi, stringout->stringin,
    wchar->wchar, wlong->wlong, subarray->subarray); ``ro``: read-only over CA (input
    records); ``rw``: writable; ``-`` for rw as well.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

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
}

# NDArrayBase: the records shared by the cam and every plugin.
NDARRAY_BASE = """
ADCoreVersion_RBV    stringin  3.4.0      ro
DriverVersion_RBV    stringin  3.4.0      ro
PortName_RBV         stringin  Unknown    ro
ArrayCallbacks       bo        Enable     rbv  : $DISEN
ArrayCounter         longout   0          rbv
ArrayRate_RBV        calc      0          ro
ArraySizeX_RBV       longin    0          ro
ArraySizeY_RBV       longin    0          ro
ArraySizeZ_RBV       longin    0          ro
ArraySize_RBV        longin    0          ro
AsynIO               asyn      -          rw
ColorMode            mbbo      Mono       rbv  : $COLORMODE
DataType             mbbo      UInt8      rbv  : $DATATYPE
NDAttributesFile     wchar     -          rw
NDAttributesStatus   mbbi      0          ro   : $NDATTR
PoolAllocBuffers     longin    0          ro
PoolFreeBuffers      longin    0          ro
PoolMaxMem           ai        0          ro
PoolUsedBuffers      calc      0          ro
PoolUsedMem          ai        0          ro
"""

# ADBase + ADSimDetector's simDetector.template (cam1:).
CAM = """
Acquire              bo        Done       rw   : Done;Acquire
Acquire_RBV          bi        Done       ro   : Done;Acquiring
AcquireBusy          busy      Done       rw   : $DONE
AcquireTime          ao        1.0        rbv
AcquirePeriod        ao        0.0        rbv
TimeRemaining_RBV    ai        0          ro
BinX                 longout   1          rbv
BinY                 longout   1          rbv
MinX                 longout   0          rbv
MinY                 longout   0          rbv
SizeX                longout   1024       rbv
SizeY                longout   1024       rbv
MaxSizeX_RBV         longin    1024       ro
MaxSizeY_RBV         longin    1024       ro
ReverseX             bo        No         rbv  : $NOYES
ReverseY             bo        No         rbv  : $NOYES
DataType_RBV.DISA    disa      0          ro
DetectorState_RBV    mbbi      Idle       ro   : $DETSTATE
FrameType            mbbo      Normal     rbv  : Normal;Background;FlatField
Gain                 ao        1.0        rbv
ImageMode            mbbo      Multiple   rbv  : Single;Multiple;Continuous
TriggerMode          mbbo      Internal   rbv  : Internal;External
Manufacturer_RBV     stringin  "Simulated detector" ro
Model_RBV            stringin  "Basic simulator"    ro
NumExposures         longout   1          rbv
NumExposuresCounter_RBV longin 0          ro
NumImages            longout   1          rbv
NumImagesCounter_RBV longin    0          ro
ReadStatus           bo        Done       rw   : Done;Read
ShutterMode          mbbo      None       rbv  : None;EPICS PV;Detector output
ShutterControl       bo        Close      rbv  : Close;Open
ShutterStatus_RBV    bi        Closed     ro   : Closed;Open
ShutterOpenDelay     ao        0.0        rbv
ShutterCloseDelay    ao        0.0        rbv
ShutterControlEPICS  bi        Closed     ro   : Closed;Open
ShutterFanout        fanout    0          rw
ShutterOpenEPICS     calcout   0          rw
ShutterCloseEPICS    calcout   0          rw
ShutterStatusEPICS_RBV mbbi    Closed     ro   : Closed;Open
StatusMessage_RBV    wchar     Idle       ro
StringFromServer_RBV wchar     -          ro
StringToServer_RBV   wchar     -          ro
Temperature          ao        25.0       rbv
TemperatureActual    ai        25.0       ro
WaitForPlugins       bo        No         rw   : $NOYES
# simDetector.template
GainX                ao        1.0        rbv
GainY                ao        1.0        rbv
GainRed              ao        1.0        rbv
GainGreen            ao        1.0        rbv
GainBlue             ao        1.0        rbv
Offset               ao        0.0        rbv
Noise                ao        0.0        rbv
PeakStartX           longout   1          rbv
PeakStartY           longout   1          rbv
PeakNumX             longout   1          rbv
PeakNumY             longout   1          rbv
PeakStepX            longout   1          rbv
PeakStepY            longout   1          rbv
PeakWidthX           longout   10         rbv
PeakWidthY           longout   20         rbv
PeakVariation        ao        0.0        rbv
Reset                longout   0          rbv
SimMode              mbbo      LinearRamp rbv  : LinearRamp;Peaks;Sine;Offset&Noise
"""

# NDPluginBase (every plugin), on top of NDARRAY_BASE.
PLUGIN_BASE = """
PluginType_RBV       stringin  Unknown    ro
NDArrayPort          stringout -          rbv
NDArrayAddress       longout   0          rbv
EnableCallbacks      bo        Enable     rbv  : $DISEN
MinCallbackTime      ao        0.0        rbv
BlockingCallbacks    bo        No         rbv  : $NOYES
DroppedArrays        longout   0          rbv
DroppedOutputArrays  longout   0          rbv
DisorderedArrays     longout   0          rbv
QueueSize            longout   20         rbv
QueueFree            longin    20         ro
QueueFreeLow         calcout   5          rw
QueueUse             calc      0          ro
QueueUseHIGH         calcout   15         rw
QueueUseHIHI         calcout   20         rw
NumThreads           longout   1          rbv
MaxThreads_RBV       longin    1          ro
SortMode             mbbo      Unsorted   rbv  : Unsorted;Sorted
SortTime             ao        0.1        rbv
SortSize             longout   10         rbv
SortFree             longin    10         ro
SortFreeLow          calcout   2          rw
NumQueuedArrays      longin    0          ro
EmptyFreeList        bo        0          rw   : Done;Empty
ProcessPlugin        bo        0          rw   : Done;Process
MaxArrayRate         ao        0.0        rbv
MaxArrayRate_COUT    calcout   0          rw
MaxByteRate          ao        0.0        rbv
ExecutionTime_RBV    ai        0          ro
NDimensions          longout   0          rbv
Dimensions           wlong:10  -          rbv
Dim0SA               subarray  0          rbv
Dim1SA               subarray  0          rbv
Dim2SA               subarray  0          rbv
Dim3SA               subarray  0          rbv
Dim4SA               subarray  0          rbv
Dim5SA               subarray  0          rbv
Dim6SA               subarray  0          rbv
Dim7SA               subarray  0          rbv
Dim8SA               subarray  0          rbv
Dim9SA               subarray  0          rbv
ArraySize0           longout   0          rbv
ArraySize1           longout   0          rbv
ArraySize2           longout   0          rbv
ArraySize3           longout   0          rbv
ArraySize4           longout   0          rbv
ArraySize5           longout   0          rbv
ArraySize6           longout   0          rbv
ArraySize7           longout   0          rbv
ArraySize8           longout   0          rbv
ArraySize9           longout   0          rbv
BayerPattern_RBV     mbbi      RGGB       ro   : $BAYER
UniqueId_RBV         longin    0          ro
TimeStamp_RBV        ai        0          ro
EpicsTSSec_RBV       longin    0          ro
EpicsTSNsec_RBV      longin    0          ro
NDAttributesMacros   wchar     -          rw
"""

# NDFile.template + NDFileHDF5.template (HDF1:).
HDF5 = """
FilePath             wchar     -          rbv
FilePathExists_RBV   bi        No         ro   : $NOYES
CreateDirectory      longout   0          rbv
FileName             wchar     -          rbv
FileNumber           longout   0          rbv
AutoIncrement        bo        Yes        rbv  : $NOYES
FileTemplate         wchar     %s%s_%6.6d.h5 rbv
FullFileName_RBV     wchar     -          ro
AutoSave             bo        No         rbv  : $NOYES
WriteFile            busy      Done       rbv  : Done;Write
ReadFile             busy      Done       rbv  : Done;Read
FileFormat           mbbo      HDF5       rbv  : HDF5
FileWriteMode        mbbo      Stream     rbv  : Single;Capture;Stream
Capture              busy      Done       rbv  : Done;Capture
NumCapture           longout   1          rbv
NumCaptured_RBV      longin    0          ro
DeleteDriverFile     bo        No         rbv  : $NOYES
LazyOpen             bo        No         rbv  : $NOYES
TempSuffix           stringout -          rbv
WriteStatus          bi        "Write OK" ro   : Write OK;Write error
WriteMessage         wchar     -          rw
FreeCapture          bo        0          rw   : Done;Free
# NDFileHDF5
NumRowChunks         longout   0          rbv
NumColChunks         longout   0          rbv
NumFramesChunks      longout   0          rbv
NDAttributeChunk     longout   0          rbv
NumFramesFlush       longout   0          rbv
BoundaryAlign        longout   0          rbv
BoundaryThreshold    longout   65536      rbv
NumExtraDims         mbbo      0          rbv  : 0;1;2;3;4;5;6;7;8;9
ExtraDimSizeN        longout   1          rbv
ExtraDimNameN_RBV    stringin  n          ro
ExtraDimChunkX       longout   1          rbv
ExtraDimSizeX        longout   1          rbv
ExtraDimNameX_RBV    stringin  X          ro
ExtraDimChunkY       longout   1          rbv
ExtraDimSizeY        longout   1          rbv
ExtraDimNameY_RBV    stringin  Y          ro
ExtraDimChunk3       longout   1          rbv
ExtraDimSize3        longout   1          rbv
ExtraDimName3_RBV    stringin  3          ro
ExtraDimChunk4       longout   1          rbv
ExtraDimSize4        longout   1          rbv
ExtraDimName4_RBV    stringin  4          ro
ExtraDimChunk5       longout   1          rbv
ExtraDimSize5        longout   1          rbv
ExtraDimName5_RBV    stringin  5          ro
ExtraDimChunk6       longout   1          rbv
ExtraDimSize6        longout   1          rbv
ExtraDimName6_RBV    stringin  6          ro
ExtraDimChunk7       longout   1          rbv
ExtraDimSize7        longout   1          rbv
ExtraDimName7_RBV    stringin  7          ro
ExtraDimChunk8       longout   1          rbv
ExtraDimSize8        longout   1          rbv
ExtraDimName8_RBV    stringin  8          ro
ExtraDimChunk9       longout   1          rbv
ExtraDimSize9        longout   1          rbv
ExtraDimName9_RBV    stringin  9          ro
PosNameDimN          wchar     -          rbv
PosNameDimX          wchar     -          rbv
PosNameDimY          wchar     -          rbv
PosNameDim3          wchar     -          rbv
PosNameDim4          wchar     -          rbv
PosNameDim5          wchar     -          rbv
PosNameDim6          wchar     -          rbv
PosNameDim7          wchar     -          rbv
PosNameDim8          wchar     -          rbv
PosNameDim9          wchar     -          rbv
PosIndexDimN         wchar     -          rbv
PosIndexDimX         wchar     -          rbv
PosIndexDimY         wchar     -          rbv
PosIndexDim3         wchar     -          rbv
PosIndexDim4         wchar     -          rbv
PosIndexDim5         wchar     -          rbv
PosIndexDim6         wchar     -          rbv
PosIndexDim7         wchar     -          rbv
PosIndexDim8         wchar     -          rbv
PosIndexDim9         wchar     -          rbv
PositionMode         bo        Off        rbv  : $ONOFF
Compression          mbbo      None       rbv  : None;N-bit;szip;zlib;Blosc;BSLZ4;LZ4;JPEG
NumDataBits          longout   8          rbv
DataBitsOffset       longout   0          rbv
SZipNumPixels        longout   16         rbv
ZLevel               longout   6          rbv
BloscShuffle         mbbo      None       rbv  : None;Byte;Bit
BloscCompressor      mbbo      BloscLZ    rbv  : BloscLZ;LZ4;LZ4HC;SNAPPY;ZLIB;ZSTD
BloscLevel           longout   5          rbv
StoreAttr            bo        Yes        rbv  : $NOYES
StorePerform         bo        Yes        rbv  : $NOYES
RunTime              ai        0          ro
IOSpeed              ai        0          ro
XMLFileName          wchar     -          rbv
XMLValid_RBV         bi        No         ro   : $NOYES
XMLErrorMsg_RBV      wchar     -          ro
FillValue            ao        0          rbv
DimAttDatasets       bo        No         rbv  : $NOYES
SWMRSupported_RBV    bi        Supported  ro   : Not supported;Supported
SWMRMode             bo        Off        rbv  : $ONOFF
SWMRActive_RBV       bi        Off        ro   : Off;Active
SWMRCbCounter_RBV    longin    0          ro
"""

# NDStats.template (Stats1:).
STATS = """
ComputeStatistics    bo        Yes        rbv  : $NOYES
BgdWidth             longout   0          rbv
MinValue             ai        0          rbv
MaxValue             ai        0          rbv
MeanValue            ai        0          rbv
SigmaValue           ai        0          ro
Sigma_RBV            ai        0          ro
Total                ai        0          rbv
Net                  ai        0          rbv
MinX                 ai        0          rbv
MinY                 ai        0          rbv
MaxX                 ai        0          rbv
MaxY                 ai        0          rbv
ComputeCentroid      bo        No         rbv  : $NOYES
CentroidThreshold    ao        1          rbv
CentroidTotal        ai        0          rbv
CentroidX            ai        0          rbv
CentroidY            ai        0          rbv
SigmaX               ai        0          rbv
SigmaY               ai        0          rbv
SigmaXY              ai        0          rbv
SkewX                ai        0          rbv
SkewY                ai        0          rbv
KurtosisX            ai        0          rbv
KurtosisY            ai        0          rbv
Eccentricity         ai        0          rbv
Orientation          ai        0          rbv
ComputeProfiles      bo        No         rbv  : $NOYES
ProfileSizeX_RBV     longin    0          ro
ProfileSizeY_RBV     longin    0          ro
CursorX              longout   256        rbv
CursorY              longout   256        rbv
ProfileAverageX_RBV  wdouble:2048 -       ro
ProfileAverageY_RBV  wdouble:2048 -       ro
ProfileThresholdX_RBV wdouble:2048 -      ro
ProfileThresholdY_RBV wdouble:2048 -      ro
ProfileCentroidX_RBV wdouble:2048 -       ro
ProfileCentroidY_RBV wdouble:2048 -       ro
ProfileCursorX_RBV   wdouble:2048 -       ro
ProfileCursorY_RBV   wdouble:2048 -       ro
ComputeHistogram     bo        No         rbv  : $NOYES
HistSize             longout   256        rbv
HistMin              ao        0          rbv
HistMax              ao        255        rbv
HistBelow            longin    0          rbv
HistAbove            longin    0          rbv
HistEntropy          ai        0          rbv
Histogram_RBV        wdouble:256 -        ro
HistogramX_RBV       wdouble:256 -        ro
MaxSizeX             longout   1024       rw
MaxSizeY             longout   1024       rw
SetXHOPR             calcout   0          rw
SetYHOPR             calcout   0          rw
Reset                busy      0          rw   : Done;Reset
Reset1               calcout   0          rw
Reset2               calcout   0          rw
TSTimestamp          wdouble:2048 -       ro
TSMinValue           wdouble:2048 -       ro
TSMinX               wdouble:2048 -       ro
TSMinY               wdouble:2048 -       ro
TSMaxValue           wdouble:2048 -       ro
TSMaxX               wdouble:2048 -       ro
TSMaxY               wdouble:2048 -       ro
TSMeanValue          wdouble:2048 -       ro
TSSigma              wdouble:2048 -       ro
TSTotal              wdouble:2048 -       ro
TSNet                wdouble:2048 -       ro
TSCentroidTotal      wdouble:2048 -       ro
TSCentroidX          wdouble:2048 -       ro
TSCentroidY          wdouble:2048 -       ro
TSSigmaX             wdouble:2048 -       ro
TSSigmaY             wdouble:2048 -       ro
TSSigmaXY            wdouble:2048 -       ro
TSSkewX              wdouble:2048 -       ro
TSSkewY              wdouble:2048 -       ro
TSKurtosisX          wdouble:2048 -       ro
TSKurtosisY          wdouble:2048 -       ro
TSEccentricity       wdouble:2048 -       ro
TSOrientation        wdouble:2048 -       ro
"""

# NDROI.template (ROI1:).
ROI = """
Name                 stringout -          rbv
BinX                 longout   1          rbv
BinY                 longout   1          rbv
BinZ                 longout   1          rbv
MinX                 longout   0          rbv
MinY                 longout   0          rbv
MinZ                 longout   0          rbv
SizeX                longout   1024       rbv
SizeY                longout   1024       rbv
SizeZ                longout   0          rbv
MaxX                 calcout   0          rw
MaxY                 calcout   0          rw
AutoSizeX            bo        No         rbv  : $NOYES
AutoSizeY            bo        No         rbv  : $NOYES
AutoSizeZ            bo        No         rbv  : $NOYES
EnableX              bo        Enable     rbv  : $DISEN
EnableY              bo        Enable     rbv  : $DISEN
EnableZ              bo        Enable     rbv  : $DISEN
ReverseX             bo        No         rbv  : $NOYES
ReverseY             bo        No         rbv  : $NOYES
ReverseZ             bo        No         rbv  : $NOYES
MaxSizeX_RBV         longin    0          ro
MaxSizeY_RBV         longin    0          ro
MaxSizeZ_RBV         longin    0          ro
DataTypeOut          mbbo      Automatic  rbv  : $ROITYPE
EnableScale          bo        Disable    rbv  : $DISEN
Scale                ao        1.0        rbv
CollapseDims         bo        Disable    rbv  : $DISEN
SetXHOPR             calcout   0          rw
SetYHOPR             calcout   0          rw
"""

# NDStdArrays.template (image1:): ArrayData's element type and count follow the frame.
IMAGE = """
ArrayData            wdata     -          ro
"""

# NDPva.template (Pva1:): PVs only, no pvAccess server is run.
PVA = """
PvName_RBV           wchar     kad:Pva1:Image ro
"""

#: Groups of the how-to's detector: (suffix, blocks, plugin type, port, upstream port).
GROUPS = {
    "cam1:": ((NDARRAY_BASE, CAM), "", "SIM1", ""),
    "image1:": ((NDARRAY_BASE, PLUGIN_BASE, IMAGE), "NDPluginStdArrays", "IMAGE1", "SIM1"),
    "Pva1:": ((NDARRAY_BASE, PLUGIN_BASE, PVA), "NDPluginPva", "PVA1", "SIM1"),
    "ROI1:": ((NDARRAY_BASE, PLUGIN_BASE, ROI), "NDPluginROI", "ROI1", "SIM1"),
    "Stats1:": ((NDARRAY_BASE, PLUGIN_BASE, STATS), "NDPluginStats", "STATS1", "ROI1"),
    "HDF1:": ((NDARRAY_BASE, PLUGIN_BASE, HDF5), "NDFileHDF5", "FileHDF1", "SIM1"),
}

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
# NDARRAY_BASE above is already trimmed to what cam and plugins share).
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
            out.append(PVSpec(rbv_name, rb_type, default, enums, True, setpoint=name,
                              length=length))
        else:
            out.append(PVSpec(name, rtype, default, enums, flags == "ro", length=length))
    return out


def spec_for(suffix: str) -> list[PVSpec]:
    """All PV specifications of one group (``"cam1:"``, ``"HDF1:"``, ...), without duplicates."""
    blocks = GROUPS[suffix][0]
    seen: dict[str, PVSpec] = {}
    for block in blocks:
        for spec in parse_block(block):
            seen[spec.name] = spec  # later blocks override (e.g. ROI MinX over cam lines)
    return list(seen.values())


def all_pv_names(prefix: str = "kad:") -> list[str]:
    """Every PV name served for the how-to's detector under ``prefix``."""
    return [prefix + sfx + s.name for sfx in GROUPS for s in spec_for(sfx)]
