"""Catalog settings shared by the writer (:mod:`adscan.callbacks.catalog_writer`) and the
reader (:mod:`adscan.data.catalog`): which back end, where, and a MongoDB URI that fails fast."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

MONGO_TIMEOUT_MS = 5000  # serverSelectionTimeoutMS added to mongo URIs without one


def resolve_cfg(cfg: dict | None) -> dict:
    """``cfg``, or the configuration in force when None."""
    if cfg is None:
        from adscan.core.config import load_iconfig

        cfg = load_iconfig()
    return cfg


def catalog_cfg(cfg: dict | None) -> dict:
    """The ``catalog:`` section."""
    return dict(resolve_cfg(cfg).get("catalog") or {})


def mongo_uri_with_timeout(uri: str, timeout_ms: int = MONGO_TIMEOUT_MS) -> str:
    """Return *uri* with ``serverSelectionTimeoutMS`` set (unless it already has one)."""
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(k.lower() == "serverselectiontimeoutms" for k, _ in query):
        return uri
    query.append(("serverSelectionTimeoutMS", str(int(timeout_ms))))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def tiled_enabled(cfg: dict | None = None) -> bool:
    """True when runs go to the Tiled data service (``catalog.backend: tiled``)."""
    return str(catalog_cfg(cfg).get("backend") or "msgpack").lower() == "tiled"


def catalog_kind(cfg: dict | None = None) -> str:
    """Where runs are read from: ``"tiled"`` (``catalog.backend: tiled``), else ``"mongo"``
    when ``catalog.mongo_uri`` is set, else ``"msgpack"`` (the embedded fallback)."""
    if tiled_enabled(cfg):
        return "tiled"
    return "mongo" if catalog_cfg(cfg).get("mongo_uri") else "msgpack"


def catalog_directory(cfg: dict | None = None) -> Path:
    """Directory of the embedded catalog (``catalog.directory``)."""
    directory = catalog_cfg(cfg).get("directory")
    if not directory:
        raise ValueError("iconfig: catalog.directory is not set")
    return Path(directory).expanduser()


def redact_uri(uri: str) -> str:
    """``uri`` with its password (if any) replaced by ``***``, for messages."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return uri
