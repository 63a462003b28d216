"""Analytics (extension): Arrow compute over column-projected selects, flows that are not soft-deleted."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ...model import FlowUsage, FormatDistribution, StorageUsage, TimerangeAnalysis
from ..shared import format_counts, instances_by_storage_id, timerange_analysis
from .rows import _CHUNK, _arrow, _select
from .schema import TABLES
from .session import Transactions, _Tx

_CONTAINER_IN_JSON = r'"container":\s*"(?P<container>(?:[^"\\]|\\.)*)"'


def _grouped(
    t: _Tx,
    name: str,
    columns: Sequence[str],
    keys: list[str],
    counted: str,
    derive: Callable[[pa.Table], pa.Table] = lambda data: data,
) -> pa.Table:
    """Per group of `keys` over every row of a table: the count of `counted` (`{counted}_count`) and, for a
    numeric column, its sum (`{counted}_sum`). Aggregated batch by batch as the select streams them, so memory
    holds one batch and the partial results, never the whole table."""
    empty = derive(TABLES[name].empty_table().select(list(columns)))
    summed = pa.types.is_integer(empty.schema.field(counted).type)
    aggregations = [(counted, "count"), *([(counted, "sum")] if summed else [])]
    partials = [
        derive(pa.Table.from_batches([batch])).group_by(keys).aggregate(aggregations)
        for batch in t[name].select(columns=list(columns))
    ] or [empty.group_by(keys).aggregate(aggregations)]
    names = [f"{counted}_count", *([f"{counted}_sum"] if summed else [])]
    combined = pa.concat_tables(partials).group_by(keys).aggregate([(column, "sum") for column in names])
    return combined.select([*keys, *(f"{column}_sum" for column in names)]).rename_columns([*keys, *names])


def _with_duration(segments: pa.Table) -> pa.Table:
    """Segments with `duration`: end - start of their closed nanosecond bounds, plus one."""
    return segments.append_column("duration", pc.add(pc.subtract(segments["end_ns"], segments["start_ns"]), 1))


class AnalyticsMixin(Transactions):
    """Flow usage, format distribution, storage usage and timerange analysis."""

    @staticmethod
    def _live_flows(t: _Tx, columns: Sequence[str]) -> pa.Table:
        flows = _arrow(t["flows"], columns=columns)
        hidden = _arrow(t["deleted_flows"], columns=["flow_id"])["flow_id"]
        return flows.filter(pc.invert(pc.is_in(flows["id"], value_set=hidden)))

    def flow_usage(self, limit: int) -> list[FlowUsage]:
        """The `limit` flows with the most segments (then the longest duration, then by id)."""
        with self._read() as t:
            usage = _grouped(t, "segments", ["flow_id", "start_ns", "end_ns"], ["flow_id"], "duration", _with_duration)
            flows = self._live_flows(t, ["id", "label", "format"])
        joined = flows.join(usage, keys="id", right_keys="flow_id", join_type="left outer")
        table = pa.table(
            {
                "id": joined["id"],
                "label": joined["label"],
                "format": joined["format"],
                "segment_count": pc.fill_null(joined["duration_count"], 0),
                "duration_ns": pc.fill_null(joined["duration_sum"], 0),
            }
        )
        order = pc.sort_indices(
            table, [("segment_count", "descending"), ("duration_ns", "descending"), ("id", "ascending")]
        )
        return [FlowUsage(*row.values()) for row in table.take(order[:limit]).to_pylist()]

    def format_distribution(self) -> FormatDistribution:
        with self._read() as t:
            flows = self._live_flows(t, ["id", "format", "codec", "metadata"])
        # The container is in the flow's metadata JSON only: a top-level string, the first "container" key.
        containers = pc.struct_field(pc.extract_regex(flows["metadata"], _CONTAINER_IN_JSON), "container")
        counted = {}
        for name, values in (("format", flows["format"]), ("codec", flows["codec"]), ("container", containers)):
            groups = pa.table({"value": values}).group_by("value").aggregate([([], "count_all")])
            counted[name] = format_counts(
                zip(groups["value"].to_pylist(), groups["count_all"].to_pylist(), strict=True)
            )
        return FormatDistribution(flows.num_rows, counted["format"], counted["codec"], counted["container"])

    def storage_usage(self) -> StorageUsage:
        with self._read() as t:
            objects = _grouped(t, "objects", ["id", "storage_ids", "registered"], ["storage_ids", "registered"], "id")
            awaiting = sum(batch.num_rows for batch in t["released_objects"].select(columns=["id"]))
        groups = objects.to_pylist()  # one row per distinct (storage_ids, registered): a handful
        return StorageUsage(
            instances_by_storage_id((group["storage_ids"], group["id_count"]) for group in groups),
            sum(group["id_count"] for group in groups if group["registered"]),
            sum(group["id_count"] for group in groups if not group["registered"]),
            sum(group["id_count"] for group in groups if group["registered"] and group["storage_ids"] is None),
            awaiting,
        )

    def timerange_analysis(self, owner: str, owner_id: str, max_gaps: int) -> TimerangeAnalysis | None:
        """Coverage of the segments of a flow, or of every flow of a source together ("flow" or "source"); None
        when it has no flow (or is none)."""
        with self._read() as t:
            flows = t["flows"]
            found = _select(flows, flows["id" if owner == "flow" else "source_id"] == owner_id, ["id"])
            flow_ids = sorted({row["id"] for row in found} - self._hidden(t, [row["id"] for row in found]))
            if not flow_ids:
                return None
            segments = t["segments"]
            chunks = [
                _arrow(segments, segments["flow_id"].isin(flow_ids[start : start + _CHUNK]), ["start_ns", "end_ns"])
                for start in range(0, len(flow_ids), _CHUNK)
            ]
        table = _with_duration(pa.concat_tables(chunks))
        if table.num_rows == 0:
            return timerange_analysis(flow_ids, (0, None, None, None), None, None, [], (0, 0))
        table = table.take(pc.sort_indices(table, [("start_ns", "ascending"), ("end_ns", "ascending")]))
        starts, ends = table["start_ns"], table["end_ns"]
        # A gap opens before a segment starting after everything earlier has ended (segments of several flows
        # may overlap: `reach` is the latest end so far).
        reach = pc.cumulative_max(ends)
        gap_starts = pc.add(reach.slice(0, table.num_rows - 1), 1)
        gap_ends = pc.subtract(starts.slice(1), 1)
        opens = pc.greater_equal(gap_ends, gap_starts)
        gap_starts, gap_ends = pc.filter(gap_starts, opens), pc.filter(gap_ends, opens)
        extremes = pc.min_max(table["duration"])
        return timerange_analysis(
            flow_ids,
            (table.num_rows, extremes["min"].as_py(), extremes["max"].as_py(), pc.mean(table["duration"]).as_py()),
            pc.min(starts).as_py(),
            pc.max(ends).as_py(),
            list(zip(gap_starts[:max_gaps].to_pylist(), gap_ends[:max_gaps].to_pylist(), strict=True)),
            (len(gap_starts), pc.sum(pc.add(pc.subtract(gap_ends, gap_starts), 1)).as_py() or 0),
        )
