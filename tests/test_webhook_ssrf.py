"""The webhook SSRF guard: registration refuses every spelling of a forbidden address, and delivery connects
only to addresses it vetted, whatever a name resolves to from one lookup to the next (DNS rebinding)."""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from background import FAST_WORKER, Receiver, receiver, running_worker, wait_for
from certificates import https_server, self_signed
from helpers import Tams
from tams_api.delivery import Courier
from tams_api.domain import webhooks
from tams_api.metrics import WEBHOOK_DELIVERIES
from tams_api.routers.common import Services
from test_webhooks import register, webhook

# The guard does not depend on the store.
pytestmark = pytest.mark.parametrize("settings", ["sqlite+filesystem"], indirect=True)

METADATA = "169.254.169.254"


@dataclass
class Network:
    """The test's resolver and routes: its names answer in turn from their lists (an address, or None: the name
    does not resolve), other names resolve for real; connections to the metadata address land on `trap`."""

    trap: Receiver
    answers: dict[str, Iterator[str | None]] = field(default_factory=dict)

    def answer(self, name: str, *answers: str | None) -> None:
        self.answers[name] = itertools.cycle(answers)

    def getaddrinfo(self, real: Callable[..., Any], host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return real(host, port, *args, **kwargs)
        address = next(self.answers[name])
        if address is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port or 0))]


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Iterator[Network]:
    with receiver() as trap:
        net = Network(trap)
        real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

        def connect(sock: socket.socket, address: Any) -> None:
            if isinstance(address, tuple) and address[0] == METADATA:
                address = ("127.0.0.1", trap.port)
            real_connect(sock, address)

        monkeypatch.setattr(
            socket, "getaddrinfo", lambda *args, **kwargs: net.getaddrinfo(real_getaddrinfo, *args, **kwargs)
        )
        monkeypatch.setattr(socket.socket, "connect", connect)
        yield net


# -- delivery ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param(("127.0.0.1", METADATA), id="rebinding"),
        pytest.param((None, METADATA), id="unresolvable-then-metadata"),
    ],
)
def test_delivery_never_connects_to_an_address_it_did_not_vet(
    app: FastAPI, tams: Tams, network: Network, answers: tuple[str | None, ...]
) -> None:
    """Each lookup of the name answers the next of `answers`: a courier that resolves once to vet and again to
    connect (or lets a failed lookup pass) posts to the metadata address, which the trap stands in for."""
    with receiver() as events:
        network.answer("rebind.test", "127.0.0.1")
        url = f"http://rebind.test:{events.port}/events"
        webhook_id = register(tams.client, url, events=["flows/created"])
        network.answer("rebind.test", *answers)
        for n in range(20):
            tams.put_flow(label=f"flow {n}")
        refused = WEBHOOK_DELIVERIES.labels("refused")._value.get()
        with running_worker(app.state.services):
            wait_for(
                lambda: network.trap.attempts or webhook(tams.client, webhook_id)["status"] == "error",
                what="the trap reached or the webhook in error",
            )
    assert network.trap.attempts == 0, "a request went to the metadata address"
    summary = webhook(tams.client, webhook_id)["error"]["summary"]
    assert f"leads to {METADATA}" in summary
    assert WEBHOOK_DELIVERIES.labels("refused")._value.get() == refused + 1
    assert all(delivery.headers["Host"] == f"rebind.test:{events.port}" for delivery in events.deliveries)
    assert len(events.deliveries) == answers.count("127.0.0.1"), "the events before the forbidden answer arrive"


def test_a_name_that_does_not_resolve_at_delivery_is_a_failed_attempt(
    app: FastAPI, tams: Tams, network: Network
) -> None:
    network.answer("nowhere.test", None)
    webhook_id = register(tams.client, "http://nowhere.test/events", events=["flows/created"])
    failed = WEBHOOK_DELIVERIES.labels("failed")._value.get()
    with running_worker(app.state.services, webhook_max_attempts=3):
        tams.put_flow()
        wait_for(lambda: webhook(tams.client, webhook_id)["status"] == "error", what="error")
    summary = webhook(tams.client, webhook_id)["error"]["summary"]
    assert "after 3 attempt(s)" in summary
    assert "nowhere.test does not resolve" in summary
    assert WEBHOOK_DELIVERIES.labels("failed")._value.get() == failed + 3
    assert network.trap.attempts == 0


# -- TLS to a pinned address ---------------------------------------------------------------------------


@dataclass
class TlsReceiver:
    port: int
    server_names: list[str | None] = field(default_factory=list)  # the SNI of each TLS handshake
    hosts: list[str] = field(default_factory=list)  # the Host header of each POST


@contextmanager
def tls_receiver(cert: Path, key: Path) -> Iterator[TlsReceiver]:
    """An HTTPS receiver on 127.0.0.1 serving `cert`, recording the SNI and Host it is sent."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with https_server(context) as server:
        seen = TlsReceiver(server.server_address[1])
        context.sni_callback = lambda _socket, server_name, _context: seen.server_names.append(server_name)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keeps connections open: the client may reuse them

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                seen.hosts.append(self.headers["Host"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server.RequestHandlerClass = Handler
        yield seen


def run_couriers(services: Services, trusted: Path, *runs: tuple[str, Callable[[], Any]]) -> None:
    """Couriers for webhooks in turn, sharing a client that trusts `trusted` as the worker's couriers share one,
    each until it gives up or its condition holds."""

    async def main() -> None:
        settings = services.settings.model_copy(update={**FAST_WORKER, "webhook_max_attempts": 1})
        loop = asyncio.get_running_loop()
        async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=trusted)) as client:
            for webhook_id, until in runs:
                hook = webhooks.get(services.store, webhook_id)
                task = asyncio.create_task(Courier(hook, services.store, services.media, settings, client).run())
                deadline = loop.time() + 10
                while not (task.done() or until()):
                    assert loop.time() < deadline, "the courier neither delivered nor gave up"
                    await asyncio.sleep(0.01)
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    asyncio.run(main())


def test_https_to_a_pinned_address_checks_the_certificate_against_the_name(
    app: FastAPI, tams: Tams, network: Network, tmp_path: Path
) -> None:
    """Both names resolve to the receiver's address, whose certificate names only one of them. The impostor's
    courier runs second, on the same client: it must not reuse the connection checked for the genuine name."""
    cert, key = self_signed(tmp_path, "receiver.test")
    network.answer("receiver.test", "127.0.0.1")
    network.answer("impostor.test", "127.0.0.1")
    with tls_receiver(cert, key) as seen:
        genuine = register(tams.client, f"https://receiver.test:{seen.port}/events", events=["flows/created"])
        impostor = register(tams.client, f"https://impostor.test:{seen.port}/events", events=["flows/created"])
        tams.put_flow()
        store = app.state.services.store
        last = store.events_after(0, 100)[-1].seq
        # The genuine courier runs until its cursor passes the event: delivered, the connection back in the pool.
        genuine_run = (genuine, lambda: webhooks.get(store, genuine).cursor >= last)
        run_couriers(app.state.services, cert, genuine_run, (impostor, lambda: len(seen.hosts) > 1))
    assert seen.hosts == [f"receiver.test:{seen.port}"], "only the genuine name's event arrives"
    assert seen.server_names == ["receiver.test", "impostor.test"]
    assert "CERTIFICATE_VERIFY_FAILED" in webhook(tams.client, impostor)["error"]["summary"]
    assert webhook(tams.client, genuine)["status"] == "started"


# -- registration --------------------------------------------------------------------------------------

FORBIDDEN_URLS = [
    "http://169.254.169.254/",
    "http://169.254.169.254.:80/",  # trailing dot: a DNS name that does not resolve, a literal to the resolver
    "http://2852039166/",  # decimal
    "http://0xa9fea9fe/",  # hex
    "http://0xa9.0xfe.0xa9.0xfe/",  # hex parts
    "http://025177524776/",  # octal
    "http://169.254.43518/",  # short forms
    "http://169.16689662/",
    "http://[fe80::1]/",
    "http://[fe80::1%25lo]/",  # zone id
    "http://[fe80::1%25eth0]:8080/",
    "http://[::ffff:169.254.169.254]/",  # v4-mapped
    "http://[::ffff:a9fe:a9fe]/",
    "http://[::169.254.169.254]/",  # v4-compatible
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64
    "http://[64:ff9b::169.254.169.254]/",
    "http://[2002:a9fe:a9fe::1]/",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:5601:5601]/",  # Teredo, client 169.254.169.254 (obfuscated)
    "http://100.100.100.200/",  # cloud metadata outside link-local
    "http://[fd00:ec2::254]/",
    "http://[::ffff:100.100.100.200]/",
    "http://0.0.0.0/",  # unspecified
    "http://0/",
    "http://[::]/",
    "http://224.0.0.1/",  # multicast
    "http://[ff02::1]/",
    "http://[::ffff:224.0.0.1]/",
]


# Names that reach the resolver as DNS names: the test's resolver says they do not resolve.
UNRESOLVED = ("169.254.169.254.", "receiver.namespace.svc.cluster.local")


@pytest.mark.parametrize("url", FORBIDDEN_URLS)
def test_registration_refuses_every_spelling_of_a_forbidden_address(
    client: TestClient, network: Network, url: str
) -> None:
    for name in UNRESOLVED:
        network.answer(name, None)
    response = client.post("/service/webhooks", json={"url": url, "events": ["flows/created"]})
    assert response.status_code == 400, response.text
    assert "TAMS_WEBHOOK_ALLOW_LINK_LOCAL" in response.json()["summary"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "http://[::1]/",
        "http://10.0.0.7/",
        "http://192.168.1.1/",
        "http://172.16.0.1/",
        "http://[fd12:3456::1]/",
        "http://receiver.namespace.svc.cluster.local/events",  # does not resolve here: vetted at delivery
        "https://localhost/events",
    ],
)
def test_registration_accepts_loopback_private_and_unresolved_names(
    client: TestClient, network: Network, url: str
) -> None:
    for name in UNRESOLVED:
        network.answer(name, None)
    register(client, url)


@pytest.mark.parametrize("url", FORBIDDEN_URLS[::3])
def test_the_setting_allows_forbidden_addresses(
    app: FastAPI, client: TestClient, network: Network, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    for name in UNRESOLVED:
        network.answer(name, None)
    services = app.state.services
    monkeypatch.setattr(services, "settings", services.settings.model_copy(update={"webhook_allow_link_local": True}))
    register(client, url)
