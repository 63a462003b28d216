"""Creating the VAST store's bucket through VMS: the real vastpy client against a fake VMS over HTTPS."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import vastdb

from helpers import VAST_SETTINGS, make_settings, new_fake_vast
from tams_api.config import Settings
from tams_api.errors import ConfigurationError
from tams_api.provision import provision_vast
from tams_api.stores.vast.schema import TABLES
from tams_api.stores.vms import VmsBucketCreator
from vast_fake import FakeVast
from vms_server import BUCKET_OWNER, PASSWORD, USERNAME, VIEW_POLICY, FakeVms, fake_vms


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeVast:
    fake = new_fake_vast()
    monkeypatch.setattr(vastdb, "connect", fake.connect)
    return fake


@pytest.fixture
def vms(cluster: FakeVast, tmp_path: Path) -> Iterator[FakeVms]:
    with fake_vms(tmp_path, cluster.create_bucket) as server:
        yield server


def managed(tmp_path: Path, vms: FakeVms, **changes: object) -> Settings:
    management = {
        "vast_bucket": "tams-new",
        "vast_management_endpoint": f"https://{vms.address}",
        "vast_management_username": USERNAME,
        "vast_management_password": PASSWORD,
        "vast_bucket_owner": BUCKET_OWNER,
    }
    return make_settings(tmp_path, **{**VAST_SETTINGS, **management, **changes})


def test_provisioning_creates_the_bucket_as_a_database_view_once(vms: FakeVms, tmp_path: Path) -> None:
    first = provision_vast(managed(tmp_path, vms))
    assert "created bucket tams-new (VMS view), schema tams" in first
    assert all(f"table {name}" in first for name in TABLES)
    assert vms.creations() == [
        {
            "path": "/tams-new",
            "create_dir": True,
            "protocols": ["S3", "DATABASE"],
            "bucket": "tams-new",
            "bucket_owner": BUCKET_OWNER,
            "policy_id": 3,
        }
    ]
    assert provision_vast(managed(tmp_path, vms)).endswith("everything exists")
    assert len(vms.creations()) == 1, "an existing view is not created again"


def test_a_view_made_elsewhere_is_used_as_it_is(vms: FakeVms, cluster: FakeVast, tmp_path: Path) -> None:
    vms.views.append({"id": 9, "path": "/elsewhere", "bucket": "tams-new", "protocols": ["S3", "DATABASE"]})
    cluster.create_bucket("tams-new")
    creator = VmsBucketCreator(f"https://{vms.address}", USERNAME, PASSWORD, BUCKET_OWNER, VIEW_POLICY)
    assert creator.ensure_bucket("tams-new") is False
    assert vms.creations() == []


def test_path_and_tenant_are_settings(vms: FakeVms, tmp_path: Path) -> None:
    settings = managed(tmp_path, vms, vast_view_path="/databases/tams", vast_management_tenant="media")
    provision_vast(settings)
    assert vms.creations()[0]["path"] == "/databases/tams"
    assert {tenant for *_, tenant in vms.requests} == {"media"}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"vast_management_password": "wrong"}, "TAMS_VAST_MANAGEMENT_USERNAME / TAMS_VAST_MANAGEMENT_PASSWORD: VMS"),
        ({"vast_management_endpoint": f"127.0.0.1:{closed_port()}"}, "TAMS_VAST_MANAGEMENT_ENDPOINT: cannot reach"),
        ({"vast_management_endpoint": "http://vms.test"}, "TAMS_VAST_MANAGEMENT_ENDPOINT: http://vms.test: VMS is"),
        ({"vast_view_policy": "no-such-policy"}, "TAMS_VAST_VIEW_POLICY: VMS at 127.0.0.1:"),
        ({"vast_bucket_owner": "nobody"}, "TAMS_VAST_BUCKET_OWNER / TAMS_VAST_VIEW_POLICY: VMS at 127.0.0.1:"),
    ],
)
def test_vms_errors_name_the_setting_in_one_line(
    vms: FakeVms, cluster: FakeVast, tmp_path: Path, changes: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigurationError) as error:
        provision_vast(managed(tmp_path, vms, **changes))
    assert str(error.value).startswith(named) and "\n" not in str(error.value)
    assert "tams-new" not in cluster._buckets


def test_without_management_settings_a_missing_bucket_says_what_to_do(cluster: FakeVast, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"create it in VMS .* or set TAMS_VAST_MANAGEMENT_ENDPOINT"):
        provision_vast(make_settings(tmp_path, **{**VAST_SETTINGS, "vast_bucket": "tams-new"}))


@pytest.mark.parametrize("missing", ["vast_management_username", "vast_management_password", "vast_bucket_owner"])
def test_management_needs_credentials_and_an_owner(tmp_path: Path, missing: str) -> None:
    given = {
        "vast_management_endpoint": "vms.test",
        "vast_management_username": USERNAME,
        "vast_management_password": PASSWORD,
        "vast_bucket_owner": BUCKET_OWNER,
    }
    with pytest.raises(ValueError, match=f"TAMS_{missing.upper()}"):
        Settings(data_dir=tmp_path, **{**VAST_SETTINGS, **given, missing: None})
