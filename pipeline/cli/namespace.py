"""The tasks' namespace, shared by ``tasks.py`` (``invoke`` in the checkout) and the
``fortnight`` console script (:mod:`pipeline.cli.main`), so both offer the same tasks.
"""

from __future__ import annotations

import gc

from invoke.collection import Collection

from pipeline.cli.tasks import (
    bus,
    checkpoint,
    cloud,
    compose,
    demo,
    dev,
    log,
    ostree,
    product,
    release,
    site,
    testing,
    verdict,
)
from pipeline.cli.tasks import tracker as tracker_tasks
from pipeline.cli.tasks import trust as trust_tasks

#: The cycle collector's first-generation threshold for a task's process. At the default
#: (700 allocations) a task's start-up, importing pydantic, the models and the log, runs
#: about 60 collections that rescan the same long-lived module and class objects again
#: and again: some 40 ms of the 0.5 s a task takes (``benchmarks/startup.py``). At this
#: threshold it runs none. Refcounting still frees everything at once; this only delays
#: finding reference cycles (at most this many objects' worth: a few MB), which the
#: library makes few of; a long load pauses the collector anyway
#: (``pipeline.log.segments.gc_paused``).
GC_THRESHOLD = 100_000
gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])

keys = Collection("keys", log.generate)
trust_ns = Collection(
    "trust",
    trust_tasks.trust_show,
    trust_tasks.trust_upgrade,
    trust_tasks.trust_remove,
    trust_tasks.trust_threshold,
)
checkpoint_ns = Collection(
    "checkpoint", checkpoint.checkpoint_refresh, checkpoint.checkpoint_upgrade
)
compose_ns = Collection("compose", compose.record, compose.sample, verdict.compose_fail)
test_ns = Collection("test", testing.run_task, testing.import_task, verdict.waive_task)
tracker_ns = Collection("tracker", tracker_tasks.tracker_sync)
release_ns = Collection("release", release.release_cut, release.release_revoke)
cloud_ns = Collection("cloud", cloud.cloud_discover, cloud.cloud_withdraw)
ostree_ns = Collection("ostree", ostree.ostree_sync)
site_ns = Collection("site", site.site_build, site.site_serve, site.site_publish)
product_ns = Collection("product", product.product_new, product.product_list, product.product_check)
ns = Collection(
    log.init,
    log.verify,
    log.status,
    log.schema,
    demo.demo,
    keys,
    trust_ns,
    checkpoint_ns,
    compose_ns,
    test_ns,
    tracker_ns,
    release_ns,
    cloud_ns,
    ostree_ns,
    site_ns,
    product_ns,
)
ns.add_task(dev.run_tests)
ns.add_task(bus.listen)
ns.add_task(bus.announce)
