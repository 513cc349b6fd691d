"""The client factory and its inputs, in process: CA bundles, endpoints, cache keys, botocore config."""

from __future__ import annotations

import pytest

from label_studio_cortx.connection import ca_bundle, endpoints
from label_studio_cortx.connection.client import ConnectionConfig, get_client, get_presign_client
from label_studio_cortx.connection.config import botocore_config


@pytest.fixture(scope="module")
def ca_pem():
    import trustme

    return trustme.CA().cert_pem.bytes().decode()


def test_ca_bundle_is_rebuilt_from_a_collapsed_paste(ca_pem):
    assert ca_bundle.normalize(ca_pem.replace("\n", " ")) == ca_bundle.normalize(ca_pem)
    assert ca_bundle.normalize(ca_pem.replace("\n", "")) == ca_bundle.normalize(ca_pem)
    assert ca_bundle.normalize(ca_pem + ca_pem).count("BEGIN CERTIFICATE") == 2
    assert ca_bundle.normalize("  ") == ""


@pytest.mark.parametrize(
    "text, message",
    [
        ("hello", "not PEM"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "private key"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----", "X.509"),
    ],
)
def test_bad_ca_bundles_are_refused(text, message):
    with pytest.raises(ca_bundle.CABundleError, match=message):
        ca_bundle.normalize(text)


def test_bundle_file_is_written_once_per_content(ca_pem):
    bundle = ca_bundle.normalize(ca_pem)
    path = ca_bundle.bundle_path(bundle)
    assert path == ca_bundle.bundle_path(bundle)
    assert open(path).read() == bundle


def test_origins_and_trusted_endpoints(settings):
    assert endpoints.origin("HTTPS://S3.Example.com/") == "https://s3.example.com:443"
    assert endpoints.origin("http://10.0.0.5:8000") == "http://10.0.0.5:8000"
    with pytest.raises(endpoints.EndpointError):
        endpoints.origin("ftp://s3.example.com")
    with pytest.raises(endpoints.EndpointError):
        endpoints.origin("s3.example.com")
    settings.CORTX_TRUSTED_ENDPOINTS = "https://s3.seagate.com, http://10.0.0.5:8000"
    assert endpoints.is_trusted("https://s3.seagate.com:443")
    assert endpoints.is_trusted("http://10.0.0.5:8000/")
    assert not endpoints.is_trusted("http://10.0.0.5:8001")
    assert not endpoints.needs_ssrf_guard("http://10.0.0.5:8000")
    assert endpoints.needs_ssrf_guard("http://10.0.0.6:8000")
    settings.SSRF_PROTECTION_ENABLED = False
    assert not endpoints.needs_ssrf_guard("http://10.0.0.6:8000")


def test_botocore_config_has_cortx_defaults(settings):
    settings.CORTX_TRUSTED_ENDPOINTS = ["http://10.0.0.5:8000"]
    settings.CORTX_CONNECT_TIMEOUT = 3
    settings.CORTX_READ_TIMEOUT = 20
    config = ConnectionConfig.build("http://10.0.0.5:8000", access_key_id="k", secret_access_key="s")
    boto = botocore_config(config.limits, path_style=config.force_path_style)
    assert boto.signature_version == "s3v4"
    assert boto.s3 == {"addressing_style": "path"}
    assert boto.request_checksum_calculation == "when_required"
    assert boto.response_checksum_validation == "when_required"
    assert (boto.connect_timeout, boto.read_timeout) == (3.0, 20.0)
    assert boto.retries["mode"] == "standard"
    assert config.region_name == "us-east-1"
    assert "secret_access_key" not in repr(config) and "'s'" not in repr(config)


def test_verify_follows_bundle_admin_default_and_explicit_opt_out(settings, ca_pem, tmp_path):
    settings.CORTX_TRUSTED_ENDPOINTS = ["https://10.0.0.5"]
    assert ConnectionConfig.build("https://10.0.0.5").verify is True
    with_bundle = ConnectionConfig.build("https://10.0.0.5", ca_bundle_pem=ca_pem)
    assert open(with_bundle.verify).read() == ca_bundle.normalize(ca_pem)
    settings.CORTX_DEFAULT_CA_BUNDLE = str(tmp_path / "ca.pem")
    assert ConnectionConfig.build("https://10.0.0.5").verify == str(tmp_path / "ca.pem")
    assert ConnectionConfig.build("https://10.0.0.5", verify_tls=False).verify is False


def test_clients_are_cached_per_configuration(settings, caplog):
    settings.CORTX_TRUSTED_ENDPOINTS = ["http://10.0.0.5:8000"]
    first = ConnectionConfig.build("http://10.0.0.5:8000", access_key_id="k", secret_access_key="s")
    same = ConnectionConfig.build("http://10.0.0.5:8000/", access_key_id="k", secret_access_key="s")
    other_secret = ConnectionConfig.build("http://10.0.0.5:8000", access_key_id="k", secret_access_key="s2")
    virtual = ConnectionConfig.build(
        "http://10.0.0.5:8000", access_key_id="k", secret_access_key="s", force_path_style=False
    )
    assert get_client(first) is get_client(same)
    assert get_client(first) is not get_client(other_secret)
    assert get_client(virtual).meta.config.s3 == {"addressing_style": "virtual"}
    # A changed admin setting changes the key too.
    settings.CORTX_READ_TIMEOUT = 7
    changed = ConnectionConfig.build("http://10.0.0.5:8000", access_key_id="k", secret_access_key="s")
    assert get_client(changed) is not get_client(first)
    assert get_client(changed).meta.config.read_timeout == 7


def test_new_clients_share_the_s3_model_the_app_parsed_at_start(settings, monkeypatch):
    """The app parsed botocore's S3 model when it started (``apps.ready``): a new client, of any connection and
    of the presign kind too, reads no model file and still works with its own credentials and endpoint."""
    import botocore.loaders

    settings.CORTX_TRUSTED_ENDPOINTS = ["http://10.0.0.7:8000"]
    reads = []
    real = botocore.loaders.JSONFileLoader.load_file
    monkeypatch.setattr(
        botocore.loaders.JSONFileLoader, "load_file", lambda self, path: reads.append(path) or real(self, path)
    )
    first = get_client(ConnectionConfig.build("http://10.0.0.7:8000", access_key_id="k1", secret_access_key="s1"))
    other = ConnectionConfig.build("http://10.0.0.7:8000", access_key_id="k2", secret_access_key="s2", region_name="US")
    second, presign = get_client(other), get_presign_client(other, "https://s3.example.com")
    assert reads == []
    assert first._request_signer._credentials.access_key == "k1"
    assert second._request_signer._credentials.access_key == "k2" and second.meta.region_name == "US"
    url = presign.generate_presigned_url("get_object", Params={"Bucket": "b", "Key": "k"})
    assert url.startswith("https://s3.example.com/b/k?") and "k2" in url


def test_insecure_tls_is_logged_and_can_be_forbidden(settings, caplog):
    settings.CORTX_TRUSTED_ENDPOINTS = ["https://10.0.0.5"]
    insecure = ConnectionConfig.build("https://10.0.0.5", verify_tls=False)
    with caplog.at_level("WARNING"):
        get_client(insecure)
    assert "does not verify TLS" in caplog.text
    settings.CORTX_ALLOW_INSECURE_TLS = False
    with pytest.raises(endpoints.EndpointError, match="CORTX_ALLOW_INSECURE_TLS"):
        get_client(ConnectionConfig.build("https://10.0.0.5", verify_tls=False, region_name="US"))


def test_presigned_urls_are_path_style_on_the_public_endpoint(settings):
    settings.CORTX_TRUSTED_ENDPOINTS = ["http://10.0.0.5:8000"]
    config = ConnectionConfig.build(
        "http://10.0.0.5:8000", access_key_id="k", secret_access_key="s", force_path_style=False
    )
    url = get_presign_client(config, "https://s3.public.example.com").generate_presigned_url(
        "get_object", Params={"Bucket": "photos", "Key": "a/b.jpg"}, ExpiresIn=60
    )
    assert url.startswith("https://s3.public.example.com/photos/a/b.jpg?")


def test_untrusted_private_endpoint_is_blocked_before_connecting(settings):
    settings.CORTX_TRUSTED_ENDPOINTS = []
    with pytest.raises(endpoints.EndpointError, match="CORTX_TRUSTED_ENDPOINTS"):
        get_client(ConnectionConfig.build("http://127.0.0.1:9"))


def test_store_failures_are_translated_once_logged_with_their_traceback_and_not_chained(caplog):
    from botocore.exceptions import ClientError

    from label_studio_cortx.connection.errors import StorageConnectionError, StorageError, translated

    reply = {"Error": {"Code": "SignatureDoesNotMatch", "Message": "<html>foreign page</html>"}}
    caplog.set_level("INFO", logger="label_studio_cortx.connection.errors")
    with pytest.raises(StorageConnectionError) as raised:
        with translated("http://user:pw@s3.example.com:8000", bucket="b", what="listing"):
            raise ClientError(reply, "ListObjectsV2")
    assert "secret access key is wrong" in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    (record,) = [r for r in caplog.records if "listing" in r.getMessage()]
    assert record.exc_info and isinstance(record.exc_info[1], ClientError)
    assert "pw" not in record.getMessage()

    # A domain error passes through untouched and is not logged again.
    caplog.clear()
    with pytest.raises(StorageError, match="^as it was$"):
        with translated("http://s3.example.com", what="listing"):
            raise StorageError("as it was")
    assert caplog.records == []


@pytest.mark.parametrize(
    "value",
    [
        "2026-12-03T17:37:29.000Z",
        "2026-12-03T17:37:29Z",
        "2026-12-03T17:37:29.123456+02:00",
        "Thu, 03 Dec 2026 17:37:29 GMT",
        "1764783449",
        1764783449,
        "2026-12-03",
    ],
)
def test_timestamps_parse_as_botocore_parses_them(value):
    from botocore.utils import parse_timestamp

    from label_studio_cortx.connection.config import parse_timestamp as fast

    parsed = fast(value)
    assert parsed == parse_timestamp(value) and parsed.utcoffset() == parse_timestamp(value).utcoffset()
