"""The dev dashboard: one dependency-free page the emulator serves at ``/``, polling the control API
once a second -- the demo's builds, DataArts jobs and instances and pipeline runs with their states; the
recent deliveries (each command's outcome, reason and verification, from the functions' log lines that
``stopline dev`` relays) and the pending retries among them; the audit events stopline published
(``stopline dev`` points its audit sink at the emulator's SMN); the FunctionGraph functions
``stopline deploy functiongraph`` created here; and the latest cloud calls. No build
step, no framework: a newcomer watches a cancel stop a build here."""

from __future__ import annotations

from stopline.emulator.replies import EmuReply


def page() -> EmuReply:
    """The page (``dashboard.html`` beside this module), read when asked for, so it is edited as HTML."""
    from importlib.resources import files

    html = files("stopline.emulator").joinpath("dashboard.html").read_bytes()
    return EmuReply(200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}, html)
