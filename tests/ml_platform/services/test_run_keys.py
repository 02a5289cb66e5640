"""One idempotency key (Cloud Scheduler's schedule time), one run: a key answered with a run
that was already active stays bound to that run after it finished."""

from __future__ import annotations

import pytest

from ml_platform.models import DataSource, EtlRun, EtlRunKey
from ml_platform.services import etl_run_create

pytestmark = pytest.mark.django_db


def test_key_coalesced_into_active_run_never_makes_a_second_run(csv_source: DataSource) -> None:
    """A schedule time delivered while a Run Now run is queued gets that run; delivered again
    after the run finished it still gets that run (no second run); a new schedule time makes a
    new run."""
    manual, created = etl_run_create(data_source=csv_source, trigger="api")
    assert created

    first, first_created = etl_run_create(
        data_source=csv_source, trigger="scheduler", idempotency_key="scheduler:T1"
    )
    EtlRun.objects.filter(pk=manual.pk).update(status="succeeded")
    again, again_created = etl_run_create(
        data_source=csv_source, trigger="scheduler", idempotency_key="scheduler:T1"
    )
    later, later_created = etl_run_create(
        data_source=csv_source, trigger="scheduler", idempotency_key="scheduler:T2"
    )

    assert (first.id, first_created, again.id, again_created) == (
        manual.id,
        False,
        manual.id,
        False,
    )
    assert later_created and later.id != manual.id
    assert later.idempotency_key == "scheduler:T2"
    assert list(EtlRunKey.objects.values_list("key", "run_id")) == [("scheduler:T1", manual.id)]
    assert EtlRun.objects.count() == 2
