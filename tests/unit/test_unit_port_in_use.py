"""A port the RE Manager needs, held by a process that is not an RE Manager: refused,
naming the holder (the 3 a.m. question is "who?")."""

from __future__ import annotations

import os
import socket

import pytest

from adscan.services import re_manager
from adscan.services.processes import ServiceError


def test_busy_info_port_is_refused_naming_its_holder(cfg, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        cfg["queueserver"]["zmq_info_addr"] = f"tcp://127.0.0.1:{port}"
        cfg["queueserver"]["zmq_control_addr"] = "tcp://127.0.0.1:1"  # nothing answers
        monkeypatch.setattr(re_manager, "redis_ping", lambda addr: True)
        monkeypatch.setattr(re_manager, "spawn", pytest.fail)  # nothing may start
        with pytest.raises(ServiceError) as err:
            re_manager.ensure_re_manager(cfg, timeout=1)
    msg = str(err.value)
    assert f"port {port} (zmq_info_addr) is in use by pid {os.getpid()}" in msg, msg
