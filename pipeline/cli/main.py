"""The ``fortnight`` console script: the tasks of ``tasks.py`` from any folder.

``fortnight status`` is ``invoke status`` run in the code checkout; it acts on the log
named by ``--repo``, else ``$FORTNIGHT_REPO``, else the current folder.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from invoke.program import Program

from pipeline.cli.namespace import ns


def program() -> Program:
    """invoke's ``Program`` with Fortnight's namespace (no tasks.py search)."""
    try:
        release = version("fortnight")
    except PackageNotFoundError:  # run from a checkout that was never installed
        release = "unknown"
    return Program(namespace=ns, name="Fortnight", binary="fortnight", version=release)


def main() -> None:
    """Run the command line (the ``fortnight`` entry point)."""
    program().run()


if __name__ == "__main__":
    main()
