"""Service base URLs per region, each overridable from settings.

Most services follow ``https://<service>.<region>.myhuaweicloud.com``; CodeArts Pipeline does not: its
host differs by region (as the SDK's region table lists them), so it has a table of its own.
"""

from typing import NamedTuple

# Hosts that do not follow the "<service>.<region>.myhuaweicloud.com" pattern, as the SDK region classes list them.
_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("dataarts", "cn-east-4"): "https://dayu.cn-east-4.myhuaweicloud.com",
    ("iam", "eu-west-101"): "https://iam.eu-west-101.myhuaweicloud.eu",
}
_PREFIX = {"codearts_build": "cloudbuild-ext", "dataarts": "dayu-dlf", "iam": "iam",
           "codearts_pipeline": "cloudpipeline-ext", "smn": "smn", "functiongraph": "functiongraph"}
_PIPELINE_PREFIX = {
    **dict.fromkeys(("tr-west-1", "la-south-2"), "pipeline-external"),
    **dict.fromkeys(("af-north-1", "me-east-1", "af-south-1"), "pipeline"),
}
"""CodeArts Pipeline regions whose host is not ``cloudpipeline-ext.<region>``."""


class Endpoints(NamedTuple):
    codearts_build: str
    dataarts: str
    iam: str
    codearts_pipeline: str = ""
    smn: str = ""
    functiongraph: str = ""
    """FunctionGraph's management API: only ``stopline deploy functiongraph`` calls it."""

    @classmethod
    def for_region(
        cls,
        region: str,
        *,
        codearts_build: str | None = None,
        dataarts: str | None = None,
        iam: str | None = None,
        codearts_pipeline: str | None = None,
        smn: str | None = None,
        functiongraph: str | None = None,
    ) -> "Endpoints":
        def pick(service: str, override: str | None) -> str:
            if override:
                return override.rstrip("/")
            if service == "codearts_pipeline":
                return f"https://{_PIPELINE_PREFIX.get(region, _PREFIX[service])}.{region}.myhuaweicloud.com"
            return _EXCEPTIONS.get((service, region), f"https://{_PREFIX[service]}.{region}.myhuaweicloud.com")

        return cls(pick("codearts_build", codearts_build), pick("dataarts", dataarts), pick("iam", iam),
                   pick("codearts_pipeline", codearts_pipeline), pick("smn", smn),
                   pick("functiongraph", functiongraph))

    def uses_tls(self) -> bool:
        """Whether any base URL is https (false only for the emulator or a local plain-HTTP proxy)."""
        return any(url.startswith("https://") for url in self)
