"""Two copies' compaction markers merge into one that keeps every row once (what sync leaves on the target)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
from fluxforge_common.dataset.compaction_marker import (
    MARKER_NAME,
    CompactionMarker,
    MarkerConflictError,
    after_run,
    compacted_name,
    merged_marker,
    new_run,
    parse_marker,
    visible_files,
)
from hypothesis import given, settings
from hypothesis import strategies as st


def compaction(earlier: CompactionMarker | None, inputs: set[str]) -> CompactionMarker:
    """The marker after a compaction that merged `inputs` (and the files still listed) into one file."""
    run = new_run()
    generation = (earlier.generation if earlier is not None else 0) + 1
    kept = [n for n in (earlier.files if earlier is not None else ()) if n not in inputs]
    return after_run(earlier, [*kept, compacted_name(generation, run, 0)], inputs, run)


def test_a_partition_compacted_again_after_its_upload_deleted_the_local_copy_keeps_both_merges() -> None:
    """The audit's case: the local copy starts over at generation 1 with new files; the union holds both."""
    remote = compaction(None, {"part-1.parquet", "part-2.parquet"})
    local = compaction(None, {"part-3.parquet", "part-4.parquet"})
    assert remote.files != local.files and remote.generation == local.generation == 1
    merged = merged_marker(local, remote)
    assert set(merged.files) == {*remote.files, *local.files}
    assert merged.replaced == remote.replaced | local.replaced and merged.generation == 2
    assert dict(merged.replaced_by) == {**remote.replaced_by, **local.replaced_by}
    assert merged_marker(local, merged) is merged  # the next pass finds nothing to add
    assert merged_marker(merged, local) is merged  # downloaded back: the union as it is


def test_a_marker_that_already_holds_the_other_sides_history_wins_as_it_is() -> None:
    remote = compaction(None, {"part-1.parquet", "part-2.parquet"})
    local = compaction(remote, {*remote.files, "part-3.parquet"})  # downloaded, then compacted again
    assert merged_marker(local, remote) is local  # uploaded as it is
    assert merged_marker(remote, local) is local  # a download changes nothing
    assert merged_marker(remote, remote) is remote


def test_a_union_hides_what_either_side_replaced() -> None:
    """Files the target shows that the source's compaction merged are hidden, merged files of either stay."""
    remote = CompactionMarker(0, (), frozenset())  # a reprocess-free, compaction-free partition: no run yet
    reprocessed = after_run(None, ["part-9.parquet"], {"part-1.parquet"}, new_run())  # lists a plain file
    compacted = compaction(None, {"part-2.parquet", "part-3.parquet"})
    merged = merged_marker(compacted, merged_marker(reprocessed, remote))
    names = ["part-1.parquet", "part-2.parquet", "part-3.parquet", "part-4.parquet", "part-9.parquet",
             *compacted.files, MARKER_NAME]  # fmt: skip
    assert visible_files(names, merged) == sorted(["part-4.parquet", "part-9.parquet", *compacted.files])


def test_both_copies_merging_the_same_file_in_runs_of_their_own_is_a_conflict() -> None:
    base = compaction(None, {"part-1.parquet", "part-2.parquet"})
    remote = compaction(base, {*base.files, "part-3.parquet"})
    local = compaction(base, {*base.files, "part-4.parquet"})
    with pytest.raises(MarkerConflictError, match=rf"both copies replaced {base.files[0]} .*twice"):
        merged_marker(local, remote)


def test_markers_written_before_run_tokens_merge_when_they_agree() -> None:
    legacy = b'{"generation": 2, "files": ["compacted-g000002-0000.parquet"], "replaced": ["part-1.parquet"]}'
    old = parse_marker(legacy, "old")
    assert old.replaced_by == {} and merged_marker(old, parse_marker(legacy, "copy")) == old
    newer = compaction(old, {*old.files, "part-2.parquet"})
    assert newer.replaced_by.get("part-1.parquet") is None  # the old replacement keeps no run
    assert merged_marker(old, newer) is newer and merged_marker(newer, old) is newer
    assert parse_marker(newer.to_bytes(), "round trip") == newer


def test_an_unreadable_run_map_is_an_unreadable_marker() -> None:
    with pytest.raises(ValueError, match="compaction marker m is unreadable"):
        parse_marker(b'{"generation": 1, "files": [], "replaced": [], "replaced_by": [1]}', "m")


@dataclass
class Copy:
    """A model of one copy of a partition: its files (name -> the original files whose rows it holds)."""

    files: dict[str, frozenset[str]] = field(default_factory=dict)
    marker: CompactionMarker | None = None

    def visible(self) -> list[str]:
        names = [*self.files, *([MARKER_NAME] if self.marker else [])]
        shown = visible_files(names, self.marker)
        assert shown is not None, "a marker lists a file its copy lacks"
        return shown

    def rows(self) -> Counter[str]:
        return Counter(leaf for name in self.visible() for leaf in self.files[name])


# An operation on the local copy (0) or the remote (1): a new file, a compaction, a sync from one to the
# other (sync copies every file, then the marker merged with the target's), or an upload that deletes the
# local copy afterwards (`--delete-local-after-verify`).
OPERATIONS = st.lists(
    st.tuples(st.sampled_from(["file", "compact", "sync", "upload_and_delete"]), st.integers(0, 1)),
    max_size=25,
)


@settings(max_examples=400, deadline=None)
@given(operations=OPERATIONS, compacting=st.sampled_from([(0,), (1,), (0, 1)]))
def test_sync_never_loses_or_doubles_a_row_whatever_the_history(
    operations: list[tuple[str, int]], compacting: tuple[int, ...]
) -> None:
    """Every row either copy shows reaches the target once; a conflict is raised only when both copies
    compact (a copy compacted on one side only never conflicts)."""
    copies, leaves = [Copy(), Copy()], 0
    for operation, side in operations:
        copy = copies[side]
        if operation == "file":
            leaves += 1
            copy.files[f"part-{leaves}.parquet"] = frozenset({f"part-{leaves}"})
        elif operation == "compact" and side in compacting:
            inputs = set(copy.visible())
            if len(inputs) >= 2:
                copy.marker = compaction(copy.marker, inputs)
                (out,) = set(copy.marker.files) - inputs - set(copy.files)
                copy.files[out] = frozenset().union(*(copy.files.pop(n) for n in inputs))
        elif operation in ("sync", "upload_and_delete"):
            source, target = (
                (copies[0], copies[1]) if operation != "sync" or side == 0 else (copies[1], copies[0])
            )
            expected = set(source.rows()) | set(target.rows())
            target.files |= source.files
            if source.marker is not None:
                try:
                    target.marker = (
                        source.marker
                        if target.marker is None
                        else merged_marker(source.marker, target.marker)
                    )
                except MarkerConflictError:
                    assert compacting == (0, 1), "a conflict although one copy alone compacts"
                    return
            rows = target.rows()
            assert set(rows) == expected and max(rows.values(), default=1) == 1, rows
            if operation == "upload_and_delete":
                copies[0] = Copy()
