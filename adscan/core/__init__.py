"""adscan's infrastructure: configuration, start-up steps, the document schema, preprocessors.

Importing any of these modules does no work (no file read, no socket opened); the start-up
module :mod:`adscan.instrument` composes the steps of :mod:`adscan.core.startup`.
"""
