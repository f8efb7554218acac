"""NDFile plugins: HDF5 (HDF1, NDFileHDF5), TIFF and JPEG, and the other file formats.

Shared NDFile behaviour (ADCore ``NDPluginFile``):

* FilePath: ADCore ``checkPath`` after every write (one trailing ``/`` kept in
  FilePath_RBV, FilePathExists_RBV from ``stat`` of the path without it, so ``/`` is *No*;
  an empty FilePath is stored as is and leaves FilePathExists_RBV unchanged);
  CreateDirectory as ADCore (see ``h5file``).
* Names: ``FullFileName_RBV = epicsSnprintf(FileTemplate, FilePath, FileName, FileNumber)``;
  FileNumber incremented after each file when AutoIncrement=Yes, before Capture_RBV
  reports capturing (ophyd names the file ``FileNumber_RBV - 1``).
* FileWriteMode Single (AutoSave: a file per array), Capture (buffer NumCapture arrays,
  written at the end), Stream (written as they arrive); Capture=0, NumCapture reached and
  an aborted acquisition close the file, complete and valid.

HDF5 keeps one file open for a whole capture (direct chunk writes, see ``h5file``); the
file is created at Capture=1 but the image dataset at the first frame, with the
Compression then in force (the how-to's stage_sigs set ``compression`` after ``capture``).
TIFF (tifffile) and JPEG (Pillow) write one real file per array.  netCDF, Nexus and Magick
are modelled: their records and counters behave, WriteMessage says no file is written.
"""

from __future__ import annotations

import logging
import threading
import time

from . import h5file
from .frames import NDArr
from .plugins import Plugin
from .records import KEEP_RBV

logger = logging.getLogger("adscan.iocs.filewriter")

#: Seconds between HDF5 flushes while frames stream in (also flushed at each acquisition's end).
FLUSH_INTERVAL = 1.0


class FilePlugin(Plugin):
    """NDPluginFile: one array -> one file (TIFF/JPEG); subclasses keep files open."""

    extension_writer = None  # callable(path, data) writing one array, or None (modelled)
    ACTIVE_PUTS = Plugin.ACTIVE_PUTS | {"FilePath", "Capture", "WriteFile", "ReadFile"}

    def __init__(self, *args, **kwargs):
        self.lock = threading.RLock()
        self.capturing = False
        self.buffer: list[NDArr] = []
        self.last: NDArr | None = None
        super().__init__(*args, **kwargs)

    def message(self, text: str, error: bool = False) -> None:
        self.g.set("WriteMessage", text[:255])
        self.g.set("WriteStatus", "Write error" if error else "Write OK")
        if error:
            logger.warning("%s: %s", self.port, text)

    # -- puts (dispatcher thread)
    def on_put(self, name, value):
        value = super().on_put(name, value)
        g = self.g
        if name == "FilePath":
            self.check_path(value)
            return KEEP_RBV  # FilePath_RBV set by check_path
        if name == "FileNumber":
            return value
        if name == "Capture":
            with self.lock:
                if value == "Capture":
                    return "Capture" if self.start_capture() else "Done"
                self.stop_capture()
            return "Done"
        if name == "WriteFile":
            if value == "Write":
                g.set("WriteFile_RBV", "Write")
                with self.lock:
                    self.write_file_now()
            return "Done"
        if name == "ReadFile":
            self.message("ReadFile is not supported by the simulator", error=True)
            return "Done"
        return value

    def check_path(self, path: str) -> bool | None:
        if not path:
            # writeOctet stored the empty string (FilePath_RBV is the same parameter);
            # checkPath returns early: FilePathExists unchanged
            self.g.set("FilePath_RBV", "")
            return None
        depth = int(self.g.get("CreateDirectory"))
        if depth:
            h5file.create_directories(path, depth)
        rbv, exists = h5file.check_path(path)
        self.g.set("FilePath_RBV", rbv)
        self.g.set("FilePathExists_RBV", "Yes" if exists else "No")
        if not exists:
            self.message(f"Path {rbv} does not exist", error=True)
        return exists

    def next_name(self) -> str:
        g = self.g
        return h5file.format_name(
            g.get("FileTemplate"),
            g.get("FilePath_RBV"),
            g.get("FileName"),
            int(g.get("FileNumber_RBV")),
        )

    def claim_name(self) -> str | None:
        """Check the path, name the next file, increment FileNumber (AutoIncrement)."""
        if not self.check_path(self.g.get("FilePath")):
            return None
        fname = self.next_name()
        self.g.set("FullFileName_RBV", fname)
        if self.g.get("AutoIncrement") == "Yes":
            self.g.set_pair("FileNumber", int(self.g.get("FileNumber_RBV")) + 1)
        return fname

    # -- capture
    def start_capture(self) -> bool:
        if self.capturing:
            return True
        if self.g.get("FileWriteMode") == "Single":
            self.message("Capture is not used in Single mode", error=True)
            return False
        self.g.set("NumCaptured_RBV", 0)
        self.buffer = []
        if not self.open_stream():
            return False
        self.capturing = True
        self.g.set("Capture_RBV", "Capture")
        return True

    def open_stream(self) -> bool:
        return True

    def stop_capture(self, reason: str = "") -> None:
        if not self.capturing:
            self.g.set("Capture_RBV", "Done")
            return
        self.capturing = False
        if (
            self.g.get("FileWriteMode") == "Capture"
            and self.buffer
            and self.g.get("AutoSave") == "Yes"
        ):
            self.write_file_now()
        self.close_stream()
        self.buffer = []
        self.g.set("Capture", "Done")
        self.g.set("Capture_RBV", "Done")
        if reason:
            self.message(reason)

    def close_stream(self) -> None:
        pass

    def write_file_now(self) -> None:
        mode = self.g.get("FileWriteMode")
        frames = self.buffer if mode == "Capture" else ([self.last] if self.last else [])
        if not frames:
            self.message("No arrays to write", error=True)
        else:
            self.write_arrays(frames)
            self.buffer = []
        self.g.set("WriteFile", "Done")
        self.g.set("WriteFile_RBV", "Done")

    def write_arrays(self, frames: list[NDArr]) -> None:
        for arr in frames:
            self.write_one(arr)

    def write_one(self, arr: NDArr) -> None:
        fname = self.claim_name()
        if fname is None:
            return
        if self.extension_writer is None:
            self.message(f"{self.plugin_type}: file format modelled, {fname} not written")
            return
        try:
            type(self).extension_writer(fname, arr.data)
            self.message(f"Wrote {fname}")
        except Exception as ex:  # noqa: BLE001 - reported like ADCore does
            self.message(f"Error writing {fname}: {ex}", error=True)

    def stream(self, arr: NDArr) -> None:
        self.write_one(arr)

    # -- arrays (plugin thread)
    def process(self, arr: NDArr) -> NDArr | None:
        with self.lock:
            self.last = arr
            mode = self.g.get("FileWriteMode")
            if mode == "Single":
                if self.g.get("AutoSave") == "Yes":
                    self.write_arrays([arr])
                return None
            if not self.capturing:
                return None
            n = int(self.g.get("NumCaptured_RBV"))
            target = int(self.g.get("NumCapture"))
            if mode == "Capture":
                self.buffer.append(arr)
            else:
                try:
                    self.stream(arr)
                except Exception as ex:  # noqa: BLE001 - reported, capture goes on
                    self.message(f"Error writing: {h5file.errno_first(ex)}", error=True)
                    return None
            self.g.set("NumCaptured_RBV", n + 1)
            if target > 0 and n + 1 >= target:
                self.stop_capture()
        return None

    def abort(self, reason: str) -> None:
        with self.lock:
            if self.capturing:
                self.stop_capture(reason)

    def shutdown(self) -> None:
        with self.lock:
            self.capturing = False
            self.close_stream()


def _write_tiff(path: str, data) -> None:
    import tifffile

    tifffile.imwrite(path, data)


def _write_jpeg(path: str, data) -> None:
    import numpy as np
    from PIL import Image

    a = data if data.dtype == np.uint8 else np.clip(data, 0, 255).astype(np.uint8)
    Image.fromarray(a).save(path, format="JPEG")


class TIFFPlugin(FilePlugin):
    extension_writer = staticmethod(_write_tiff)


class JPEGPlugin(FilePlugin):
    extension_writer = staticmethod(_write_jpeg)


class HDF5Plugin(FilePlugin):
    """NDFileHDF5: one file per capture (or per array in Single mode)."""

    def __init__(self, *args, **kwargs):
        self.writer: h5file.H5Writer | None = None
        super().__init__(*args, **kwargs)

    def open_stream(self) -> bool:
        if self.g.get("FileWriteMode") != "Stream" or self.g.get("LazyOpen") == "Yes":
            return True
        if self.last is None:
            self.message("ERROR: must collect an array to get dimensions first", error=True)
            return False
        return self.open_file(self.last)

    def open_file(self, arr: NDArr) -> bool:
        fname = self.claim_name()
        if fname is None:
            return False
        try:
            self.writer = h5file.H5Writer(
                fname,
                arr.data.shape,
                arr.data.dtype,
                self.g.get("StoreAttr") == "Yes",
                self.g.get("StorePerform") == "Yes",
            )
        except Exception as ex:  # noqa: BLE001 - reported like ADCore does
            self.writer = None
            self.message(f"Error opening file {fname}: {ex}", error=True)
            return False
        self.message(f"Opened {fname}")
        return True

    def write_frame(self, arr: NDArr) -> None:
        w = self.writer
        if w.ds is None:
            comp_name = self.g.get("Compression")
            comp, note = h5file.compression_kwargs(
                comp_name,
                int(self.g.get("ZLevel")),
                (
                    self.g.get("BloscCompressor"),
                    int(self.g.get("BloscLevel")),
                    self.g.get("BloscShuffle"),
                ),
            )
            w.create_data(comp_name, comp)
            if note:
                self.message(note)
        flush = (
            arr.end_of_acquisition
            or not self.ioc.acquiring
            or time.monotonic() - w.t_flush >= FLUSH_INTERVAL
        )
        w.append(arr, flush)

    def stream(self, arr: NDArr) -> None:
        if self.writer is None and not self.open_file(arr):
            raise OSError("no file open")
        if self.writer.shape != arr.data.shape or self.writer.dtype != arr.data.dtype:
            raise ValueError("array dimensions or data type changed during capture")
        self.write_frame(arr)

    def write_arrays(self, frames: list[NDArr]) -> None:
        if self.writer is None and not self.open_file(frames[0]):
            return
        try:
            for f in frames:
                self.write_frame(f)
        finally:
            self.close_stream()

    def close_stream(self) -> None:
        w, self.writer = self.writer, None
        if w is None:
            return
        try:
            if w.ds is None:  # no frame arrived: still leave a complete layout
                w.create_data()
            w.close()
        except Exception as ex:  # noqa: BLE001 - e.g. disk full: reported
            self.message(f"Error closing {w.path}: {ex}", error=True)
        self.g.set("RunTime", time.time() - w.t_open)


FILE_PLUGINS = {"NDFileHDF5": HDF5Plugin, "NDFileTIFF": TIFFPlugin, "NDFileJPEG": JPEGPlugin}


def file_plugin_class(plugin_type: str):
    """The behaviour class of a file plugin type (modelled formats: :class:`FilePlugin`)."""
    return FILE_PLUGINS.get(plugin_type, FilePlugin)
