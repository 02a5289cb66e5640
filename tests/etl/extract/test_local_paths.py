"""`local` file sources never read outside `connection_params.base_path` (issue 5, item 5):
a `file_prefix` with `..` or an absolute path, a `file_pattern` with `../`, and symlinks inside
the base path that point outside it (to a file and to a folder)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from etl import ConfigError, JobConfig, run
from etl.extract.storage import list_objects
from tests.etl.support import DATASET, duck_query, job_config

ROWS = "id,name\n1,inside\n"
OUTSIDE = "id,name\n666,outside\n"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """`base/` holding `data/rows.csv`, and a sibling `secret/` holding `outside.csv`."""
    base, secret = tmp_path / "base", tmp_path / "secret"
    (base / "data").mkdir(parents=True)
    secret.mkdir()
    (base / "data" / "rows.csv").write_text(ROWS)
    (secret / "outside.csv").write_text(OUTSIDE)
    return base, secret


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """structlog routed through `logging` at DEBUG; the earlier configuration restored after."""
    previous = structlog.get_config()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.stdlib.LoggerFactory(),
    )
    caplog.set_level(logging.DEBUG)
    try:
        yield caplog
    finally:
        structlog.configure(**previous)


def job(base: Path, tmp_path: Path, **fields: object) -> JobConfig:
    return JobConfig.parse(
        job_config(
            "local",
            tmp_path / "w.duckdb",
            connection_params={"base_path": str(base)},
            file_format="csv",
            **fields,
        )
    )


@pytest.mark.parametrize(
    "prefix", ["../secret", "data/../../secret", "data/../.."], ids=["dotdot", "nested", "parent"]
)
def test_prefix_leaving_the_base_path_is_a_config_error(
    layout: tuple[Path, Path], tmp_path: Path, prefix: str
) -> None:
    """A `file_prefix` resolving outside the base path fails with ConfigError naming
    `file_prefix`; nothing is loaded."""
    base, _ = layout
    with pytest.raises(ConfigError, match="file_prefix .* points outside the base path") as info:
        run(job(base, tmp_path, file_prefix=prefix))
    assert info.value.field == "file_prefix"
    assert not (tmp_path / "w.duckdb").exists()


def test_absolute_prefix_is_relative_to_the_base_path(
    layout: tuple[Path, Path], tmp_path: Path
) -> None:
    """An absolute `file_prefix` (the outside folder's own path) is read below the base path,
    where it does not exist: no object is listed, the outside file is not read."""
    base, secret = layout
    _, objects = list_objects(job(base, tmp_path, file_prefix=str(secret)))
    assert objects == []
    _, objects = list_objects(job(base, tmp_path, file_prefix="/data"))
    assert [obj.key for obj in objects] == ["data/rows.csv"]


@pytest.mark.parametrize("pattern", ["../secret/*.csv", "../../*/*.csv", "**/../../secret/*"])
def test_pattern_with_dotdot_matches_nothing_outside(
    layout: tuple[Path, Path], tmp_path: Path, pattern: str
) -> None:
    """A `file_pattern` with `../` is matched against paths below the prefix only: nothing."""
    base, _ = layout
    _, objects = list_objects(job(base, tmp_path, file_pattern=pattern))
    assert objects == []


def test_symlinks_out_of_the_base_path_are_skipped_with_a_warning(
    layout: tuple[Path, Path], tmp_path: Path, warnings_logged: pytest.LogCaptureFixture
) -> None:
    """A symlinked file and a symlinked folder pointing outside are not read; each skip is a
    warning naming the key; a symlink staying inside the base path is read."""
    base, secret = layout
    (base / "data" / "link.csv").symlink_to(secret / "outside.csv")
    (base / "data" / "linked_dir").symlink_to(secret, target_is_directory=True)
    (base / "data" / "inner.csv").symlink_to(base / "data" / "rows.csv")

    result = run(job(base, tmp_path, file_pattern="**/*.csv", dest_table_name="t"))

    assert result.rows_loaded == 2
    rows = duck_query(
        tmp_path / "w.duckdb",
        f"SELECT id, name, _etl_source_file FROM {DATASET}.t ORDER BY _etl_source_file",
    )
    assert rows == [(1, "inside", "data/inner.csv"), (1, "inside", "data/rows.csv")]
    skipped = sorted(
        record.getMessage()
        for record in warnings_logged.records
        if "storage.outside_base_path_skipped" in record.getMessage()
    )
    assert len(skipped) == 2, warnings_logged.text
    assert '"key": "data/link.csv"' in skipped[0] + skipped[1]
    assert '"key": "data/linked_dir' in skipped[0] + skipped[1]
    assert "666" not in warnings_logged.text
