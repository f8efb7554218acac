"""Read adscan's YAML settings (``startup/iconfig.yml``, ``startup/devices.yml``).

``startup/iconfig.yml`` is the one source of every default.  Any other configuration file
(``$ADSCAN_ICONFIG``, ``deploy/iconfig.compose.yml``, a test's private copy) is an overlay:
it holds only the keys that differ and is merged over the default file at load.  Both carry
``version: ICONFIG_VERSION``; a file of another version is refused at load.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
STARTUP_DIR = REPO / "startup"
PROFILE_DIR = REPO / "profile_collection"
DEFAULT_ICONFIG = STARTUP_DIR / "iconfig.yml"
DEFAULT_DEVICES = STARTUP_DIR / "devices.yml"

#: The layout of iconfig.yml this code reads (its ``version:`` key).
ICONFIG_VERSION = 1


class ConfigError(ValueError):
    """An instrument configuration file cannot be used (the message names file and key)."""


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


def merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``overlay``, dictionaries merged key by key (a copy)."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_yaml(path: Path) -> dict[str, Any]:
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: an instrument configuration is a mapping of sections")
    version = raw.get("version", ICONFIG_VERSION)
    if version != ICONFIG_VERSION:
        raise ConfigError(
            f"{path}: version {version!r}, this adscan reads version "
            f"{ICONFIG_VERSION} (see {DEFAULT_ICONFIG})"
        )
    return raw


def load_raw_iconfig(path: str | Path | None = None) -> dict[str, Any]:
    """The default configuration with the file ``path`` merged over it (nothing expanded)."""
    path = Path(path) if path else iconfig_path()
    raw = _read_yaml(DEFAULT_ICONFIG)
    if path.resolve() != DEFAULT_ICONFIG.resolve():
        raw = merge(raw, _read_yaml(path))
    raw["version"] = ICONFIG_VERSION
    return raw


def load_iconfig(path: str | Path | None = None) -> dict[str, Any]:
    """Load the instrument configuration with ``{data_dir}`` and ``{repo}`` expanded."""
    path = Path(path) if path else iconfig_path()
    cfg = load_raw_iconfig(path)
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


def write_private_iconfig(
    directory: str | Path,
    *,
    tag: str,
    ca_port: int,
    data_dir: str | Path | None = None,
    simulate: bool = True,
    **sections: dict[str, Any],
) -> Path:
    """Write a copy of the instrument configuration for a private service (tests, benchmarks).

    Its own data directory, PV prefixes (``{tag}gp:``, ``{tag}kad:``), CA port, Redis and
    ZMQ ports (free loopback ports), Redis key prefix and plan list; ``sections`` update
    whole sections (e.g. ``detector={"acquire_time": 0.002}``).  ``devices.yml`` is copied
    beside it.  Returns the path of the new ``iconfig.yml``.
    """
    import shutil

    from adscan.ports import free_ports

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with open(DEFAULT_ICONFIG) as f:
        cfg = yaml.safe_load(f)
    cfg["instrument"]["data_dir"] = str(data_dir or directory / "data")
    cfg["epics"]["ca_server_port"] = ca_port
    cfg["ioc"].update(simulate=simulate, motors_prefix=f"{tag}gp:", ad_prefix=f"{tag}kad:")
    control, info, redis, tiled = free_ports(4)
    cfg.setdefault("tiled", {})["port"] = tiled
    # the suites test the msgpack fallback; tests of the Tiled path pass catalog={"backend": ...}
    cfg["catalog"]["backend"] = "msgpack"
    qs = cfg["queueserver"]
    qs["zmq_control_addr"] = f"tcp://127.0.0.1:{control}"
    qs["zmq_info_addr"] = f"tcp://127.0.0.1:{info}"
    qs["redis_addr"] = f"127.0.0.1:{redis}"
    qs["redis_name_prefix"] = f"adscan_{tag}"
    qs["existing_plans_devices"] = str(directory / "existing_plans_and_devices.yaml")
    if "live" in cfg:  # the 0MQ proxy's ports, private too
        proxy_in, proxy_out = free_ports(2)
        cfg["live"].update(proxy_in=f"127.0.0.1:{proxy_in}", proxy_out=f"127.0.0.1:{proxy_out}")
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path = directory / "iconfig.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    shutil.copy(DEFAULT_DEVICES, directory / "devices.yml")
    return path
