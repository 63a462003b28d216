"""Analytics of the SQL store (extension): SQL aggregates, over flows that are not soft-deleted."""

from __future__ import annotations

from ...model import FlowUsage, FormatDistribution, StorageUsage, TimerangeAnalysis
from ..shared import format_counts, instances_by_storage_id, timerange_analysis
from .connection import SqlConnections
from .rows import _live, _one_of


class AnalyticsMixin(SqlConnections):
    """Flow usage, format distribution, storage usage and timerange analysis."""

    def flow_usage(self, limit: int) -> list[FlowUsage]:
        """The `limit` flows with the most segments (then the longest duration, then by id)."""
        duration = self.dialect.exact("s.end_ns - s.start_ns + 1")
        rows = self._query(
            f"SELECT f.id, f.label, f.format, COUNT(s.start_ns), COALESCE(SUM({duration}), 0) AS d "
            f"FROM flows f LEFT JOIN segments s ON s.flow_pk = f.pk WHERE {_live('f.id')} GROUP BY f.pk "
            "ORDER BY 4 DESC, 5 DESC, f.id LIMIT ?",
            (limit,),
        )
        return [FlowUsage(*row) for row in rows]

    def format_distribution(self) -> FormatDistribution:
        with self._read() as db:
            total = db.execute(f"SELECT COUNT(*) FROM flows WHERE {_live('id')}").fetchone()[0]
            counts = {
                name: db.execute(f"SELECT {expression}, COUNT(*) FROM flows WHERE {_live('id')} GROUP BY 1").fetchall()
                for name, expression in (
                    ("format", "format"),
                    ("codec", "codec"),
                    ("container", self.dialect.json_text("metadata", "container")),
                )
            }
        return FormatDistribution(
            total, format_counts(counts["format"]), format_counts(counts["codec"]), format_counts(counts["container"])
        )

    def storage_usage(self) -> StorageUsage:
        with self._read() as db:
            by_column = db.execute("SELECT storage_ids, COUNT(*) FROM objects GROUP BY storage_ids").fetchall()
            media, unregistered, uncontrolled_only = db.execute(
                "SELECT COUNT(CASE WHEN registered = 1 THEN 1 END), COUNT(CASE WHEN registered = 0 THEN 1 END), "
                "COUNT(CASE WHEN registered = 1 AND storage_ids IS NULL THEN 1 END) FROM objects"
            ).fetchone()
            awaiting = db.execute("SELECT COUNT(*) FROM released_objects").fetchone()[0]
        return StorageUsage(instances_by_storage_id(by_column), media, unregistered, uncontrolled_only, awaiting)

    def timerange_analysis(self, owner: str, owner_id: str, max_gaps: int) -> TimerangeAnalysis | None:
        """Coverage of the segments of a flow, or of every flow of a source together ("flow" or "source"); None
        when it has no flow (or is none)."""
        with self._read() as db:
            column = "id" if owner == "flow" else "source_id"
            flows = db.execute(
                f"SELECT pk, id FROM flows WHERE {column} = ? AND {_live('id')} ORDER BY id", (owner_id,)
            ).fetchall()
            if not flows:
                return None
            pks = [pk for pk, _ in flows]
            segments = f"SELECT start_ns, end_ns FROM segments WHERE {_one_of('flow_pk', len(pks))}"
            exact = self.dialect.exact
            duration = exact("end_ns - start_ns + 1")
            count, shortest, longest, mean, first, last = db.execute(
                f"SELECT COUNT(*), MIN({duration}), MAX({duration}), AVG({duration}), "
                f"MIN(start_ns), MAX(end_ns) FROM ({segments}) AS flow_segments",
                pks,
            ).fetchone()
            # A gap opens before a segment starting after everything earlier has ended (segments of several
            # flows may overlap: `reach` is the latest end so far).
            gaps = (
                f"SELECT {exact('reach + 1')} AS gap_start, {exact('start_ns - 1')} AS gap_end FROM (SELECT start_ns, "
                "MAX(end_ns) OVER (ORDER BY start_ns, end_ns ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS "
                f"reach FROM ({segments}) AS flow_segments) AS reaches WHERE {exact('start_ns - 1')} > reach"
            )
            first_gaps = db.execute(f"{gaps} ORDER BY gap_start LIMIT ?", (*pks, max_gaps)).fetchall()
            gap_totals = db.execute(
                f"SELECT COUNT(*), COALESCE(SUM(gap_end - gap_start + 1), 0) FROM ({gaps}) AS gaps", pks
            ).fetchone()
        return timerange_analysis(
            [flow_id for _, flow_id in flows], (count, shortest, longest, mean), first, last, first_gaps, gap_totals
        )
