"""Fortnight: ship an operating-system image every two weeks, unattended.

The package is layered. A module imports only from its own layer or a lower one,
never from a higher one, so two layers never import each other
(``tests/test_layers.py`` reads the list below and enforces it, lazy imports included).

Layers, lowest first:
    errors fsutil retry
    core
    log
    adapters
    stages
    checks
    site
    demo
    cli

- ``errors``, ``fsutil``, ``retry``: the error tree, atomic file writes and the one retry
  policy; they import nothing of ours.
- ``core``: pure data and decisions, no I/O: manifest and product-config models, state
  derivation, the release decision, tracker reconciliation, page models, checksum files.
- ``log``: the manifest log: git, signing and keys, the store (a facade over its layout,
  reader, writer and key handling), the verification cache.
- ``adapters``: one module per outside system: compose sources (productmd), image hashing,
  Bugzilla, AWS; the message bus (fedora-messaging) is a package of its own, ``adapters.bus``.
- ``stages``: what tasks run: record a compose, run or import tests, verdicts, tracker sync,
  release cut and revoke, cloud discovery, the message bus listener and announcer.
- ``checks``: the built-in image checks, run as ``python -m pipeline.checks NAME``.
- ``site``: the Pelican plugin, rendering, incremental builds, serving, publishing.
- ``demo``: sample composes, the day-by-day simulation, the demo.
- ``cli``: the invoke tasks (``cli/tasks/``, one module per concern; ``tasks.py`` names
  their namespaces) and what they share: the error boundary, option rules, set-up, reports
  and console output.
"""

__version__ = "0.1.0"
