"""The pure feature engine: per-symbol state, grid emission, bars, enrichment."""

from fluxforge_common.features.engine import FeatureEngine
from fluxforge_common.features.output import EngineOutput
from fluxforge_common.features.schema import TABLES, output_tables, table_fields, table_schema
from fluxforge_common.features.symbol_state import SymbolState, closing_watermark

__all__ = [
    "TABLES",
    "EngineOutput",
    "FeatureEngine",
    "SymbolState",
    "closing_watermark",
    "output_tables",
    "table_fields",
    "table_schema",
]
