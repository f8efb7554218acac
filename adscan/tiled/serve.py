"""The Tiled server process itself: ``tiled serve catalog``'s steps through tiled's Python API.

The same catalog, storage, single-user API key and uvicorn server as ``tiled serve catalog``
(whose arguments this takes), plus what that command has no option for: adscan's HDF5
adapter (:mod:`adscan.tiled.slab`, tiled's ``adapters_by_mimetype``).  Run by
``python -m adscan.tiled.server`` (:func:`adscan.tiled.server.main`), which reads the key.
"""

from __future__ import annotations

import argparse
import urllib.parse


def parse(args: list[str]) -> argparse.Namespace:
    """``<database> [--init] [-w STORAGE]... [-r DIR]... [--host H] [--port P]``."""
    p = argparse.ArgumentParser(prog="tiled serve catalog (adscan)")
    p.add_argument("database")
    p.add_argument("--init", action="store_true")
    p.add_argument("-w", "--write", action="append", default=[])
    p.add_argument("-r", "--read", action="append", default=[])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    return p.parse_args(args)


def serve(args: list[str], api_key: str) -> None:
    """Serve the catalog until stopped (uvicorn, one process, as ``tiled serve catalog``)."""
    import hdf5plugin  # noqa: F401 - LZ4 frames decoded server-side
    import uvicorn
    from tiled.catalog import from_uri
    from tiled.config import Authentication
    from tiled.server.app import build_app

    from adscan.tiled import slab

    opts = parse(args)
    database = opts.database
    if urllib.parse.urlparse(database).scheme in ("", "file"):  # as `tiled serve catalog`
        database = f"sqlite:///{urllib.parse.urlparse(database).path}"
    tree = from_uri(
        database,
        writable_storage=opts.write,
        readable_storage=opts.read,
        init_if_not_exists=opts.init,
        adapters_by_mimetype=slab.adapters_by_mimetype(),
    )
    app = build_app(tree, Authentication(single_user_api_key=api_key))
    uvicorn.run(app, host=opts.host, port=opts.port)
