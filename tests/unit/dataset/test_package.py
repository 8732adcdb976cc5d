"""The dataset package: its readers and checks are imported on first use, not with the layout."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_the_configuration_loads_neither_the_dataset_readers_nor_pandas() -> None:
    probe = (
        "import sys\n"
        "import fluxforge_common.config, fluxforge_common.writers\n"
        "print(sorted(m for m in ('pyarrow.dataset', 'pandas', 'fluxforge_common.dataset.reader') "
        "if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_readers_and_checks_are_still_named_by_the_package() -> None:
    import fluxforge_common.dataset as dataset
    from fluxforge_common.dataset import reader, validation

    assert dataset.read_table is reader.read_table and dataset.DatasetWarning is reader.DatasetWarning
    assert dataset.validate_dataset is validation.validate_dataset
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        dataset.nothing  # noqa: B018
