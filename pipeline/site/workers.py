"""Building products: one product's job (load, verify, derive; then write), and the forked
worker processes that run several at once."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import threading
from typing import TYPE_CHECKING, Any

from pipeline import errors
from pipeline.core.config import ProductConfig
from pipeline.core.models.common import Trust
from pipeline.core.state import derive
from pipeline.errors import FortnightError, SiteError, VerificationError
from pipeline.site.incremental import iso_key
from pipeline.site.output import BuildReport, Output, ProductRecord
from pipeline.site.render import build_product

if TYPE_CHECKING:
    from pipeline.site.plugin import FortnightGenerator


class ProductJob:
    """One product's build: :meth:`prepare` (load, verify, derive), then :meth:`write`."""

    def __init__(
        self,
        gen: FortnightGenerator,
        product: ProductConfig,
        tree: str,
        old: ProductRecord,
        trust: Trust,
        all_there: bool = False,
    ) -> None:
        self.gen = gen
        self.product = product
        self.tree = tree
        self.old = old
        self.trust = trust
        #: Whether every file of ``old`` was still in the output when the build began.
        self.all_there = all_there

    def prepare(self) -> None:
        """Load and verify the product's manifests (fail closed) and derive its state.

        Raises:
            VerificationError: a manifest of the product failed verification.
        """
        gen = self.gen
        verified = gen.log.load_verified(self.trust, products=[self.product.name])
        everything = [v.manifest for v in verified]
        #: Manifest name -> git blob id, for the files git vouches for.
        self.blobs = {v.name: v.blob for v in verified if v.blob is not None}
        self.newest = max((iso_key(m.created) for m in everything), default="")
        self.manifests = [m for m in everything if m.created <= gen.now]
        self.state = derive(self.manifests, self.product, gen.now)
        # The mirror's links come from the blob store (filled from the work tree here, as
        # needed: not the output, so before every product has verified is fine).
        self.store = gen.log.blob_store()
        self.held = self.store.fill(self.blobs, gen.log.root) if self.store else set()

    def write(self) -> tuple[ProductRecord, BuildReport]:
        """Write the product's pages and files; the record of what was written."""
        gen = self.gen
        report = BuildReport()
        out = Output(gen.site.output, report, self.old, all_there=self.all_there)
        build_product(
            self.state, self.manifests, gen.log, gen.renderer, out, self.blobs,
            self.store, self.held,
        )  # fmt: skip
        out.remove_stale()
        # Saved here: workers save their products' records in parallel.
        record = gen.last.product_record(self.product.name, self.tree, self.newest, out)
        return record, report


class Workers:
    """Product jobs in forked worker processes, in two phases.

    Each worker prepares its product (load, verify, derive) and reports its size; only when
    every product verified are they told to write (fail closed across products). At most
    ``slots`` of them load at once (a semaphore) or write at once: writes are handed out
    largest product first, the next as soon as one finishes, so the last to finish is a
    small one and no core idles while a big product is written alone. Forking shares the
    loaded theme and settings; results come back as small records.
    """

    def __init__(self, procs: list[tuple[Any, Any]], sizes: list[int], slots: int) -> None:
        self.procs = procs
        self.sizes = sizes
        self.slots = slots

    @classmethod
    def start(cls, jobs: list[ProductJob], workers: int) -> Workers | None:
        """Fork one worker per job, or None (run in-process) when forking is not safe here.

        Raises:
            FortnightError: a product failed to load or verify (the first, in product order).
        """
        if workers <= 1 or threading.active_count() > 1 or "fork" not in mp.get_all_start_methods():
            return None  # a process with threads cannot fork safely
        ctx = mp.get_context("fork")
        busy = ctx.BoundedSemaphore(workers)  # at most ``workers`` load at once
        procs = []
        for job in jobs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_work, args=(job, child, busy), daemon=True)
            proc.start()
            child.close()
            procs.append((proc, parent))
        answers = [cls._receive(conn, proc) for proc, conn in procs]
        pool = cls(procs, [a if isinstance(a, int) else 0 for a in answers], workers)
        failed = [a for a in answers if isinstance(a, FortnightError)]
        if failed:
            pool.stop()
            raise first_failure(failed)
        return pool

    @staticmethod
    def _receive(conn: Any, proc: Any) -> int | FortnightError:
        """A prepared worker's size, or what went wrong."""
        try:
            kind, payload = conn.recv()
        except EOFError:
            return SiteError(f"a site worker died (exit code {proc.exitcode})")
        if kind == "ok":
            return int(payload)
        return _rebuild_error(payload)

    def finish(self) -> list[tuple[ProductRecord, BuildReport]]:
        """Let the workers write, largest first, ``slots`` at a time; their records, in job
        order.

        Raises:
            FortnightError: a worker failed while writing.
        """
        waiting = sorted(range(len(self.procs)), key=lambda i: -self.sizes[i])
        writing: dict[Any, int] = {}
        results: dict[int, tuple[ProductRecord, BuildReport]] = {}
        while waiting or writing:
            while waiting and len(writing) < self.slots:
                i = waiting.pop(0)
                conn = self.procs[i][1]
                conn.send(True)
                writing[conn] = i
            ready: list[Any] = mp_connection.wait(list(writing))
            for conn in ready:
                i = writing.pop(conn)
                try:
                    kind, payload = conn.recv()
                except EOFError:
                    self.stop()
                    code = self.procs[i][0].exitcode
                    raise SiteError(f"a site worker died (exit code {code})") from None
                if kind != "done":
                    self.stop()
                    raise _rebuild_error(payload)
                results[i] = payload
        for proc, _ in self.procs:
            proc.join()
        return [results[i] for i in range(len(self.procs))]

    def stop(self) -> None:
        """Tell every worker still waiting to stop without writing; end them all."""
        for proc, conn in self.procs:
            with contextlib.suppress(OSError, ValueError):
                conn.send(False)
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()


def prepare_all(jobs: list[ProductJob]) -> None:
    """Prepare every job in this process, each even when an earlier one failed.

    Raises:
        FortnightError: see :func:`first_failure`.
    """
    failed: list[FortnightError] = []
    for job in jobs:
        try:
            job.prepare()
        except FortnightError as e:
            failed.append(e)
    if failed:
        raise first_failure(failed)


def first_failure(failed: list[FortnightError]) -> FortnightError:
    """What to report when products failed to load: every rejected manifest of every
    product as one :class:`VerificationError`, else the first error (product order)."""
    rejected = [f for e in failed if isinstance(e, VerificationError) for f in e.failures]
    return VerificationError(rejected) if rejected else failed[0]


def _work(job: ProductJob, conn: Any, busy: Any) -> None:
    """A worker: prepare, report its size, wait for the go, write, report."""
    try:
        with busy:
            job.prepare()
        conn.send(("ok", len(job.manifests)))
        if not conn.recv():
            return
        result = job.write()
        conn.send(("done", result))
    except Exception as e:  # reported to the parent, which raises it at the boundary
        conn.send(("error", _describe_error(e)))


def _describe_error(e: Exception) -> tuple[str, Any]:
    """A picklable description of an error, rebuilt by :func:`_rebuild_error`."""
    if isinstance(e, VerificationError):
        return ("verification", e.failures)
    if isinstance(e, FortnightError):
        return (type(e).__name__, (e.message, e.hint))
    return ("other", f"{type(e).__name__}: {e}")


def _rebuild_error(payload: tuple[str, Any]) -> FortnightError:
    kind, data = payload
    if kind == "verification":
        return VerificationError(data)
    if kind == "other":
        return SiteError(f"site build failed: {data}", hint="set FORTNIGHT_DEBUG=1 and re-run")
    cls = getattr(errors, kind, SiteError)
    message, hint = data
    return cls(message, hint=hint) if issubclass(cls, FortnightError) else SiteError(message)
