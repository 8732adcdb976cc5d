"""Run modes that need no Kafka: the embedded pipeline and reprocessing."""

from fluxforge_common.pipeline.embedded import EmbeddedPipeline, RunSummary
from fluxforge_common.pipeline.lines import (
    archive_dates,
    archive_lines,
    date_range,
    file_lines,
    input_lines,
    simulator_lines,
)
from fluxforge_common.pipeline.reprocess import reprocess

__all__ = [
    "EmbeddedPipeline",
    "RunSummary",
    "archive_dates",
    "archive_lines",
    "date_range",
    "file_lines",
    "input_lines",
    "reprocess",
    "simulator_lines",
]
