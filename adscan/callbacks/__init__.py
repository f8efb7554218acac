"""The write side, run in the RunEngine's process (the queue-server worker): callbacks that
store every document in the catalog (:mod:`~adscan.callbacks.catalog_writer`) and the SPEC
file (:mod:`~adscan.callbacks.specfile`), and report progress
(:mod:`~adscan.callbacks.progress`).  The read side is :mod:`adscan.data`."""
