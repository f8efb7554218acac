"""Read adscan's YAML settings (``startup/iconfig.yml``, ``startup/devices.yml``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
STARTUP_DIR = REPO / "startup"
PROFILE_DIR = REPO / "profile_collection"
DEFAULT_ICONFIG = STARTUP_DIR / "iconfig.yml"
DEFAULT_DEVICES = STARTUP_DIR / "devices.yml"


def _expand(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names) if "{" in value else value
    if isinstance(value, dict):
        return {k: _expand(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, names) for v in value]
    return value


def iconfig_path() -> Path:
    """The instrument configuration in force: ``$ADSCAN_ICONFIG`` or the repository's."""
    return Path(os.environ.get("ADSCAN_ICONFIG") or DEFAULT_ICONFIG)


def load_iconfig(path: str | Path | None = None) -> dict[str, Any]:
    """Load the instrument configuration with ``{data_dir}`` and ``{repo}`` expanded."""
    path = Path(path) if path else iconfig_path()
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    names = {"repo": str(REPO)}
    data_dir = os.environ.get("ADSCAN_DATA_DIR") or cfg["instrument"]["data_dir"]
    data_dir = str(Path(data_dir.format(**names)).expanduser().resolve())
    cfg["instrument"]["data_dir"] = data_dir
    names["data_dir"] = data_dir
    cfg = _expand(cfg, names)
    cfg["_path"] = str(path)
    return cfg


def load_devices(path: str | Path | None = None) -> dict[str, Any]:
    """Load the device list (``devices.yml`` beside the instrument configuration)."""
    if path is None:
        beside = iconfig_path().parent / "devices.yml"
        path = beside if beside.exists() else DEFAULT_DEVICES
    with open(path) as f:
        return yaml.safe_load(f) or {}
