"""Instants the tests build rows and ticks around."""

T0 = 1_765_500_000_000  # 2025-12-12T00:40:00Z, a whole second
DAY_MS = 86_400_000
