"""ophyd's pyepics layer: a channel is not cleared while its metadata task still reads it.

ophyd's pyepics shim reads a new PV's metadata on its utility-dispatcher thread
(``get_all_metadata_callback``).  ``release_pvs`` (a signal's ``destroy``) clears the CA
channel without waiting for that task, so libca can be asked for the access rights of a
channel it has just freed: the process segfaults.  ophyd's own ``ad_prefix`` fixture
destroys a signal right after it connects; under load in CI its metadata task was still
in ``ca.read_access`` (``Fatal Python error: Segmentation fault`` in
``test_areadetector::test_basic[pyepics]``; upstream: bluesky/ophyd#937, open).

The race is in the client library and its test fixture, not in the IOC being tested, so
the peer plugin closes it: release waits (at most ``RELEASE_WAIT`` s) for the PV's running
metadata task, and a task that had not started when its PV was released does nothing.
"""

from __future__ import annotations

import threading
from types import ModuleType

#: Seconds ``release_pvs`` waits for a PV's running metadata task (ophyd's own is 10 s).
RELEASE_WAIT = 15.0


def patch(shim: ModuleType, namespaces: tuple = ()) -> None:
    """Make ``shim.release_pvs`` wait for the PVs' running metadata tasks.

    ``shim`` is ``ophyd._pyepics_shim`` (or a fake with ``PyepicsShimPV``, ``release_pvs``
    and ``_dispatcher``); ``namespaces`` are control-layer namespaces already made from it
    (``ophyd.cl``), whose ``release_pvs`` is replaced too.
    """
    if getattr(shim, "_adscan_release_patched", False):
        return
    lock = threading.Condition()
    running: dict[int, int] = {}  # id(pv) -> its metadata tasks in progress
    release = shim.release_pvs

    def get_all_metadata_callback(self, callback, *, timeout):
        def get_metadata_thread(pvname):
            with lock:
                if self.chid is None:  # released before this task ran
                    return
                running[id(self)] = running.get(id(self), 0) + 1
            try:
                md = self.get_all_metadata_blocking(timeout=timeout)
            finally:
                with lock:
                    running[id(self)] -= 1
                    if not running[id(self)]:
                        del running[id(self)]
                    lock.notify_all()
            callback(pvname, md)

        shim._dispatcher.schedule_utility_task(get_metadata_thread, pvname=self.pvname)

    def release_pvs(*pvs):
        with lock:
            lock.wait_for(lambda: not any(id(pv) in running for pv in pvs), RELEASE_WAIT)
            release(*pvs)  # under the lock: no task of these PVs starts meanwhile

    shim.PyepicsShimPV.get_all_metadata_callback = get_all_metadata_callback
    shim.release_pvs = release_pvs
    for ns in namespaces:
        if getattr(ns, "release_pvs", None) is release:
            ns.release_pvs = release_pvs
    shim._adscan_release_patched = True
