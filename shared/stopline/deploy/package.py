"""The FunctionGraph package: built by ``scripts/package fg``, zipped so the same files give the same bytes.

The zip is reproducible (entries sorted, one fixed timestamp, fixed permissions), so its sha256 names
the package's content: ``stopline deploy`` records it on each function and skips the upload when it
matches. FunctionGraph's own ``digest`` cannot serve: which bytes it hashes is not documented.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from stopline.deploy.triggers import DeployFileError

MAX_UPLOAD = 50 * 1024 * 1024
"""FunctionGraph takes a zip of at most 50 MB through the API (FSS.1071 above)."""
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Package:
    folder: Path
    data: bytes
    sha256: str
    files: frozenset[str]
    unpacked: int

    @cached_property
    def encoded(self) -> str:
        """The zip as base64, the form the API takes it in: encoded once, however many functions upload it."""
        return base64.b64encode(self.data).decode()

    def describe(self) -> str:
        return (f"{len(self.files)} files, {self.unpacked / 1e6:.1f} MB unpacked, zip {len(self.data) / 1e6:.1f} MB, "
                f"sha256 {self.sha256[:12]}")


def build(checkout: Path, out: Path) -> None:
    """Run ``scripts/package fg OUT`` of ``checkout``; its progress goes to stderr as it comes."""
    script = checkout / "scripts" / "package"
    if not script.is_file():
        raise DeployFileError(f"no scripts/package beside {checkout / 'serverless.yml'}: stopline deploy builds the "
                              "package with a stopline checkout's script; run it there, or build the folder "
                              "code.codeUri names yourself and pass --no-build")
    done = subprocess.run(["bash", str(script), "fg", str(out)], cwd=checkout, stdout=sys.stderr, check=False)
    if done.returncode != 0:
        raise DeployFileError(f"scripts/package fg failed (exit {done.returncode}); its messages are above")


def zip_folder(folder: Path) -> Package:
    """``folder``'s files, zipped reproducibly."""
    if not folder.is_dir():
        raise DeployFileError(f"{folder}: no package folder here (build it with `bash scripts/package fg`, or drop "
                              "--no-build)")
    paths = sorted(p for p in folder.rglob("*") if p.is_file())  # bytecode included: built for the runtime
    buffer = io.BytesIO()
    unpacked = 0
    names = []
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in paths:
            name = path.relative_to(folder).as_posix()
            info = zipfile.ZipInfo(name, _EPOCH)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            unpacked += len(data)
            archive.writestr(info, data)
            names.append(name)
    data = buffer.getvalue()
    if len(data) > MAX_UPLOAD:
        raise DeployFileError(f"{folder}: the zip is {len(data) / 1e6:.1f} MB, over the 50 MB FunctionGraph takes "
                              "through its API")
    return Package(folder, data, hashlib.sha256(data).hexdigest(), frozenset(names), unpacked)
