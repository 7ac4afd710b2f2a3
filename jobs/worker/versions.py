"""The RQ releases `jobs.worker.Worker` was verified against, and the guard that refuses the others.

The worker sends RQ's own writes its own way (`jobs.worker.bookkeeping`) and reads RQ's key layout in its
scripts (`jobs.worker.dequeue`), so an RQ release that changes either could make it drop writes without
an error. A release is verified by running RQ's own test suite against the worker
(`make conformance`) and the differential test, with that release pinned in requirements.txt.
"""

import logging
import os

import rq

log = logging.getLogger(__name__)

VERIFIED_RQ_VERSIONS = ("3.0.0",)
# Set to 1 to run the worker under an RQ release it was not verified against.
OVERRIDE_VARIABLE = "RQ_UNVERIFIED_OK"


class UnverifiedRQ(RuntimeError):
    """The installed RQ is not one the worker was verified against."""


def check_rq_version(installed: str = rq.__version__, environ=os.environ) -> None:
    """Refuse an RQ release the worker was not verified against, unless `RQ_UNVERIFIED_OK=1`.

    Raises:
        UnverifiedRQ: with one sentence naming the installed release and how to verify it.
    """
    if installed in VERIFIED_RQ_VERSIONS:
        return
    message = (
        f"jobs.worker.Worker was verified against RQ {', '.join(VERIFIED_RQ_VERSIONS)}, not the "
        f"installed RQ {installed}: pin it in requirements.txt, run `make conformance` (RQ's own "
        f"tests against this worker), then add it to VERIFIED_RQ_VERSIONS in {__name__}"
    )
    if environ.get(OVERRIDE_VARIABLE) == "1":
        log.warning("%s; running anyway, as %s=1 asks", message, OVERRIDE_VARIABLE)
        return
    raise UnverifiedRQ(f"{message}, or set {OVERRIDE_VARIABLE}=1 to run it unverified.")
