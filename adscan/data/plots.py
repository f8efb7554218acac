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

    from adscan.data import plot_run
    paths = plot_run(cfg, -1, out="plots")      # list of PNG paths

Command line (wired as ``adscan plot <uid|-N|scan_id> [--out DIR]``): :func:`main_plot`.

The run is read once through its documents (no dask arrays, fast for long runs); only the
one frame that is shown is read from the HDF5 file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from adscan.data.runs import RunData, open_run, read_frame, read_run

FIGSIZE = (6.4, 4.8)  # inches
DPI = 100  # -> 640 x 480 pixel PNG files


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
    ax.set_title(
        f"{data.label}\n{key}: point 0, frame 0 ({image.shape[0]}x{image.shape[1]})", fontsize=10
    )
    return _save(fig, out / _name(data, "frame"), dpi)


def plot_motors(data: RunData, out: Path, *, figsize=FIGSIZE, dpi=DPI) -> Path:
    """(b) Motor readbacks (lines with markers) and setpoints (dashed) v. point number."""
    fig = _figure(figsize, dpi, layout="constrained")
    ax = fig.add_subplot()
    n = np.arange(data.points)
    for m in data.motors:
        if m in data.columns:
            (line,) = ax.plot(n, data.columns[m], "o-", label=f"{m} (readback)")
            sp = data.columns.get(f"{m}_user_setpoint")
            if sp is not None:
                ax.plot(n, sp, "x--", color=line.get_color(), alpha=0.6, label=f"{m}_user_setpoint")
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


def plot_stats_vs_motor(
    data: RunData, out: Path, *, motor: str | None = None, figsize=FIGSIZE, dpi=DPI
) -> Path:
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


def grid_map(data: RunData, key: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    for axis, ext, n in (
        (y, extents[0] if extents else None, n1),
        (x, extents[1] if len(extents) > 1 else None, n2),
    ):
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
        ax.plot(
            data.columns[m2],
            data.columns[m1],
            "w.-",
            lw=1,
            ms=4,
            alpha=0.7,
            label="path (readbacks)",
        )
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xlabel(f"{m2} (inner)")
    ax.set_ylabel(f"{m1} (outer)")
    ax.set_title(
        f"{data.label}\n{key} on the {values.shape[0]}x{values.shape[1]} grid", fontsize=10
    )
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


def plot_run(
    cfg: dict | None, uid_or_index: Any = -1, out: str | Path = ".", *, figsize=FIGSIZE, dpi=DPI
) -> list[Path]:
    """Open the run (``-N``, scan_id or uid) and write its plots into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    return plot_data(read_run(open_run(cfg, uid_or_index)), out, figsize=figsize, dpi=dpi)


# ---------------------------------------------------------------------------------------------
# command line


def main_plot(argv: list[str] | None = None) -> int:
    """``adscan plot <uid|-N|scan_id> [--out DIR]``: write the run's PNG plots, print paths."""
    parser = argparse.ArgumentParser(
        prog="adscan plot", description="PNG plots of a run (chosen by its plan)."
    )
    parser.add_argument(
        "run",
        nargs="?",
        default="-1",
        help="run uid (or its start), -N (N-th most recent) or scan_id (default -1)",
    )
    parser.add_argument(
        "--out", default=None, help="directory for the PNG files (default <data_dir>/plots)"
    )
    parser.add_argument("--iconfig", default=None, help="iconfig.yml (default $ADSCAN_ICONFIG)")
    args = parser.parse_args(argv)
    from adscan.core.config import load_iconfig

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
