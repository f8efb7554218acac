"""Fixtures of the unit layer: an in-process RunEngine and fake devices (``tests/fakes.py``)."""

from __future__ import annotations

import pytest


@pytest.fixture
def cfg(tmp_path):
    """The default configuration with its data directory in ``tmp_path``."""
    from adscan.core.config import load_iconfig

    cfg = load_iconfig()
    data = tmp_path / "data"
    cfg["instrument"]["data_dir"] = str(data)
    cfg["spec"]["directory"] = str(data / "spec")
    cfg["catalog"]["directory"] = str(data / "catalog")
    cfg["metadata"]["file"] = str(data / "metadata.json")
    return cfg


@pytest.fixture
def fakes(cfg, tmp_path):
    """``m1``, ``m2``, ``simdet`` in the device registry and the plans configured for them;
    the registry and the plan settings are put back afterwards."""
    import fakes as fake_devices

    from adscan.devices import REGISTRY
    from adscan.plans import configure_plans, spec

    images = tmp_path / "images"
    images.mkdir()
    devices = fake_devices.make_fakes(images)
    saved_registry, saved_settings = dict(REGISTRY), spec.SETTINGS
    REGISTRY.clear()
    REGISTRY.update(devices)
    configure_plans(cfg, {"motors": {"m1": {}, "m2": {}}, "detectors": {"simdet": {}}})
    yield devices
    REGISTRY.clear()
    REGISTRY.update(saved_registry)
    spec.SETTINGS = saved_settings
    for plan in spec.PLANS.values():
        spec._annotate(plan)


@pytest.fixture
def RE():
    """An in-process RunEngine whose documents are kept in ``RE.docs``."""
    from bluesky import RunEngine

    engine = RunEngine({})
    engine.docs = []
    engine.subscribe(lambda name, doc: engine.docs.append((name, doc)))
    return engine
