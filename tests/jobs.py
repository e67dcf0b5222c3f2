"""Run queued django-q2 jobs in the test's own process, as a worker would, one after another."""

from __future__ import annotations

from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.models import OrmQ
from django_q.signing import SignedPackage


def run_due_jobs(*, limit: int = 1_000) -> int:
    """Run every job due now, and any job those queue for now too; returns how many ran."""
    ran = 0
    while ran < limit:
        job = OrmQ.objects.filter(lock__lte=timezone.now()).order_by("lock", "id").first()
        if job is None:
            return ran
        job.delete()
        package = SignedPackage.loads(job.payload)
        import_string(package["func"])(*package["args"], **package.get("kwargs", {}))
        ran += 1
    raise AssertionError(f"more than {limit} jobs: is something re-queueing itself?")
