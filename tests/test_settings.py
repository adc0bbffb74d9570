"""Settings: defaults of docs/configuration.md, comma lists, and errors that name the variable."""

from __future__ import annotations

import pytest

from stopline.endpoints import Endpoints
from stopline.errors import ConfigurationError
from stopline.settings import DEFAULT_NOT_RUNNING_CODES, load_settings


def test_defaults() -> None:
    s = load_settings()
    assert (s.region, s.timeout_s, s.max_attempts, s.webhook_tolerance_s, s.idempotency_url,
            s.idempotency_ttl_s, s.log_level, s.build_stop_api) == (
        "cn-north-4", 10.0, 4, 300, "memory://", 3600, "INFO", "auto")
    assert s.allowed_actions == ("stop_build", "delete_build_task", "stop_dataarts_job", "stop_pipeline_run")
    assert s.not_running_codes == DEFAULT_NOT_RUNNING_CODES and not s.allow_unsigned and not s.dry_run


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOPLINE_ALLOWED_ACTIONS", "stop_build, stop_dataarts_job")
    monkeypatch.setenv("STOPLINE_NOT_RUNNING_CODES", "A.1,B.2")
    monkeypatch.setenv("STOPLINE_WEBHOOK_SECRETS", "whsec_YWJj,plain-secret")
    monkeypatch.setenv("STOPLINE_DRY_RUN", "1")
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", "p1")
    s = load_settings()
    assert s.allowed_actions == ("stop_build", "stop_dataarts_job") and s.not_running_codes == ("A.1", "B.2")
    assert [x.get_secret_value() for x in s.webhook_secrets] == ["whsec_YWJj", "plain-secret"]
    assert s.dry_run and s.project_id == "p1"


def test_values_are_normalised_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    """What deployment templates really produce: a lower-case level, an empty optional variable, a trailing
    slash, blanks between commas -- read as the documented value, not refused and not kept verbatim."""
    for name, value in {"STOPLINE_LOG_LEVEL": "warning", "STOPLINE_CODEARTS_PROJECT_ID": "", "STOPLINE_AUDIT_URL": "",
                        "STOPLINE_CODEARTS_BUILD_ENDPOINT": "http://127.0.0.1:8790/",
                        "STOPLINE_GITLAB_TOKENS": " one, ,two ,", "STOPLINE_ALLOWED_JOB_IDS": ""}.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert (s.log_level, s.codearts_project_id, s.audit_url, s.codearts_build_endpoint) == (
        "WARNING", None, None, "http://127.0.0.1:8790")
    assert [t.get_secret_value() for t in s.gitlab_tokens] == ["one", "two"] and s.allowed_job_ids == ()
    topic = "smn://urn:smn:cn-north-4:0b5a6cd3d0ab4e7f93aab04d8dfb1a71:stopline-audit"
    assert load_settings(audit_url=topic).audit_url == topic


@pytest.mark.parametrize(("name", "value"), [
    ("STOPLINE_CODEARTS_PROJECT_ID", "not-32-letters"), ("STOPLINE_AUDIT_URL", "smn://not-a-topic"),
    ("STOPLINE_SMN_ENDPOINT", "smn.example.com"),
])
def test_bad_optional_values_name_the_variable(name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        load_settings()


def test_a_malformed_region_or_project_says_what_it_should_be(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STOPLINE_REGION", "CN North 4")
    monkeypatch.setenv("STOPLINE_CODEARTS_PROJECT_ID", "my-project")
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert "STOPLINE_REGION: expected a region id such as cn-north-4" in info.value.message
    assert "STOPLINE_CODEARTS_PROJECT_ID: expected the CodeArts project's id: 32 letters/digits" in info.value.message
    assert "pattern" not in info.value.message


@pytest.mark.parametrize(("name", "value"), [
    ("STOPLINE_TIMEOUT_S", "soon"), ("STOPLINE_MAX_ATTEMPTS", "0"), ("STOPLINE_BUILD_STOP_API", "v2"),
    ("STOPLINE_ALLOWED_ACTIONS", "stop_build,launch"), ("STOPLINE_IDEMPOTENCY_URL", "postgres://x"),
    ("STOPLINE_CODEARTS_BUILD_ENDPOINT", "ftp://x"), ("STOPLINE_LOG_LEVEL", "LOUD"),
])
def test_bad_values_name_the_variable(name: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        load_settings()
    assert name in info.value.message and value not in info.value.message.replace(name, "")


def test_region_endpoints_and_overrides() -> None:
    e = Endpoints.for_region("ap-southeast-3")
    assert e.codearts_build == "https://cloudbuild-ext.ap-southeast-3.myhuaweicloud.com"
    assert e.dataarts == "https://dayu-dlf.ap-southeast-3.myhuaweicloud.com"
    assert e.iam == "https://iam.ap-southeast-3.myhuaweicloud.com"
    assert Endpoints.for_region("eu-west-101").iam == "https://iam.eu-west-101.myhuaweicloud.eu"
    assert Endpoints.for_region("cn-east-4").dataarts == "https://dayu.cn-east-4.myhuaweicloud.com"
    assert Endpoints.for_region("cn-north-4", dataarts="http://127.0.0.1:1/").dataarts == "http://127.0.0.1:1"


def test_tls_verification_stays_on_while_any_endpoint_is_https() -> None:
    """The client skips loading the trust store only when every endpoint is plain HTTP (the emulator); an
    https SMN or FunctionGraph endpoint beside plain-HTTP others must still be verified."""
    from stopline.endpoints import Endpoints

    local = "http://127.0.0.1:8790"
    plain = {name: local for name in ("codearts_build", "dataarts", "iam", "codearts_pipeline", "smn", "functiongraph")}
    assert not Endpoints.for_region("cn-north-4", **plain).uses_tls()
    for name in plain:
        assert Endpoints.for_region("cn-north-4", **{**plain, name: None}).uses_tls(), name
