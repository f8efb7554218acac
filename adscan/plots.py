"""PNG plots of an adscan run (matplotlib, Agg backend, no display needed).

Chosen by the run's plan (``adscan_plan``, else ``plan_name`` and ``motors`` of the start
document):

=============  ================================================================
count          first frame; stats total & max v. point number
scan (1 mot.)  first frame; stats total & max v. motor position
scan2          first frame; motor readbacks (and setpoints) v. point number
grid_scan      first frame; motor readbacks v. point number (the snake shows);
               map of stats total on the grid (``shape`` / ``snaking`` metadata)
=============  ================================================================

Python::

    from adscan.plots import plot_run
    paths = plot_run(cfg, -1, out="plots")      # list of PNG paths

Command line (wired as ``adscan plot <uid|-N|scan_id> [--out DIR]``): :func:`main_plot`.

The run is read once through its documents (no dask arrays, fast for long runs); only the
one frame that is shown is read from the HDF5 file.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import event_model
import numpy as np

FIGSIZE = (6.4, 4.8)  # inches
DPI = 100  # -> 640 x 480 pixel PNG files

IMAGE_DATASET = "/entry/data/data"


# ---------------------------------------------------------------------------------------------
# reading a run (shared with adscan.verify)


@dataclass
class RunData:
    """One run's documents, flattened: start, stop, primary columns, images' datum."""

    start: dict
    stop: dict | None
    descriptor: dict | None  # the (first) primary descriptor
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # scalar primary fields
    datum_ids: dict[str, list[str]] = field(default_factory=dict)  # external field -> ids
    resources: dict[str, dict] = field(default_factory=dict)  # uid -> resource
    datums: dict[str, dict] = field(default_factory=dict)  # datum_id -> datum
    seq_nums: list[int] = field(default_factory=list)

    @property
    def uid(self) -> str:
        return self.start["uid"]

    @property
    def scan_id(self) -> Any:
        return self.start.get("scan_id")

    @property
    def points(self) -> int:
        return len(self.seq_nums)

    @property
    def motors(self) -> list[str]:
        return list(self.start.get("motors") or [])

    @property
    def image_keys(self) -> list[str]:
        """External fields of the primary stream with an image shape (e.g. ``simdet_image``)."""
        keys = (self.descriptor or {}).get("data_keys", {})
        return [k for k, dk in keys.items()
                if dk.get("external") and len(dk.get("shape") or []) >= 2]

    @property
    def kind(self) -> str:
        return run_kind(self.start)

    @property
    def label(self) -> str:
        plan = self.start.get("adscan_plan") or self.start.get("plan_name", "?")
        return f"scan {self.scan_id} ({plan}) {self.uid[:8]}"

    def detector_prefix(self, image_key: str | None = None) -> str:
        """``simdet`` for ``simdet_image``: the prefix of the detector's stats columns."""
        key = image_key or (self.image_keys[0] if self.image_keys else "simdet_image")
        return key[: -len("_image")] if key.endswith("_image") else key

    def stats_key(self, what: str, image_key: str | None = None) -> str:
        """Column name of a Stats1 value: ``total``, ``max_value`` or ``unique_id``."""
        return f"{self.detector_prefix(image_key)}_stats1_{what}"

    def resource_file(self, resource: dict) -> Path:
        root = resource.get("root") or ""
        rpath = resource["resource_path"]
        if not root or root.endswith("/"):
            return Path(root + rpath)
        return Path(root) / rpath

    def frame_location(self, image_key: str, point: int) -> tuple[Path, int, int]:
        """(HDF5 file, first frame index, frames per point) of one point's images."""
        datum = self.datums[self.datum_ids[image_key][point]]
        resource = self.resources[datum["resource"]]
        fpp = int((resource.get("resource_kwargs") or {}).get("frame_per_point", 1))
        pn = int((datum.get("datum_kwargs") or {}).get("point_number", 0))
        return self.resource_file(resource), pn * fpp, fpp


def run_kind(start: dict) -> str:
    """``count``, ``scan``, ``scan2``, ``grid`` (or ``other``) for a start document."""
    plan = start.get("adscan_plan") or start.get("plan_name") or ""
    plan = plan.removeprefix("adscan_")
    motors = start.get("motors") or []
    if plan in ("count",) or (not motors and plan != "grid_scan"):
        return "count"
    if plan in ("grid_scan", "rel_grid_scan") or start.get("plan_pattern") == "outer_product":
        return "grid"
    if plan in ("scan", "scan2", "rel_scan", "list_scan", "inner_product_scan"):
        return "scan" if len(motors) == 1 else "scan2"
    return "scan" if len(motors) == 1 else "other"


def open_run(cfg: dict | None, uid_or_index: Any):
    """A databroker v2 run: ``-N`` (N-th most recent), a scan_id, or a (partial) uid."""
    from adscan.catalog import open_catalog

    cat = open_catalog(cfg)
    key = uid_or_index
    if isinstance(key, str) and key.lstrip("-").isdigit():
        key = int(key)
    return cat[key]


def read_run(run) -> RunData:
    """Collect a run's documents (unfilled) into a :class:`RunData`."""
    data = RunData(start=dict(run.metadata["start"]), stop=None, descriptor=None)
    primary: set[str] = set()
    rows: dict[str, list] = {}
    externals: list[str] = []
    scalar: list[str] = []
    documents = run.documents(fill="no") if hasattr(run, "documents") else run.canonical(
        fill="no")
    for name, doc in documents:
        if name == "descriptor":
            if doc.get("name") == "primary":
                primary.add(doc["uid"])
                if data.descriptor is None:
                    data.descriptor = doc
                    for key, dk in doc["data_keys"].items():
                        if dk.get("external"):
                            externals.append(key)
                        elif not dk.get("shape") and dk.get("dtype") in (
                                "number", "integer", "boolean"):
                            scalar.append(key)
                    rows = {k: [] for k in scalar + externals}
        elif name == "resource":
            data.resources[doc["uid"]] = doc
        elif name in ("datum", "datum_page"):
            datums = [doc] if name == "datum" else event_model.unpack_datum_page(doc)
            for d in datums:
                data.datums[d["datum_id"]] = d
        elif name in ("event", "event_page"):
            events = [doc] if name == "event" else event_model.unpack_event_page(doc)
            for ev in events:
                if ev["descriptor"] not in primary:
                    continue
                data.seq_nums.append(ev["seq_num"])
                for k in rows:
                    rows[k].append(ev["data"].get(k))
        elif name == "stop":
            data.stop = doc
    for k in scalar:
        data.columns[k] = np.array([np.nan if v is None else v for v in rows[k]], dtype=float)
    for k in externals:
        data.datum_ids[k] = list(rows[k])
    return data


def read_frame(data: RunData, point: int = 0, frame: int = 0,
               image_key: str | None = None) -> np.ndarray:
    """One image frame of one point, read from the run's HDF5 file."""
    import h5py
    import hdf5plugin  # noqa: F401 - LZ4 filter

    key = image_key or data.image_keys[0]
    path, first, fpp = data.frame_location(key, point)
    if not 0 <= frame < fpp:
        raise IndexError(f"frame {frame} out of range (frames per point: {fpp})")
    with h5py.File(path, "r", locking=False) as f:
        return np.asarray(f[IMAGE_DATASET][first + frame])


# ---------------------------------------------------------------------------------------------
# figures


def _figure(figsize=FIGSIZE, dpi=DPI, **kwargs):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=dpi, **kwargs)


def _save(fig, path: Path, dpi: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")  # no bbox_inches: the size stays as asked
    return path


def _name(data: RunData, what: str) -> str:
    return f"scan{data.scan_id}_{data.uid[:8]}_{what}.png"


def plot_first_frame(data: RunData, out: Path, *, figsize=FIGSIZE, dpi=DPI) -> Path:
    """(a) The first frame of the first point, with a colorbar."""
    key = data.image_keys[0]
    image = read_frame(data, 0, 0, key)
    fig = _figure(figsize, dpi, layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(image, origin="upper", cmap="viridis", interpolation="nearest")
    fig.colorbar(im, ax=ax, label="counts")
    ax.set_xlabel("column")
    ax.set_ylabel("row")
    ax.set_title(f"{data.label}\n{key}: point 0, frame 0 ({image.shape[0]}x{image.shape[1]})",
                 fontsize=10)
    return _save(fig, out / _name(data, "frame"), dpi)


def plot_motors(data: RunData, out: Path, *, figsize=FIGSIZE, dpi=DPI) -> Path:
    """(b) Motor readbacks (lines with markers) and setpoints (dashed) v. point number."""
    fig = _figure(figsize, dpi, layout="constrained")
    ax = fig.add_subplot()
    n = np.arange(data.points)
    for m in data.motors:
        if m in data.columns:
            line, = ax.plot(n, data.columns[m], "o-", label=f"{m} (readback)")
            sp = data.columns.get(f"{m}_user_setpoint")
            if sp is not None:
                ax.plot(n, sp, "x--", color=line.get_color(), alpha=0.6,
                        label=f"{m}_user_setpoint")
    ax.set_xlabel("point number")
    ax.set_ylabel("position")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{data.label}: motors", fontsize=10)
    return _save(fig, out / _name(data, "motors"), dpi)


def _stats_axes(fig, data: RunData, x: np.ndarray, xlabel: str):
    total = data.columns.get(data.stats_key("total"))
    vmax = data.columns.get(data.stats_key("max_value"))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    if total is not None:
        ax1.plot(x, total, "o-", color="C0")
    ax1.set_ylabel(data.stats_key("total").split("_stats1_")[0] + " total")
    if vmax is not None:
        ax2.plot(x, vmax, "s-", color="C3")
    ax2.set_ylabel("max value")
    ax2.set_xlabel(xlabel)
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
    return ax1, ax2


def plot_stats_vs_motor(data: RunData, out: Path, *, motor: str | None = None,
                        figsize=FIGSIZE, dpi=DPI) -> Path:
    """(c) Stats total and max v. the motor's readback (1-motor scan)."""
    motor = motor or data.motors[0]
    fig = _figure(figsize, dpi, layout="constrained")
    ax1, _ = _stats_axes(fig, data, data.columns[motor], motor)
    ax1.set_title(f"{data.label}: stats v. {motor}", fontsize=10)
    return _save(fig, out / _name(data, "stats"), dpi)


def plot_stats_vs_point(data: RunData, out: Path, *, figsize=FIGSIZE, dpi=DPI) -> Path:
    """Stats total and max v. point number (count)."""
    fig = _figure(figsize, dpi, layout="constrained")
    ax1, _ = _stats_axes(fig, data, np.arange(data.points), "point number")
    ax1.set_title(f"{data.label}: stats", fontsize=10)
    return _save(fig, out / _name(data, "stats"), dpi)


def grid_map(data: RunData, key: str | None = None
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(outer positions, inner positions, values[outer, inner]) of a grid scan.

    Uses the start document's ``shape`` and ``snaking``; cells not measured (an aborted run)
    are NaN.  Positions are the setpoints (readbacks when there are none).
    """
    key = key or data.stats_key("total")
    shape = tuple(int(s) for s in data.start.get("shape") or ())
    if len(shape) != 2:
        raise ValueError(f"not a 2-D grid scan: shape={data.start.get('shape')!r}")
    n1, n2 = shape
    snake = list(data.start.get("snaking") or [False, False])
    m1, m2 = data.motors[:2]

    def pos(m):
        return data.columns.get(f"{m}_user_setpoint", data.columns.get(m))

    p1, p2 = pos(m1), pos(m2)
    values = np.full(shape, np.nan)
    y = np.full(n1, np.nan)
    x = np.full(n2, np.nan)
    for k in range(min(data.points, n1 * n2)):
        i, j = divmod(k, n2)
        if len(snake) > 1 and snake[1] and i % 2 == 1:
            j = n2 - 1 - j
        values[i, j] = data.columns[key][k]
        y[i] = p1[k]
        if np.isnan(x[j]):
            x[j] = p2[k]
    extents = data.start.get("extents") or []
    for axis, ext, n in ((y, extents[0] if extents else None, n1),
                         (x, extents[1] if len(extents) > 1 else None, n2)):
        if np.isnan(axis).any():  # unmeasured rows/columns: the planned positions
            planned = np.linspace(ext[0], ext[1], n) if ext else np.arange(n, dtype=float)
            axis[np.isnan(axis)] = planned[np.isnan(axis)]
    return y, x, values


def plot_grid_map(data: RunData, out: Path, *, figsize=FIGSIZE, dpi=DPI) -> Path:
    """(d) Stats total on the grid of the two motors (pcolormesh, cell centres = positions)."""
    key = data.stats_key("total")
    y, x, values = grid_map(data, key)
    m1, m2 = data.motors[:2]
    fig = _figure(figsize, dpi, layout="constrained")
    ax = fig.add_subplot()
    mesh = ax.pcolormesh(x, y, values, shading="nearest", cmap="viridis")
    fig.colorbar(mesh, ax=ax, label=key)
    if m1 in data.columns and m2 in data.columns:  # the visiting order (snake) on top
        ax.plot(data.columns[m2], data.columns[m1], "w.-", lw=1, ms=4, alpha=0.7,
                label="path (readbacks)")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel(f"{m2} (inner)")
    ax.set_ylabel(f"{m1} (outer)")
    ax.set_title(f"{data.label}\n{key} on the {values.shape[0]}x{values.shape[1]} grid",
                 fontsize=10)
    return _save(fig, out / _name(data, "map"), dpi)


def plot_data(data: RunData, out: str | Path, *, figsize=FIGSIZE, dpi=DPI) -> list[Path]:
    """The plots for this kind of run (see the module docstring); their paths."""
    out = Path(out)
    kw = {"figsize": figsize, "dpi": dpi}
    paths = []
    if data.image_keys and data.points:
        paths.append(plot_first_frame(data, out, **kw))
    if not data.points:
        return paths
    kind = data.kind
    if kind == "count":
        paths.append(plot_stats_vs_point(data, out, **kw))
    elif kind == "scan":
        paths.append(plot_stats_vs_motor(data, out, **kw))
    elif kind in ("scan2", "other"):
        paths.append(plot_motors(data, out, **kw))
    elif kind == "grid":
        paths.append(plot_motors(data, out, **kw))
        paths.append(plot_grid_map(data, out, **kw))
    return paths


def plot_run(cfg: dict | None, uid_or_index: Any = -1, out: str | Path = ".", *,
             figsize=FIGSIZE, dpi=DPI) -> list[Path]:
    """Open the run (``-N``, scan_id or uid) and write its plots into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    return plot_data(read_run(open_run(cfg, uid_or_index)), out, figsize=figsize, dpi=dpi)


# ---------------------------------------------------------------------------------------------
# command line


def main_plot(argv: list[str] | None = None) -> int:
    """``adscan plot <uid|-N|scan_id> [--out DIR]``: write the run's PNG plots, print paths."""
    parser = argparse.ArgumentParser(
        prog="adscan plot", description="PNG plots of a run (chosen by its plan).")
    parser.add_argument("run", nargs="?", default="-1",
                        help="run uid (or its start), -N (N-th most recent) or scan_id "
                             "(default -1)")
    parser.add_argument("--out", default=None,
                        help="directory for the PNG files (default <data_dir>/plots)")
    parser.add_argument("--iconfig", default=None, help="iconfig.yml (default $ADSCAN_ICONFIG)")
    args = parser.parse_args(argv)
    from adscan.config import load_iconfig

    cfg = load_iconfig(args.iconfig)
    out = Path(args.out) if args.out else Path(cfg["instrument"]["data_dir"]) / "plots"
    try:
        paths = plot_run(cfg, args.run, out)
    except KeyError as exc:
        print(f"adscan plot: no run {args.run!r} in the catalog ({exc})", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_plot())
