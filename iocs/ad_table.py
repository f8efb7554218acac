"""Compact record table of the simulated ADSimDetector v3.4 IOC (areaDetector ADCore 3.4 era).

Written by hand from ADCore's ``ADApp/Db/*.template`` files (ADBase, NDArrayBase,
NDPluginBase, NDFile, NDFileHDF5, NDStats, NDROI, NDStdArrays, NDPva) and ADSimDetector's
``simDetector.template``.  Only the records that ophyd's ``*_V34`` classes and
apstools' ``SimDetectorCam_V34`` instantiate are listed (1,061 PVs for the how-to's detector);
:func:`spec_for` returns the expanded per-PV specification used by ``iocs/records.py``.

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
    "FILTERTYPE": "RecursiveAve;Average;Sum;Difference;RecursiveAveDiff;CopyToFilter",
    "TRANSFORM": "None;Rot90;Rot180;Rot270;Mirror;Rot90Mirror;Rot180Mirror;Rot270Mirror",
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

# ---------------------------------------------------------------------------------------------
# The rest of a stock ADSimDetector IOC: ADCore's iocBoot/EXAMPLE_commonPlugins.cmd.  Generated
# once from ADCore's ADApp/Db/*.template (record type, VAL, ZNAM/ONAM, ZRST.., NELM/FTVL; a
# setpoint with a matching ``_RBV`` input record becomes one ``rbv`` line; records redefined by
# an including template are merged as dbLoadRecords does).  ``*_N`` blocks hold the per-address
# sub-records (NDOverlayN, NDROIStatN, NDAttributeN, NDGatherN) under their ``R`` suffix
# (``1:Name`` is ``<P>Over1:1:Name``).  Only the NDPluginBase/NDArrayBase records of 3.4 are
# served (PLUGIN_BASE above), as for the how-to's plugins.

# NDPluginBase's EnableCallbacks defaults to Disable ($(ENABLED=0)); the how-to's plugins above
# are enabled by its st.cmd, the common plugins are not.
DISABLED = """
EnableCallbacks          bo        Disable    rbv : $DISEN
"""

# NDFile.template: the records every file-writing plugin shares.
NDFILE = """
FilePath                 wchar     -          rbv
FilePathExists_RBV       bi        No         ro : No;Yes
CreateDirectory          longout   0          rbv
FileName                 wchar     -          rbv
FileNumber               longout   1          rbv
AutoIncrement            bo        Yes        rbv : No;Yes
FileTemplate             wchar     -          rbv
FullFileName_RBV         wchar:512 -          ro
AutoSave                 bo        No         rbv : No;Yes
WriteFile                busy      Done       rbv : Done;Write
ReadFile                 busy      Done       rbv : Done;Read
FileFormat               mbbo      Undefined  rbv : Undefined;Invalid
FileWriteMode            mbbo      Single     rbv : Single;Capture;Stream
Capture                  busy      Done       rbv : Done;Capture
NumCapture               longout   1          rbv
NumCaptured_RBV          longin    -          ro
FreeCapture              bo        Done       rw : Done;Free
DeleteDriverFile         bo        No         rbv : No;Yes
WriteStatus              bi        "Write OK" ro : Write OK;Write error
WriteMessage             wchar     -          ro
LazyOpen                 bo        No         rbv : No;Yes
TempSuffix               stringout -          rbv
"""

# NDFileTIFF.template.
TIFF = """
FileFormat               mbbo      TIFF       rbv : TIFF;Invalid
"""

# NDFileJPEG.template.
JPEG = """
FileFormat               mbbo      JPEG       rbv : JPEG;Invalid
JPEGQuality              longout   50         rbv
"""

# NDFileNetCDF.template.
NETCDF = """
FileFormat               mbbo      netCDF     rbv : netCDF;Invalid
"""

# NDFileNexus.template.
NEXUS = """
FileFormat               mbbo      NeXus      rbv : NeXus;Invalid
TemplateFilePath         wchar     -          rbv
TemplateFileName         wchar     -          rbv
FileTemplateValid        bi        No         ro : No;Yes
"""

# NDFileMagick.template.
MAGICK = """
FileFormat               mbbo      "Use extension" rbv : Use extension;Invalid
Quality                  longout   100        rbv
BitDepth                 mbbo      1          rbv : 1;8;16;32
CompressType             mbbo      None       rbv : None;BZip;FAX;Group 4;JPEG;LZW;RLE;Zip
"""

# NDProcess.template.
PROCESS = """
# ADCore 3.4's clipping records (ophyd's ProcessPlugin_V34; later split into Thresh/Value)
LowClip                  ao        0.0        rbv
HighClip                 ao        100.0      rbv
DataTypeOut              mbbo      Automatic  rbv : $ROITYPE
SaveBackground           bo        Yes        rbv : No;Yes
EnableBackground         bo        Disable    rbv : Disable;Enable
ValidBackground_RBV      bi        Invalid    ro : Invalid;Valid
ReadBackgroundTIFFSeq    calcout   0          rw
PortBackup               stringout -          rw
SaveFlatField            bo        Yes        rbv : No;Yes
EnableFlatField          bo        Disable    rbv : Disable;Enable
ValidFlatField_RBV       bi        Invalid    ro : Invalid;Valid
ScaleFlatField           ao        255.       rbv
ReadFlatFieldTIFFSeq     calcout   0          rw
EnableOffsetScale        bo        Disable    rbv : Disable;Enable
AutoOffsetScale          busy      Done       rw : Done;Calculating
Offset                   ao        0.0        rbv
Scale                    ao        1.0        rbv
EnableLowClip            bo        Disable    rbv : Disable;Enable
LowClipThresh            ao        0.0        rbv
LowClipValue             ao        0.0        rbv
EnableHighClip           bo        Disable    rbv : Disable;Enable
HighClipThresh           ao        100.0      rbv
HighClipValue            ao        100.0      rbv
EnableFilter             bo        Disable    rbv : Disable;Enable
ResetFilter              bo        Yes        rbv : No;Yes
AutoResetFilter          bo        No         rbv : No;Yes
FilterCallbacks          bo        "Every array" rbv : Every array;Array N only
NumFilter                longout   1          rbv
NumFilterRecip           calc      0          ro
NumFiltered_RBV          longin    -          ro
OOffset                  ao        0.0        rbv
OScale                   ao        1.0        rbv
OC1                      ao        1.0        rbv
OC2                      ao        -1.0       rbv
OC3                      ao        0.0        rbv
OC4                      ao        1.0        rbv
FOffset                  ao        0.0        rbv
FScale                   ao        1.0        rbv
FC1                      ao        1.0        rbv
FC2                      ao        -1.0       rbv
FC3                      ao        0.0        rbv
FC4                      ao        1.0        rbv
ROffset                  ao        0.0        rbv
RC1                      ao        1.0        rbv
RC2                      ao        1.0        rbv
FilterType               mbbo      RecursiveAve rw : $FILTERTYPE
FilterTypeSeq            calcout   0          rw
RecursiveAveSeq          calcout   0          rw
AverageSeq               calcout   0          rw
SumSeq                   calcout   0          rw
DifferenceSeq            calcout   0          rw
RecursiveAveDiffSeq      calcout   0          rw
CopyToFilterSeq          calcout   0          rw
"""

# NDOverlay.template.
OVERLAY = """
MaxSizeX_RBV             longin    -          ro
MaxSizeY_RBV             longin    -          ro
"""

# NDColorConvert.template.
COLORCONV = """
ColorModeOut             mbbo      Mono       rbv : Mono;Bayer;RGB1;RGB2;RGB3;YUV444;YUV422;YUV421
FalseColor               mbbo      None       rbv : None;Rainbow;Iron
"""

# NDTransform.template.
TRANSFORM = """
Type                     mbbo      None       rw : $TRANSFORM
"""

# NDROIStat.template.
ROISTAT = """
ResetAll                 bo        0          rw : 0;1
TSControl                mbbo      Erase/Start rw : Erase/Start;Start;Stop;Read;Erase
TSRead                   longout   3          rw
TSNumPoints              longout   2048       rw
TSCurrentPoint           longin    -          ro
TSAcquiring              bi        Done       ro : Done;Acquiring
"""

# NDCodec.template.
CODEC = """
Mode                     mbbo      Compress   rbv : Compress;Decompress
Compressor               mbbo      None       rbv : None;JPEG;Zlib;Blosc;LZ4;LZ4HDF5;BSLZ4
CompFactor_RBV           ai        -          ro
JPEGQuality              longout   85         rbv
ZlibCLevel               longout   6          rbv
BloscCompressor          mbbo      BloscLZ    rbv : BloscLZ;LZ4;LZ4HC;SNAPPY;ZLIB;ZSTD
BloscCLevel              longout   3          rbv
BloscShuffle             mbbo      None       rbv : None;Byte;Bit
BloscNumThreads          longout   1          rbv
LZ4HDF5BlockSize         longout   0          rbv
CodecStatus              mbbi      Success    ro : Success;Warning;Error
CodecError               wchar     -          ro
"""

# NDAttribute.template.
ATTRIBUTE = """
# ADCore 3.4's time-series records of NDAttribute (ophyd's AttributePlugin_V34; moved to the
# NDTimeSeries plugin later)
TSControl                mbbo      "Erase/Start" rw : Erase/Start;Start;Stop;Read
TSNumPoints              longout   2048       rw
TSCurrentPoint           longin    0          ro
TSAcquiring              bi        Done       ro : Done;Acquiring
TSRead                   bo        Done       rw : Done;Read
Reset                    bo        "Done Reset" rw : Done Reset;Reset
"""

# NDFFT.template.
FFT = """
FFTTimePerPointLink      ao        -          rw
FFTTimePerPoint          ao        -          rbv
FFTTimeAxis              wdouble:2048 -          ro
FFTFreqAxis              wdouble:2048 -          ro
FFTDirection             bo        "Time to freq." rbv : Time to freq.;Freq. to time
FFTSuppressDC            bo        Disable    rbv : Disable;Enable
FFTNumAverage            longout   1          rbv
FFTNumAveraged           longin    -          ro
FFTResetAverage          bo        Reset      rw : Done;Reset
Name                     stringout -          rw
FFTTimeSeries            wdouble:2048 -          ro
FFTReal                  wdouble:2048 -          ro
FFTImaginary             wdouble:2048 -          ro
FFTAbsValue              wdouble:2048 -          ro
"""

# NDScatter.template.
SCATTER = """
ScatterMethod            mbbo      "Round robin" rbv : Round robin
"""

# NDGather.template.
GATHER = """

"""

# NDCircularBuff.template.
CIRCBUFF = """
Capture                  busy      Done       rbv : Done;Capture
StatusMessage            stringin  -          ro
TriggerA                 stringout -          rbv
TriggerB                 stringout -          rbv
TriggerAVal              ai        -          ro
TriggerBVal              ai        -          ro
TriggerCalc              wchar     -          rbv
TriggerCalcVal           ai        -          ro
PreCount                 longout   100        rbv
PostCount                longout   100        rbv
CurrentQty_RBV           longin    -          ro
PostTriggerQty_RBV       longin    -          ro
Trigger                  busy      Trigger    rbv : Done;Trigger
PresetTriggerCount       longout   1          rbv
ActualTriggerCount_RBV   longin    -          ro
FlushOnSoftTrg           bo        OnNewImage rbv : OnNewImage;Immediately
"""

# NDBadPixel.template.
BADPIXEL = """
FileName                 wchar     -          ro
"""

# NDOverlayN.template x 8 (Over1:1: .. Over1:8:).
OVERLAY_N = """
1:Name                   stringout ROI1       rbv
1:Use                    bo        No         rbv : No;Yes
1:PositionXLink          longout   -          rw
1:PositionX              longout   -          rbv
1:PositionYLink          longout   -          rw
1:PositionY              longout   -          rbv
1:CenterXLink            longout   -          rw
1:CenterX                longout   -          rbv
1:CenterYLink            longout   -          rw
1:CenterY                longout   -          rbv
1:SizeXLink              longout   -          rw
1:SizeX                  longout   1          rbv
1:SizeYLink              longout   -          rw
1:SizeY                  longout   -          rbv
1:WidthXLink             longout   -          rw
1:WidthX                 longout   -          rbv
1:WidthYLink             longout   -          rw
1:WidthY                 longout   -          rbv
1:Shape                  mbbo      Cross      rbv : Cross;Rectangle;Ellipse;Text
1:DrawMode               mbbo      Set        rbv : Set;XOR
1:Red                    longout   1          rbv
1:Green                  longout   1          rbv
1:Blue                   longout   1          rbv
1:MaxSizeX               longin    -          ro
1:SetXHOPR               calcout   0          rw
1:MaxSizeY               longin    -          ro
1:SetYHOPR               calcout   0          rw
1:DisplayText            wchar     -          rbv
1:TimeStampFormat        stringout "%Y-%m-%d %H:%M:%S.%03f" rbv
1:Font                   mbbo      6x13       rbv : 6x13;6x13 Bold;9x15;9x15 Bold
2:Name                   stringout ROI2       rbv
2:Use                    bo        No         rbv : No;Yes
2:PositionXLink          longout   -          rw
2:PositionX              longout   -          rbv
2:PositionYLink          longout   -          rw
2:PositionY              longout   -          rbv
2:CenterXLink            longout   -          rw
2:CenterX                longout   -          rbv
2:CenterYLink            longout   -          rw
2:CenterY                longout   -          rbv
2:SizeXLink              longout   -          rw
2:SizeX                  longout   1          rbv
2:SizeYLink              longout   -          rw
2:SizeY                  longout   -          rbv
2:WidthXLink             longout   -          rw
2:WidthX                 longout   -          rbv
2:WidthYLink             longout   -          rw
2:WidthY                 longout   -          rbv
2:Shape                  mbbo      Cross      rbv : Cross;Rectangle;Ellipse;Text
2:DrawMode               mbbo      Set        rbv : Set;XOR
2:Red                    longout   1          rbv
2:Green                  longout   1          rbv
2:Blue                   longout   1          rbv
2:MaxSizeX               longin    -          ro
2:SetXHOPR               calcout   0          rw
2:MaxSizeY               longin    -          ro
2:SetYHOPR               calcout   0          rw
2:DisplayText            wchar     -          rbv
2:TimeStampFormat        stringout "%Y-%m-%d %H:%M:%S.%03f" rbv
2:Font                   mbbo      6x13       rbv : 6x13;6x13 Bold;9x15;9x15 Bold
3:Name                   stringout ROI3       rbv
3:Use                    bo        No         rbv : No;Yes
3:PositionXLink          longout   -          rw
3:PositionX              longout   -          rbv
3:PositionYLink          longout   -          rw
3:PositionY              longout   -          rbv
3:CenterXLink            longout   -          rw
3:CenterX                longout   -          rbv
3:CenterYLink            longout   -          rw
3:CenterY                longout   -          rbv
3:SizeXLink              longout   -          rw
3:SizeX                  longout   1          rbv
3:SizeYLink              longout   -          rw
3:SizeY                  longout   -          rbv
3:WidthXLink             longout   -          rw
3:WidthX                 longout   -          rbv
3:WidthYLink             longout   -          rw
3:WidthY                 longout   -          rbv
3:Shape                  mbbo      Cross      rbv : Cross;Rectangle;Ellipse;Text
3:DrawMode               mbbo      Set        rbv : Set;XOR
3:Red                    longout   1          rbv
3:Green                  longout   1          rbv
3:Blue                   longout   1          rbv
3:MaxSizeX               longin    -          ro
3:SetXHOPR               calcout   0          rw
3:MaxSizeY               longin    -          ro
3:SetYHOPR               calcout   0          rw
3:DisplayText            wchar     -          rbv
3:TimeStampFormat        stringout "%Y-%m-%d %H:%M:%S.%03f" rbv
3:Font                   mbbo      6x13       rbv : 6x13;6x13 Bold;9x15;9x15 Bold
4:Name                   stringout ROI4       rbv
4:Use                    bo        No         rbv : No;Yes
4:PositionXLink          longout   -          rw
4:PositionX              longout   -          rbv
4:PositionYLink          longout   -          rw
4:PositionY              longout   -          rbv
4:CenterXLink            longout   -          rw
4:CenterX                longout   -          rbv
4:CenterYLink            longout   -          rw
4:CenterY                longout   -          rbv
4:SizeXLink              longout   -          rw
4:SizeX                  longout   1          rbv
4:SizeYLink              longout   -          rw
4:SizeY                  longout   -          rbv
4:WidthXLink             longout   -          rw
4:WidthX                 longout   -          rbv
4:WidthYLink             longout   -          rw
4:WidthY                 longout   -          rbv
4:Shape                  mbbo      Cross      rbv : Cross;Rectangle;Ellipse;Text
4:DrawMode               mbbo      Set        rbv : Set;XOR
4:Red                    longout   1          rbv
4:Green                  longout   1          rbv
4:Blue                   longout   1          rbv
4:MaxSizeX               longin    -          ro
4:SetXHOPR               calcout   0          rw
4:MaxSizeY               longin    -          ro
4:SetYHOPR               calcout   0          rw
4:DisplayText            wchar     -          rbv
4:TimeStampFormat        stringout "%Y-%m-%d %H:%M:%S.%03f" rbv
4:Font                   mbbo      6x13       rbv : 6x13;6x13 Bold;9x15;9x15 Bold
5:Name                   stringout Cursor1    rbv
5:Use                    bo        No         rbv : No;Yes
5:PositionXLink          longout   -          rw
5:PositionX              longout   -          rbv
5:PositionYLink          longout   -          rw
5:PositionY              longout   -          rbv
5:CenterXLink            longout   -          rw
5:CenterX                longout   -          rbv
5:CenterYLink            longout   -          rw
5:CenterY                longout   -          rbv
5:SizeXLink              longout   -          rw
5:SizeX                  longout   1          rbv
5:SizeYLink              longout   -          rw
5:SizeY                  longout   -          rbv
5:WidthXLink             longout   -          rw
5:WidthX                 longout   -          rbv
5:WidthYLink             longout   -          rw
5:WidthY                 longout   -          rbv
5:Shape                  mbbo      Cross      rbv : Cross;Rectangle;Ellipse;Text
5:DrawMode               mbbo      Set        rbv : Set;XOR
5:Red                    longout   1          rbv
5:Green                  longout   1          rbv
5:Blue                   longout   1          rbv
5:MaxSizeX               longin    -          ro
5:SetXHOPR               calcout   0          rw
5:MaxSizeY               longin    -          ro
5:SetYHOPR               calcout   0          rw
5:DisplayText            wchar     -          rbv
5:TimeStampFormat        stringout "%Y-%m-%d %H:%M:%S.%03f" rbv
5:Font                   mbbo      6x13       rbv : 6x13;6x13 Bold;9x15;9x15 Bold
6:Name                   stringout Cursor2    rbv
6:Use                    bo        No         rbv : No;Yes
6:PositionXLink          longout   -          rw
6:PositionX              longout   -          rbv
6:PositionYLink          longout   -          rw
6:PositionY              longout   -          rbv
6:CenterXLink            longout   -          rw
6:CenterX                longout   -          rbv
6:CenterYLink            longout   -          rw
6:CenterY                longout   -          rbv
6:SizeXLink              longout   -          rw
6:SizeX                  longout   1          rbv
6:SizeYLink              longout   -          rw
6:SizeY                  longout   -          rbv
6:WidthXLink             longout   -          rw
6:WidthX                 longout   -          rbv
6:WidthYLink             longout   -          rw
6:WidthY                 longout   -          rbv
6:Shape                  mbbo      Cross      rbv : Cross;Rectangle;Ellipse;Text
6:DrawMode               mbbo      Set        rbv : Set;XOR
6:Red                    longout   1          rbv
6:Green                  longout   1          rbv
6:Blue                   longout   1          rbv
6:MaxSizeX               longin    -          ro
6:SetXHOPR               calcout   0          rw
6:MaxSizeY               longin    -          ro
6:SetYHOPR               calcout   0          rw
6:DisplayText            wchar     -          rbv
6:TimeStampFormat        stringout "%Y-%m-%d %H:%M:%S.%03f" rbv
6:Font                   mbbo      6x13       rbv : 6x13;6x13 Bold;9x15;9x15 Bold
7:Name                   stringout Box1       rbv
7:Use                    bo        No         rbv : No;Yes
7:PositionXLink          longout   -          rw
7:PositionX              longout   -          rbv
7:PositionYLink          longout   -          rw
7:PositionY              longout   -          rbv
7:CenterXLink            longout   -          rw
7:CenterX                longout   -          rbv
7:CenterYLink            longout   -          rw
7:CenterY                longout   -          rbv
7:SizeXLink              longout   -          rw
7:SizeX                  longout   1          rbv
7:SizeYLink              longout   -          rw
7:SizeY                  longout   -          rbv
7:WidthXLink             longout   -          rw
7:WidthX                 longout   -          rbv
7:WidthYLink             longout   -          rw
7:WidthY                 longout   -          rbv
7:Shape                  mbbo      Cross      rbv : Cross;Rectangle;Ellipse;Text
7:DrawMode               mbbo      Set        rbv : Set;XOR
7:Red                    longout   1          rbv
7:Green                  longout   1          rbv
7:Blue                   longout   1          rbv
7:MaxSizeX               longin    -          ro
7:SetXHOPR               calcout   0          rw
7:MaxSizeY               longin    -          ro
7:SetYHOPR               calcout   0          rw
7:DisplayText            wchar     -          rbv
7:TimeStampFormat        stringout "%Y-%m-%d %H:%M:%S.%03f" rbv
7:Font                   mbbo      6x13       rbv : 6x13;6x13 Bold;9x15;9x15 Bold
8:Name                   stringout Box2       rbv
8:Use                    bo        No         rbv : No;Yes
8:PositionXLink          longout   -          rw
8:PositionX              longout   -          rbv
8:PositionYLink          longout   -          rw
8:PositionY              longout   -          rbv
8:CenterXLink            longout   -          rw
8:CenterX                longout   -          rbv
8:CenterYLink            longout   -          rw
8:CenterY                longout   -          rbv
8:SizeXLink              longout   -          rw
8:SizeX                  longout   1          rbv
8:SizeYLink              longout   -          rw
8:SizeY                  longout   -          rbv
8:WidthXLink             longout   -          rw
8:WidthX                 longout   -          rbv
8:WidthYLink             longout   -          rw
8:WidthY                 longout   -          rbv
8:Shape                  mbbo      Cross      rbv : Cross;Rectangle;Ellipse;Text
8:DrawMode               mbbo      Set        rbv : Set;XOR
8:Red                    longout   1          rbv
8:Green                  longout   1          rbv
8:Blue                   longout   1          rbv
8:MaxSizeX               longin    -          ro
8:SetXHOPR               calcout   0          rw
8:MaxSizeY               longin    -          ro
8:SetYHOPR               calcout   0          rw
8:DisplayText            wchar     -          rbv
8:TimeStampFormat        stringout "%Y-%m-%d %H:%M:%S.%03f" rbv
8:Font                   mbbo      6x13       rbv : 6x13;6x13 Bold;9x15;9x15 Bold
"""

# NDROIStatN.template x 8 (ROIStat1:1: .. ROIStat1:8:).
ROISTAT_N = """
1:Use                    bo        No         rbv : No;Yes
1:Name                   stringout -          rw
1:Reset                  bo        0          rw : 0;1
1:BgdWidth               longout   0          rbv
1:MinX                   longout   0          rbv
1:MinY                   longout   0          rbv
1:SizeX                  longout   1          rbv
1:SizeY                  longout   1          rbv
1:MaxSizeX_RBV           longin    -          ro
1:MaxSizeY_RBV           longin    -          ro
1:MinValue_RBV           ai        -          ro
1:MaxValue_RBV           ai        -          ro
1:MeanValue_RBV          ai        -          ro
1:Total_RBV              ai        -          ro
1:Net_RBV                ai        -          ro
1:TSMinValue             wdouble:2048 -          ro
1:TSMaxValue             wdouble:2048 -          ro
1:TSMeanValue            wdouble:2048 -          ro
1:TSTotal                wdouble:2048 -          ro
1:TSNet                  wdouble:2048 -          ro
1:TSTimestamp            wdouble:2048 -          ro
2:Use                    bo        No         rbv : No;Yes
2:Name                   stringout -          rw
2:Reset                  bo        0          rw : 0;1
2:BgdWidth               longout   0          rbv
2:MinX                   longout   0          rbv
2:MinY                   longout   0          rbv
2:SizeX                  longout   1          rbv
2:SizeY                  longout   1          rbv
2:MaxSizeX_RBV           longin    -          ro
2:MaxSizeY_RBV           longin    -          ro
2:MinValue_RBV           ai        -          ro
2:MaxValue_RBV           ai        -          ro
2:MeanValue_RBV          ai        -          ro
2:Total_RBV              ai        -          ro
2:Net_RBV                ai        -          ro
2:TSMinValue             wdouble:2048 -          ro
2:TSMaxValue             wdouble:2048 -          ro
2:TSMeanValue            wdouble:2048 -          ro
2:TSTotal                wdouble:2048 -          ro
2:TSNet                  wdouble:2048 -          ro
2:TSTimestamp            wdouble:2048 -          ro
3:Use                    bo        No         rbv : No;Yes
3:Name                   stringout -          rw
3:Reset                  bo        0          rw : 0;1
3:BgdWidth               longout   0          rbv
3:MinX                   longout   0          rbv
3:MinY                   longout   0          rbv
3:SizeX                  longout   1          rbv
3:SizeY                  longout   1          rbv
3:MaxSizeX_RBV           longin    -          ro
3:MaxSizeY_RBV           longin    -          ro
3:MinValue_RBV           ai        -          ro
3:MaxValue_RBV           ai        -          ro
3:MeanValue_RBV          ai        -          ro
3:Total_RBV              ai        -          ro
3:Net_RBV                ai        -          ro
3:TSMinValue             wdouble:2048 -          ro
3:TSMaxValue             wdouble:2048 -          ro
3:TSMeanValue            wdouble:2048 -          ro
3:TSTotal                wdouble:2048 -          ro
3:TSNet                  wdouble:2048 -          ro
3:TSTimestamp            wdouble:2048 -          ro
4:Use                    bo        No         rbv : No;Yes
4:Name                   stringout -          rw
4:Reset                  bo        0          rw : 0;1
4:BgdWidth               longout   0          rbv
4:MinX                   longout   0          rbv
4:MinY                   longout   0          rbv
4:SizeX                  longout   1          rbv
4:SizeY                  longout   1          rbv
4:MaxSizeX_RBV           longin    -          ro
4:MaxSizeY_RBV           longin    -          ro
4:MinValue_RBV           ai        -          ro
4:MaxValue_RBV           ai        -          ro
4:MeanValue_RBV          ai        -          ro
4:Total_RBV              ai        -          ro
4:Net_RBV                ai        -          ro
4:TSMinValue             wdouble:2048 -          ro
4:TSMaxValue             wdouble:2048 -          ro
4:TSMeanValue            wdouble:2048 -          ro
4:TSTotal                wdouble:2048 -          ro
4:TSNet                  wdouble:2048 -          ro
4:TSTimestamp            wdouble:2048 -          ro
5:Use                    bo        No         rbv : No;Yes
5:Name                   stringout -          rw
5:Reset                  bo        0          rw : 0;1
5:BgdWidth               longout   0          rbv
5:MinX                   longout   0          rbv
5:MinY                   longout   0          rbv
5:SizeX                  longout   1          rbv
5:SizeY                  longout   1          rbv
5:MaxSizeX_RBV           longin    -          ro
5:MaxSizeY_RBV           longin    -          ro
5:MinValue_RBV           ai        -          ro
5:MaxValue_RBV           ai        -          ro
5:MeanValue_RBV          ai        -          ro
5:Total_RBV              ai        -          ro
5:Net_RBV                ai        -          ro
5:TSMinValue             wdouble:2048 -          ro
5:TSMaxValue             wdouble:2048 -          ro
5:TSMeanValue            wdouble:2048 -          ro
5:TSTotal                wdouble:2048 -          ro
5:TSNet                  wdouble:2048 -          ro
5:TSTimestamp            wdouble:2048 -          ro
6:Use                    bo        No         rbv : No;Yes
6:Name                   stringout -          rw
6:Reset                  bo        0          rw : 0;1
6:BgdWidth               longout   0          rbv
6:MinX                   longout   0          rbv
6:MinY                   longout   0          rbv
6:SizeX                  longout   1          rbv
6:SizeY                  longout   1          rbv
6:MaxSizeX_RBV           longin    -          ro
6:MaxSizeY_RBV           longin    -          ro
6:MinValue_RBV           ai        -          ro
6:MaxValue_RBV           ai        -          ro
6:MeanValue_RBV          ai        -          ro
6:Total_RBV              ai        -          ro
6:Net_RBV                ai        -          ro
6:TSMinValue             wdouble:2048 -          ro
6:TSMaxValue             wdouble:2048 -          ro
6:TSMeanValue            wdouble:2048 -          ro
6:TSTotal                wdouble:2048 -          ro
6:TSNet                  wdouble:2048 -          ro
6:TSTimestamp            wdouble:2048 -          ro
7:Use                    bo        No         rbv : No;Yes
7:Name                   stringout -          rw
7:Reset                  bo        0          rw : 0;1
7:BgdWidth               longout   0          rbv
7:MinX                   longout   0          rbv
7:MinY                   longout   0          rbv
7:SizeX                  longout   1          rbv
7:SizeY                  longout   1          rbv
7:MaxSizeX_RBV           longin    -          ro
7:MaxSizeY_RBV           longin    -          ro
7:MinValue_RBV           ai        -          ro
7:MaxValue_RBV           ai        -          ro
7:MeanValue_RBV          ai        -          ro
7:Total_RBV              ai        -          ro
7:Net_RBV                ai        -          ro
7:TSMinValue             wdouble:2048 -          ro
7:TSMaxValue             wdouble:2048 -          ro
7:TSMeanValue            wdouble:2048 -          ro
7:TSTotal                wdouble:2048 -          ro
7:TSNet                  wdouble:2048 -          ro
7:TSTimestamp            wdouble:2048 -          ro
8:Use                    bo        No         rbv : No;Yes
8:Name                   stringout -          rw
8:Reset                  bo        0          rw : 0;1
8:BgdWidth               longout   0          rbv
8:MinX                   longout   0          rbv
8:MinY                   longout   0          rbv
8:SizeX                  longout   1          rbv
8:SizeY                  longout   1          rbv
8:MaxSizeX_RBV           longin    -          ro
8:MaxSizeY_RBV           longin    -          ro
8:MinValue_RBV           ai        -          ro
8:MaxValue_RBV           ai        -          ro
8:MeanValue_RBV          ai        -          ro
8:Total_RBV              ai        -          ro
8:Net_RBV                ai        -          ro
8:TSMinValue             wdouble:2048 -          ro
8:TSMaxValue             wdouble:2048 -          ro
8:TSMeanValue            wdouble:2048 -          ro
8:TSTotal                wdouble:2048 -          ro
8:TSNet                  wdouble:2048 -          ro
8:TSTimestamp            wdouble:2048 -          ro
"""

# NDAttributeN.template x 8 (Attr1:1: .. Attr1:8:).
ATTRIBUTE_N = """
1:Value_RBV              ai        -          ro
1:ValueSum_RBV           ai        -          ro
1:AttrName               wchar     -          rbv
1:TSArrayValue           wdouble:2048 -          ro
2:Value_RBV              ai        -          ro
2:ValueSum_RBV           ai        -          ro
2:AttrName               wchar     -          rbv
2:TSArrayValue           wdouble:2048 -          ro
3:Value_RBV              ai        -          ro
3:ValueSum_RBV           ai        -          ro
3:AttrName               wchar     -          rbv
3:TSArrayValue           wdouble:2048 -          ro
4:Value_RBV              ai        -          ro
4:ValueSum_RBV           ai        -          ro
4:AttrName               wchar     -          rbv
4:TSArrayValue           wdouble:2048 -          ro
5:Value_RBV              ai        -          ro
5:ValueSum_RBV           ai        -          ro
5:AttrName               wchar     -          rbv
5:TSArrayValue           wdouble:2048 -          ro
6:Value_RBV              ai        -          ro
6:ValueSum_RBV           ai        -          ro
6:AttrName               wchar     -          rbv
6:TSArrayValue           wdouble:2048 -          ro
7:Value_RBV              ai        -          ro
7:ValueSum_RBV           ai        -          ro
7:AttrName               wchar     -          rbv
7:TSArrayValue           wdouble:2048 -          ro
8:Value_RBV              ai        -          ro
8:ValueSum_RBV           ai        -          ro
8:AttrName               wchar     -          rbv
8:TSArrayValue           wdouble:2048 -          ro
"""

# NDGatherN.template x 8 (N=1..8).
GATHER_N = """
NDArrayPort_1            stringout -          rbv
NDArrayAddress_1         longout   0          rbv
NDArrayPort_2            stringout -          rbv
NDArrayAddress_2         longout   0          rbv
NDArrayPort_3            stringout -          rbv
NDArrayAddress_3         longout   0          rbv
NDArrayPort_4            stringout -          rbv
NDArrayAddress_4         longout   0          rbv
NDArrayPort_5            stringout -          rbv
NDArrayAddress_5         longout   0          rbv
NDArrayPort_6            stringout -          rbv
NDArrayAddress_6         longout   0          rbv
NDArrayPort_7            stringout -          rbv
NDArrayAddress_7         longout   0          rbv
NDArrayPort_8            stringout -          rbv
NDArrayAddress_8         longout   0          rbv
"""


# File name templates as a saved (autosave) commonPlugins IOC starts with.
TIFF_DEFAULTS = """
FileTemplate             wchar     %s%s_%3.3d.tif rbv
"""
JPEG_DEFAULTS = """
FileTemplate             wchar     %s%s_%3.3d.jpg rbv
"""
NETCDF_DEFAULTS = """
FileTemplate             wchar     %s%s_%3.3d.nc rbv
"""
NEXUS_DEFAULTS = """
FileTemplate             wchar     %s%s_%3.3d.h5 rbv
"""
MAGICK_DEFAULTS = """
FileTemplate             wchar     %s%s_%3.3d.tif rbv
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

#: The commonPlugins.cmd plugins (suffix as there: netCDF1: is lower-case in ADCore's file).
_B = (NDARRAY_BASE, PLUGIN_BASE)
_F = (*_B, NDFILE)
COMMON_GROUPS = {
    "TIFF1:": ((*_F, TIFF, TIFF_DEFAULTS, DISABLED), "NDFileTIFF", "FileTIFF1", "SIM1"),
    "JPEG1:": ((*_F, JPEG, JPEG_DEFAULTS, DISABLED), "NDFileJPEG", "FileJPEG1", "SIM1"),
    "netCDF1:": ((*_F, NETCDF, NETCDF_DEFAULTS, DISABLED), "NDFileNetCDF", "FileNetCDF1", "SIM1"),
    "Nexus1:": ((*_F, NEXUS, NEXUS_DEFAULTS, DISABLED), "NDFileNexus", "FileNexus1", "SIM1"),
    "Magick1:": ((*_F, MAGICK, MAGICK_DEFAULTS, DISABLED), "NDFileMagick", "FileMagick1", "SIM1"),
    "Proc1:": ((*_B, PROCESS, DISABLED), "NDPluginProcess", "PROC1", "SIM1"),
    "Trans1:": ((*_B, TRANSFORM, DISABLED), "NDPluginTransform", "TRANS1", "SIM1"),
    "Over1:": ((*_B, OVERLAY, OVERLAY_N, DISABLED), "NDPluginOverlay", "OVER1", "SIM1"),
    "CC1:": ((*_B, COLORCONV, DISABLED), "NDPluginColorConvert", "CC1", "SIM1"),
    "CB1:": ((*_B, CIRCBUFF, DISABLED), "NDPluginCircularBuff", "CB1", "SIM1"),
    "ROIStat1:": ((*_B, ROISTAT, ROISTAT_N, DISABLED), "NDPluginROIStat", "ROISTAT1", "SIM1"),
    "Attr1:": ((*_B, ATTRIBUTE, ATTRIBUTE_N, DISABLED), "NDPluginAttribute", "ATTR1", "SIM1"),
    "FFT1:": ((*_B, FFT, DISABLED), "NDPluginFFT", "FFT1", "SIM1"),
    "Codec1:": ((*_B, CODEC, DISABLED), "NDPluginCodec", "CODEC1", "SIM1"),
    "Scatter1:": ((*_B, SCATTER, DISABLED), "NDPluginScatter", "SCATTER1", "SIM1"),
    "Gather1:": ((*_B, GATHER, GATHER_N, DISABLED), "NDPluginGather", "GATHER1", "SIM1"),
    "BadPix1:": ((*_B, BADPIXEL, DISABLED), "NDPluginBadPixel", "BADPIX1", "SIM1"),
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
            out.append(
                PVSpec(rbv_name, rb_type, default, enums, True, setpoint=name, length=length)
            )
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
