"""Which FHIR servers a request may make us call, and which paging links we may follow."""

from __future__ import annotations

import pytest

from cds_service.auth import Principal, fhir_server_allowed, same_base

BASE = "https://ehr.example.org/fhir"


def principal(*bases: str) -> Principal:
    return Principal(
        iss="https://ehr.example.org",
        sub=None,
        jti="j",
        tenant=None,
        fhir_servers=bases or (BASE,),
    )


@pytest.mark.parametrize(
    "server",
    [
        BASE,
        BASE + "/",
        "HTTPS://EHR.Example.ORG/fhir",
        "https://ehr.example.org:443/fhir",
        BASE + "/tenant-7",
    ],
)
def test_pinned_server_is_allowed(server: str):
    assert fhir_server_allowed(principal(), server, auth_disabled_allowlist=[])


@pytest.mark.parametrize(
    "server",
    [
        "https://other-ehr.example.net/fhir",
        "https://ehr.example.org.evil.com/fhir",
        "https://ehr.example.org/fhir-other",
        "https://ehr.example.org/FHIR",  # paths are case-sensitive
        "https://ehr.example.org/",
        "https://ehr.example.org:8443/fhir",
        "https://ehr.example.org@evil.com/fhir",
        "https://evil.com\\@ehr.example.org/fhir",
        "https://ehr.example.org/fhir/../admin",
        "https://ehr.example.org/fhir/%2e%2e/admin",
        "https://ehr.example.org/fhir/%252e%252e/admin",
        "https://ehr.example.org/fhir/x%2F..%2F..%2Fadmin",
        "https://ehr.example.org/fhir/..;/admin",
        "http://ehr.example.org/fhir",  # downgrade to http
        "https://ehr.example.org/fhir?x=1",
        "https://ehr.example.org/fhir#frag",
        "file:///etc/passwd",
        "",
    ],
)
def test_server_not_under_a_pinned_base_is_refused(server: str):
    assert not fhir_server_allowed(principal(), server, auth_disabled_allowlist=[])


def test_http_off_loopback_is_refused_even_when_pinned():
    pinned_http = principal("http://ehr.example.org/fhir")

    assert not fhir_server_allowed(
        pinned_http, "http://ehr.example.org/fhir", auth_disabled_allowlist=[]
    )


def test_http_on_loopback_is_allowed_when_pinned():
    local = principal("http://127.0.0.1:8081/fhir")

    assert fhir_server_allowed(local, "http://127.0.0.1:8081/fhir", auth_disabled_allowlist=[])


def test_a_principal_is_held_to_its_own_pins_not_the_dev_allowlist():
    assert not fhir_server_allowed(
        principal(),
        "http://127.0.0.1:8081/fhir",
        auth_disabled_allowlist=["http://127.0.0.1:8081/fhir"],
    )


@pytest.mark.parametrize(
    "server",
    [
        "http://127.0.0.1:8081/fhir",
        "http://127.8.9.10/fhir",
        "http://localhost:8081/fhir",
        "http://LOCALHOST/fhir",
        "http://[::1]:8081/fhir",
    ],
)
def test_auth_disabled_with_no_allowlist_reaches_loopback_only(server: str):
    assert fhir_server_allowed(None, server, auth_disabled_allowlist=[])


@pytest.mark.parametrize(
    "server",
    [
        BASE,
        "http://10.0.0.5/fhir",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost.evil.com/fhir",
        "http://127.0.0.1.nip.io/fhir",
        "http://0.0.0.0/fhir",
    ],
)
def test_auth_disabled_with_no_allowlist_refuses_everything_else(server: str):
    assert not fhir_server_allowed(None, server, auth_disabled_allowlist=[])


def test_auth_disabled_with_an_allowlist_allows_only_what_it_lists():
    allow = ["https://test-fhir.example.org/r4"]

    assert fhir_server_allowed(
        None, "https://test-fhir.example.org/r4", auth_disabled_allowlist=allow
    )
    assert not fhir_server_allowed(
        None, "https://test-fhir.example.org/r4-other", auth_disabled_allowlist=allow
    )
    assert not fhir_server_allowed(None, "http://127.0.0.1/fhir", auth_disabled_allowlist=allow)


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (BASE + "?_getpages=abc&_getpagesoffset=50", True),
        (BASE + "/Observation?patient=123&_page=2", True),
        ("https://ehr.example.org/fhir-next?page=2", False),
        ("https://cdn.ehr.example.org/fhir?page=2", False),
        ("http://ehr.example.org/fhir?page=2", False),
        ("https://ehr.example.org/other/fhir?page=2", False),
        ("/fhir?page=2", False),
    ],
)
def test_same_base_keeps_paging_links_on_the_pinned_server(link: str, expected: bool):
    assert same_base(link, BASE) is expected
