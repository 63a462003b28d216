"""The metadata store on VAST Database (`vastdb` SDK, pyarrow tables), behaving exactly like the SQLite one.

What the SDK offers shapes everything here:
- predicates are ANDs of per-column ORs (`==`, ranges, `isin`, `isnull`): joins, ORs across columns, ORDER BY,
  OFFSET and aggregates happen in this process, on fetches bounded by the query (an entity id, a time window);
- `select` returns rows in no particular order and `limit_rows` is an arbitrary subset: listings sort and page
  (keyset) in the client; `limit_rows` only answers "are there more than n?";
- no primary keys: uniqueness is read-check-write in one transaction; writes in this process are serialised by a
  lock (as SQLite's single writer), and writes of other processes (API replicas) by VAST's write-write conflicts:
  a transaction that creates a keyed row also writes the key's stripe of `write_guards`, so two that both read
  "absent" cannot both commit; the loser gets `errors.Conflict` and the whole write is retried from a fresh
  snapshot (`_retried_on_conflict`); `update`/`delete` need `$row_id` from a select in the same transaction;
- segments of a flow never overlap, so a segment reaching into a window starts at most the flow's longest
  segment duration (`max_segment_ns`, kept on the flow row) before it: window queries are
  `flow_id == f AND start_ns in [start - max_segment_ns, end]`, fetched in growing slices until a page is full.

The modules: `store` (`VastMetadataStore`, the composition of the mixins below, and its constructor), `session`
(connecting, transactions, the conflict retry, write guards), `schema` (tables, projections, provisioning,
migrations), `rows` (selects, writes and pages of rows), and one mixin per concern: `service` (service info and
profiles), `tags`, `sources`, `flows`, `soft_delete`, `segments`, `objects`, `release` (media to delete),
`webhooks` (and the outbox), `delete_requests`, `analytics`, `leases`.

This package imports nothing itself: importing its modules loads the SDK (~115 MB resident), which only a
process that uses the VAST store should pay for.
"""
