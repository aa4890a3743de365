"""Operator tasks (invoke), in their namespaces; each lives in ``pipeline/cli/tasks/``.

A task parses its options, calls one library function, and reports. Errors raised on
purpose (``FortnightError``) are caught once, at each task's boundary, and shown as one
line with a documented exit code; set ``FORTNIGHT_DEBUG=1`` for the traceback. Heavy
modules (Pelican, fedora-messaging, the AWS adapters) load only inside the tasks that use
them, so ``invoke --list``, ``status`` and ``verify`` start fast.
"""

from __future__ import annotations

from pipeline.cli.namespace import ns

__all__ = ["ns"]
