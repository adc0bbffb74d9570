"""Service base URLs per region (huaweicloud-apis.md section 1), each overridable from settings."""

from __future__ import annotations

from dataclasses import dataclass

# Hosts that do not follow the "<service>.<region>.myhuaweicloud.com" pattern, as the SDK region classes list them.
_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("dataarts", "cn-east-4"): "https://dayu.cn-east-4.myhuaweicloud.com",
    ("iam", "eu-west-101"): "https://iam.eu-west-101.myhuaweicloud.eu",
}
_PREFIX = {"codearts_build": "cloudbuild-ext", "dataarts": "dayu-dlf", "iam": "iam"}


@dataclass(frozen=True, slots=True)
class Endpoints:
    codearts_build: str
    dataarts: str
    iam: str

    @classmethod
    def for_region(
        cls,
        region: str,
        *,
        codearts_build: str | None = None,
        dataarts: str | None = None,
        iam: str | None = None,
    ) -> Endpoints:
        def pick(service: str, override: str | None) -> str:
            if override:
                return override.rstrip("/")
            return _EXCEPTIONS.get((service, region), f"https://{_PREFIX[service]}.{region}.myhuaweicloud.com")

        return cls(pick("codearts_build", codearts_build), pick("dataarts", dataarts), pick("iam", iam))

    def uses_tls(self) -> bool:
        """Whether any base URL is https (false only for the emulator or a local plain-HTTP proxy)."""
        return any(url.startswith("https://") for url in (self.codearts_build, self.dataarts, self.iam))
