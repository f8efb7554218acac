"""Tiled as adscan's data service.

``server`` (the Tiled server process: SQLite + DuckDB embedded, or PostgreSQL; ``serve`` and
``slab`` are that process and its HDF5 adapter),
``postgres`` (a private PostgreSQL cluster on 127.0.0.1), ``writer`` (worker side:
bluesky-tiled-plugins' ``TiledWriter``), ``reader`` (read side: ``open_catalog()``).
See docs/data-service.md.
"""
