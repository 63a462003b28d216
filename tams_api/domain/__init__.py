"""The TAMS rules, each written once: use cases that decide what the spec allows, over the metadata repository
(`tams_api.stores.metadata`), which stores and queries records without policy."""
