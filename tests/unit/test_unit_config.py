"""Configuration loading: one default file, overlays merged over it, the version checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from adscan.core.config import (
    DEFAULT_ICONFIG,
    ICONFIG_VERSION,
    REPO,
    ConfigError,
    load_iconfig,
    merge,
)


def test_default_file_is_versioned_and_complete():
    raw = yaml.safe_load(DEFAULT_ICONFIG.read_text())
    assert raw["version"] == ICONFIG_VERSION
    cfg = load_iconfig(DEFAULT_ICONFIG)
    assert cfg["epics"]["ca_server_port"] == 5064
    assert cfg["ioc"]["motors_prefix"] == "gp:" and cfg["ioc"]["ad_prefix"] == "kad:"
    assert cfg["queueserver"]["startup_dir"] == str(REPO / "profile_collection")


def test_an_overlay_holds_only_what_differs(tmp_path, monkeypatch):
    monkeypatch.delenv("ADSCAN_DATA_DIR", raising=False)
    path = tmp_path / "site.yml"
    path.write_text("detector:\n  frames_per_point: 7\ninstrument:\n  data_dir: /tmp/x\n")
    cfg = load_iconfig(path)
    assert cfg["detector"]["frames_per_point"] == 7
    assert cfg["detector"]["acquire_time"] == 0.01  # from the default file
    assert cfg["spec"]["directory"] == "/tmp/x/spec"  # {data_dir} expanded after the merge
    assert cfg["_path"] == str(path)


def test_another_version_is_refused(tmp_path):
    path = tmp_path / "old.yml"
    path.write_text(f"version: {ICONFIG_VERSION + 1}\n")
    with pytest.raises(ConfigError, match="version"):
        load_iconfig(path)


def test_data_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ADSCAN_DATA_DIR", str(tmp_path / "elsewhere"))
    cfg = load_iconfig(DEFAULT_ICONFIG)
    assert cfg["instrument"]["data_dir"] == str(tmp_path / "elsewhere")
    assert Path(cfg["detector"]["write_path"]) == tmp_path / "elsewhere" / "images"


def test_merge_is_deep_and_copies():
    base = {"a": {"b": 1, "c": 2}, "d": 3}
    out = merge(base, {"a": {"c": 5}})
    assert out == {"a": {"b": 1, "c": 5}, "d": 3}
    assert base["a"]["c"] == 2


def leaves(tree: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_the_compose_iconfig_is_an_overlay_of_the_default():
    """deploy/iconfig.compose.yml holds only what differs in the containers (no copy)."""
    from adscan.core.config import load_raw_iconfig

    compose = REPO / "deploy" / "iconfig.compose.yml"
    default = leaves(yaml.safe_load(DEFAULT_ICONFIG.read_text()))
    overlay = leaves(yaml.safe_load(compose.read_text()))
    same = sorted(k for k, v in overlay.items() if k != "version" and default.get(k) == v)
    assert not same, f"keys repeated with the default value: {same}"
    assert set(overlay) <= set(default), "the overlay names keys the default file lacks"
    merged = load_raw_iconfig(compose)
    assert set(leaves(merged)) == set(default)
    assert merged["ioc"]["simulate"] is False and merged["epics"]["ca_server_port"] == 5064
