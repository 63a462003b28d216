-- The SQLite store's schema version 1: main's from 0a6ab88 to 38ea025, before versions were recorded (its
-- databases have user_version 0). `git show 5ab3957:tams_api/stores/sqlite.py`, its SCHEMA.
CREATE TABLE IF NOT EXISTS service_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS profiles (
    id TEXT PRIMARY KEY, format TEXT, codec TEXT, label TEXT, created TEXT NOT NULL, document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY, format TEXT NOT NULL, label TEXT, description TEXT,
    created_by TEXT, updated_by TEXT, created TEXT NOT NULL, created_ns INTEGER NOT NULL,
    updated TEXT NOT NULL, updated_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS flows (
    pk INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, source_id TEXT NOT NULL,
    format TEXT NOT NULL, codec TEXT, label TEXT, profile_id TEXT, status TEXT,
    frame_width INTEGER, frame_height INTEGER, init_segments INTEGER NOT NULL DEFAULT 0,
    read_only INTEGER NOT NULL DEFAULT 0, metadata TEXT NOT NULL,
    created TEXT NOT NULL, created_ns INTEGER NOT NULL,
    metadata_updated TEXT NOT NULL, metadata_updated_ns INTEGER NOT NULL, segments_updated TEXT,
    seg_start_ns INTEGER, seg_end_ns INTEGER
);
CREATE INDEX IF NOT EXISTS flows_source ON flows (source_id);
CREATE INDEX IF NOT EXISTS flows_created ON flows (created_ns, id);
CREATE TABLE IF NOT EXISTS tags (
    kind TEXT NOT NULL, entity_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (kind, entity_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tag_values (
    kind TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, entity_id TEXT NOT NULL,
    PRIMARY KEY (kind, name, value, entity_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tag_values_entity ON tag_values (kind, entity_id);
CREATE TABLE IF NOT EXISTS flow_collections (
    collector_id TEXT NOT NULL, position INTEGER NOT NULL, member_id TEXT NOT NULL, item TEXT NOT NULL,
    PRIMARY KEY (collector_id, position)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS flow_collections_member ON flow_collections (member_id);
CREATE TABLE IF NOT EXISTS segments (
    flow_pk INTEGER NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    timerange TEXT NOT NULL, object_id TEXT NOT NULL, ts_offset TEXT, last_duration TEXT,
    sample_offset INTEGER, sample_count INTEGER,
    PRIMARY KEY (flow_pk, start_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS segments_object ON segments (object_id, flow_pk);
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY, storage_id TEXT, content_type TEXT, allocated_for TEXT, allocated_ns INTEGER,
    registered INTEGER NOT NULL DEFAULT 0, first_flow_id TEXT, timerange TEXT, key_frame_count INTEGER,
    init_object_id TEXT, uncontrolled_urls TEXT
) WITHOUT ROWID;
-- Partial: most objects have no init object, and NULL entries would make every allocation and registration
-- write one more random index page. Lookups are all `init_object_id = ...`, which this index serves.
CREATE INDEX IF NOT EXISTS objects_init ON objects (init_object_id) WHERE init_object_id IS NOT NULL;
-- Allocated objects not yet registered, by flow: what deleting a flow releases, without scanning every object.
CREATE INDEX IF NOT EXISTS objects_unregistered ON objects (allocated_for) WHERE registered = 0;
CREATE INDEX IF NOT EXISTS objects_allocated ON objects (allocated_ns) WHERE registered = 0;
-- Objects no metadata refers to any more, whose media the worker deletes: written in the transaction that
-- released them, so a crash between that commit and the media deletion forgets nothing.
CREATE TABLE IF NOT EXISTS released_objects (id TEXT PRIMARY KEY, storage_id TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS webhooks (
    id TEXT PRIMARY KEY, url TEXT NOT NULL, status TEXT NOT NULL, owner TEXT, document TEXT NOT NULL,
    error TEXT, cursor INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS webhooks_url ON webhooks (url, id);
-- The outbox: one row per change while any webhook listens, written in the change's own transaction.
-- AUTOINCREMENT: sequence numbers are never reused after pruning, so webhook cursors stay meaningful.
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, timestamp TEXT NOT NULL, flow_id TEXT,
    source_id TEXT, flow_collected_by TEXT NOT NULL, source_collected_by TEXT NOT NULL, payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS delete_requests (
    id TEXT PRIMARY KEY, flow_id TEXT NOT NULL, to_delete TEXT NOT NULL, remaining TEXT NOT NULL,
    delete_flow INTEGER NOT NULL, status TEXT NOT NULL, created TEXT NOT NULL, created_ns INTEGER NOT NULL,
    created_by TEXT, updated TEXT NOT NULL, expiry TEXT, expiry_ns INTEGER, error TEXT
);
CREATE INDEX IF NOT EXISTS delete_requests_created ON delete_requests (created_ns, id);
CREATE INDEX IF NOT EXISTS delete_requests_status ON delete_requests (status, created_ns);
CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ns INTEGER NOT NULL);
