"""The bench's output: rows of (measure, value, unit) printed as one aligned table."""

from __future__ import annotations

Row = tuple[str, str, str]


def print_table(rows: list[Row]) -> None:
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    print(f"{'measure'.ljust(width)}  {'value'.rjust(vwidth)}  unit")
    print(f"{'-' * width}  {'-' * vwidth}  {'-' * 4}")
    for name, value, unit in rows:
        print(f"{name.ljust(width)}  {value.rjust(vwidth)}  {unit}")
