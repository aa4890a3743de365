"""Fortnight: ship an operating-system image every two weeks, unattended.

The package is layered, lowest first: ``errors``, ``models``, ``signing``,
``store``, ``config``; then the clients (``ingest``, ``hashing``); then the
stages (``compose``). A lower layer never imports a higher one.
"""

__version__ = "0.1.0"
