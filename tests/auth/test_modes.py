"""The four credential modes of docs/configuration.md, in their documented order, against the emulator."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from stopline import transport
from stopline.auth.credentials import AkSk
from stopline.auth.iam import IamPasswordToken
from stopline.client import core_from
from stopline.driver import Client
from stopline.emulator import Emulator, EmulatorServer, mock_huaweicloud
from stopline.emulator.seeds import DEMO_AK, DEMO_IAM, DEMO_PROJECT_ID, DEMO_SK, DEMO_TOKEN
from stopline.errors import ConfigurationError, UpstreamAuth
from stopline.models import Command, Outcome, parse_command
from stopline.settings import Settings, load_settings

from ..conftest import LogCapture, raising

IAM = {"iam_username": DEMO_IAM["username"], "iam_password": DEMO_IAM["password"],
       "iam_domain": DEMO_IAM["domain"], "project_id": DEMO_PROJECT_ID}


def stop(build_no: int) -> Command:
    return parse_command({"action": "stop_build", "job_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9", "build_no": build_no})


@pytest.fixture
def endpoints(served: tuple[Emulator, EmulatorServer]) -> Iterator[dict[str, str]]:
    url = served[1].url
    yield {"codearts_build_endpoint": url, "dataarts_endpoint": url, "iam_endpoint": url}


def test_first_match_wins_order() -> None:
    """AK/SK beats a token, a token beats IAM password, and none of them -> a clear error."""
    assert load_settings(ak="a", sk="s", auth_token="t", **IAM).credential_mode() == "aksk"
    assert load_settings(auth_token="t", **IAM).credential_mode() == "token"
    assert load_settings(**IAM).credential_mode() == "iam"
    assert Settings().credential_mode() is None
    with pytest.raises(ConfigurationError) as info:
        core_from(Settings())
    for name in ("HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "STOPLINE_AUTH_TOKEN", "STOPLINE_IAM_USERNAME",
                 "STOPLINE_IAM_PASSWORD", "STOPLINE_IAM_DOMAIN"):
        assert name in info.value.message
    with pytest.raises(ConfigurationError, match="HUAWEICLOUD_SDK_SK"):
        Settings(ak="only-ak").credential_mode()


def test_ready_token_mode_over_http(served: tuple[Emulator, EmulatorServer], endpoints: dict[str, str]) -> None:
    client = Client(core_from(load_settings(auth_token=DEMO_TOKEN, **endpoints)))
    assert client.execute(stop(1)).outcome is Outcome.STOPPED
    assert served[0].calls[-1]["auth"] == "token"
    client.close()
    bad = Client(core_from(load_settings(auth_token="MIInot-a-token", **endpoints)))
    with pytest.raises(UpstreamAuth) as info:
        raising(bad.execute(stop(2)))
    assert info.value.upstream is not None and info.value.upstream.error_code == "APIGW.0301"
    bad.close()


def test_aksk_with_security_token_agency_style(served: tuple[Emulator, EmulatorServer],
                                               endpoints: dict[str, str]) -> None:
    """Temporary keys: X-Security-Token is sent and signed; a wrong token is refused."""
    emulator, _ = served
    emulator.seed(credentials=[{"ak": "TEMPAK", "sk": "tempsk", "project_id": DEMO_PROJECT_ID,
                                "security_token": "sts-token-123"}])
    agency = AkSk("TEMPAK", SecretStr("tempsk"), DEMO_PROJECT_ID, SecretStr("sts-token-123"), kind="agency")
    client = Client(core_from(load_settings(**endpoints), agency=agency))
    assert client.execute(stop(3)).outcome is Outcome.STOPPED
    client.close()
    wrong = AkSk("TEMPAK", SecretStr("tempsk"), DEMO_PROJECT_ID, SecretStr("other"), kind="agency")
    client = Client(core_from(load_settings(**endpoints), agency=wrong))
    with pytest.raises(UpstreamAuth):
        raising(client.execute(stop(4)))
    client.close()


def test_iam_password_32_concurrent_first_calls_make_one_token_request(
        served: tuple[Emulator, EmulatorServer], endpoints: dict[str, str]) -> None:
    """32 threads racing on a cold cache: exactly one POST /v3/auth/tokens."""
    emulator, _ = served
    client = Client(core_from(load_settings(**IAM, **endpoints)))
    barrier = threading.Barrier(32)
    outcomes: list[Outcome] = []

    def worker(n: int) -> None:
        barrier.wait()
        outcomes.append(client.execute(stop(1 + n % 10)).outcome)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(outcomes) == 32
    assert emulator.state.token_requests == 1
    assert [c["path"] for c in emulator.calls].count("/v3/auth/tokens") == 1
    assert all(c["auth"] == "token" for c in emulator.calls if c["path"] != "/v3/auth/tokens")
    client.close()


def test_token_refreshed_once_on_401() -> None:
    """A token the cloud stops accepting is fetched again once, and the call goes through."""
    with mock_huaweicloud("demo", fake_credentials=False) as cloud:
        client = Client(core_from(load_settings(**IAM)), transport=transport.current())
        client.execute(stop(1))
        cloud.state.revoke_tokens()
        assert client.execute(stop(2)).outcome is Outcome.STOPPED
        assert cloud.state.token_requests == 2
        assert [c["status"] for c in cloud.calls] == [201, 200, 401, 201, 200]
        client.close()


def test_token_cached_until_five_minutes_before_expiry() -> None:
    creds = IamPasswordToken("u", SecretStr("p"), "d", "http://iam", None, "cn-north-4")
    from datetime import UTC, datetime, timedelta

    from stopline.wire import RawReply

    def reply(minutes: int) -> RawReply:
        expires = (datetime.now(UTC) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return RawReply(201, {"x-subject-token": f"tok{minutes}"},
                        f'{{"token": {{"expires_at": "{expires}"}}}}'.encode())

    assert creds.accept(reply(60)) == "tok60" and creds.valid() == "tok60"
    assert creds.accept(reply(4)) == "tok4" and creds.valid() is None  # inside the 5-minute margin


def test_wrong_password_is_a_configuration_failure_without_the_password(
        endpoints: dict[str, str], log_lines: LogCapture) -> None:
    client = Client(core_from(load_settings(**{**IAM, "iam_password": "hunter2-wrong"}, **endpoints)))
    with pytest.raises(UpstreamAuth) as info:
        raising(client.execute(stop(1)))
    assert "hunter2-wrong" not in repr(info.value) and "hunter2-wrong" not in info.value.message
    assert info.value.status == 502
    client.close()


def test_secrets_never_in_reprs() -> None:
    s = Settings(ak=DEMO_AK, sk=DEMO_SK, auth_token="tok-secret", iam_password="pw-secret",
                 webhook_secrets="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=")
    text = repr(s) + str(s) + repr(core_from(s).credentials)
    for secret in (DEMO_SK, "tok-secret", "pw-secret", "c2VjcmV0LXNlY3JldC1zZWNyZXQ="):
        assert secret not in text
