"""Webhooks: what a registration may say, which events a webhook wants, and the bodies it receives."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from . import schemas
from .errors import BadRequest
from .model import WEBHOOK_FILTERS, WEBHOOK_URL_OPTIONS, Event, StoredObject, Webhook
from .segment_rows import segment_row_from_record
from .stores.media import MediaStores
from .urls import UrlBuilder, UrlOptions, segments_json

# Cloud instance-metadata services outside the link-local ranges (AWS IPv6, Alibaba).
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(address) for address in ("fd00:ec2::254", "100.100.100.200"))
# IPv6 prefixes whose last 32 bits are an IPv4 address: IPv4-compatible (::a.b.c.d) and NAT64's well-known prefix.
V4_COMPATIBLE = ipaddress.IPv6Network("::/96")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def webhook_from_body(webhook_id: str, body: Any, *, replacing: bool, owner: str | None) -> Webhook:
    """A webhook as a POST (new) or PUT (replacing) body describes it; `status` is the one asked for."""
    schemas.check("webhook-put.json" if replacing else "webhook-post.json", body, "webhook")
    if replacing and body["id"] != webhook_id:
        raise BadRequest(f"the body's id {body['id']} is not the webhook's id {webhook_id} in the path")
    if "api_key_value" in body and "api_key_name" not in body:
        raise BadRequest("api_key_value needs api_key_name: the header to send it in")
    return Webhook(
        id=webhook_id,
        url=body["url"],
        events=list(dict.fromkeys(body["events"])),
        status=body.get("status", "created"),
        api_key_name=body.get("api_key_name"),
        api_key_value=body.get("api_key_value"),
        options={name: body[name] for name in (*WEBHOOK_FILTERS, *WEBHOOK_URL_OPTIONS) if name in body},
        tags=body.get("tags", {}),
        owner=owner,
    )


def _carried_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: dual stacks, NAT64 gateways and 6to4 or Teredo relays
    deliver packets for it there."""
    carried = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in V4_COMPATIBLE or ip in NAT64:
        carried.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [address for address in carried if address is not None]


def forbidden_address(address: str) -> bool:
    """Link-local (cloud metadata lives there), metadata, unspecified and multicast addresses, also when an
    IPv6 address carries one of them."""
    ip = ipaddress.ip_address(address)
    reached = [ip, *_carried_ipv4(ip)] if isinstance(ip, ipaddress.IPv6Address) else [ip]
    return any(
        one.is_link_local or one.is_unspecified or one.is_multicast or one in METADATA_ADDRESSES for one in reached
    )


def spelled_address(host: str) -> str | None:
    """The address a URL host spells as the resolver reads it, or None for a name: IPv6 with a zone id, IPv4 in
    any form inet_aton takes (2852039166, 0xa9fea9fe, 169.254.43518), either with a trailing dot."""
    host = host.removesuffix(".")
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0]))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def refusal(url: str, addresses: list[str]) -> str | None:
    """Why events must not go to `url`, whose host is or resolves to `addresses`; None when they may."""
    refused = sorted({address for address in addresses if forbidden_address(address)})
    if not refused:
        return None
    return (
        f"webhook url {url!r} leads to {', '.join(refused)}: link-local, cloud metadata, unspecified and multicast "
        "addresses are refused (set TAMS_WEBHOOK_ALLOW_LINK_LOCAL=true to allow them)"
    )


def resolve(host: bytes) -> list[str]:
    """The addresses `host` (ASCII, as in `httpx.URL.raw_host`) resolves to, in the resolver's order; OSError
    when it does not resolve."""
    infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(url: str, allow_link_local: bool) -> None:
    """Registration's SSRF guard. A name that does not resolve (yet) passes: delivery vets the addresses it
    resolves to at each attempt."""
    import httpx  # ~6 MB resident: only once a webhook is registered (delivery needs it then anyway)

    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.raw_host:
        raise BadRequest(f"webhook url {url!r} must be an absolute http or https URL")
    if allow_link_local:
        return
    spelled = spelled_address(parsed.raw_host.decode("ascii"))
    try:
        resolved = resolve(parsed.raw_host)
    except OSError:
        resolved = []
    problem = refusal(url, [spelled, *resolved] if spelled else resolved)
    if problem is not None:
        raise BadRequest(problem)


def _collected(collectors: list[str], wanted: list[str]) -> bool:
    """An empty filter list asks for what no collection collects."""
    return bool(set(collectors) & set(wanted)) if wanted else not collectors


def wants(webhook: Webhook, event: Event) -> bool:
    """Whether the webhook's event types and filters let the event through."""
    if event.type not in webhook.events:
        return False
    options = webhook.options
    if event.type.startswith("flows/"):
        if "flow_ids" in options and event.flow_id not in options["flow_ids"]:
            return False
        if "flow_collected_by_ids" in options and not _collected(
            event.flow_collected_by, options["flow_collected_by_ids"]
        ):
            return False
    if "source_ids" in options and event.source_id not in options["source_ids"]:
        return False
    return "source_collected_by_ids" not in options or _collected(
        event.source_collected_by, options["source_collected_by_ids"]
    )


def url_options(webhook: Webhook) -> UrlOptions:
    options = webhook.options
    labels = options.get("accept_get_urls")
    storage_ids = options.get("accept_storage_ids")
    return UrlOptions(
        accept_labels=None if labels is None else set(labels),
        accept_storage_ids=set(storage_ids) if storage_ids else None,
        presigned=options.get("presigned"),
        verbose=bool(options.get("verbose_storage")),
    )


def event_body(
    webhook: Webhook,
    event: Event,
    media: MediaStores,
    find_objects: Callable[[list[str]], dict[str, StoredObject]],
) -> dict[str, Any]:
    """The JSON POSTed to the webhook (the spec's `webhooks` section); segment URLs as the webhook asked."""
    payload = event.payload
    if event.type == "flows/segments_added":
        urls = UrlBuilder(media, url_options(webhook), find_objects)
        include_object_timerange = bool(webhook.options.get("include_object_timerange"))
        segments = segments_json(
            [segment_row_from_record(record) for record in payload["segments"]], urls, include_object_timerange
        )
        payload = {"flow_id": payload["flow_id"], "segments": segments}
    return {"event_timestamp": event.timestamp, "event_type": event.type, "event": payload}
