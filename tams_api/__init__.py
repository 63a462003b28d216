"""A TAMS (Time-addressable Media Store) API 8.2 service."""

API_VERSION = "8.2"
__version__ = "0.1.0"
# Where this service's own extensions live (analytics, soft delete): off the spec's paths.
EXTENSION_PREFIX = "/x-tams"
