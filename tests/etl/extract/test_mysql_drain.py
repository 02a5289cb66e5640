"""etl/extract/mysql/drain.py: connectorx's batches taken off its channel as they come, the
backlog spilled to disk beyond MEMORY_BATCHES, read back in order."""

from __future__ import annotations

import os
import tempfile
import threading
import time

import pyarrow as pa
import pytest

from etl.extract.mysql import drain


def numbered(count: int, rows: int = 100, fail_after: int | None = None):
    for number in range(count):
        if fail_after is not None and number == fail_after:
            raise RuntimeError("server went away")
        start = number * rows
        yield pa.record_batch({"n": pa.array(range(start, start + rows), pa.int64())})


@pytest.fixture
def spill_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(drain, "MEMORY_BATCHES", 2)
    monkeypatch.setattr(drain, "SEGMENT_BATCHES", 3)
    return tmp_path


def spilled_files(folder) -> int:
    return sum(len(files) for _, _, files in os.walk(folder))


def test_a_slow_consumer_gets_every_batch_in_order_from_memory_and_disk(spill_dir):
    produced = threading.Event()

    def source():
        yield from numbered(40)
        produced.set()

    seen, most_on_disk = [], 0
    for batch in drain.drained(source(), lambda exc: None):
        if not seen:  # let the drain run ahead: the backlog goes to disk
            produced.wait(10)
            most_on_disk = spilled_files(spill_dir)
        seen.extend(batch.column("n").to_pylist())
    assert seen == list(range(4000))
    # 40 batches, at most 2 in memory: the rest was spilled in files of at most 3 batches
    assert most_on_disk >= (40 - 2 - 1) // 3
    assert spilled_files(spill_dir) == 0  # read back and removed


def test_a_consumer_that_keeps_up_spills_nothing(spill_dir):
    def source():
        for batch in numbered(10):
            time.sleep(0.02)
            yield batch

    seen = [b.num_rows for b in drain.drained(source(), lambda exc: None)]
    assert seen == [100] * 10
    assert not os.listdir(spill_dir)


def test_the_sources_error_is_raised_translated_after_the_batches_before_it(spill_dir):
    translated = ValueError("translated")
    seen = []
    with pytest.raises(ValueError, match="translated"):
        for batch in drain.drained(numbered(10, fail_after=7), lambda exc: translated):
            seen.append(batch)
            time.sleep(0.01)
    assert len(seen) == 7


def test_an_untranslated_error_is_raised_as_it_is(spill_dir):
    with pytest.raises(RuntimeError, match="server went away"):
        list(drain.drained(numbered(3, fail_after=1), lambda exc: None))


def test_closing_early_stops_the_drain_and_removes_the_spill_files(spill_dir):
    batches = drain.drained(numbered(30), lambda exc: None)
    first = next(batches)
    time.sleep(0.2)  # the drain runs ahead onto disk
    batches.close()
    assert first.num_rows == 100
    assert spilled_files(spill_dir) == 0
    assert not [t for t in threading.enumerate() if t.name == "etl-mysql-drain"]
