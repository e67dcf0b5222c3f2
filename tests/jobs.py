"""Do in the test's own process what a qcluster worker would, one thing after another: run due
jobs and deliver due work, sending one request at a time so outcomes come in a fixed order."""

from __future__ import annotations

from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from deliveries import policy
from deliveries.dispatcher import Dispatcher
from deliveries.models import DeliveryAttempt


def run_due_jobs(*, limit: int = 1_000) -> int:
    """Run every job and attempt every queued delivery due now, and whatever those make due now
    too; returns how many jobs and attempts ran."""
    ran = 0
    while ran < limit:
        job = OrmQ.objects.filter(lock__lte=timezone.now()).order_by("lock", "id").first()
        if job is not None:
            job.delete()
            package = SignedPackage.loads(job.payload)
            import_string(package["func"])(*package["args"], **package.get("kwargs", {}))
            ran += 1
            continue
        attempts_before = DeliveryAttempt.objects.count()
        Dispatcher(concurrency=1, poll=0.1, send_options=policy.send_options()).run_until_idle(
            timeout=60
        )
        attempted = DeliveryAttempt.objects.count() - attempts_before
        if not attempted:
            return ran
        ran += attempted
    raise AssertionError(f"more than {limit} jobs: is something re-queueing itself?")
