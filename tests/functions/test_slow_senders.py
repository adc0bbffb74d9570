"""Slow senders (issue 12, section 14): 20 connections that dribble a byte a second into their headers
or bodies, for a bounded 6 s, while normal signed requests arrive. ASGI mode (uvicorn: one event loop,
no thread per connection) serves every normal request; Flask mode (gunicorn, a thread per connection)
is starved, which is why `stopline dev` and the README's deploy commands serve ASGI. Both figures print."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import httpx

from stopline.emulator import Emulator
from stopline.emulator.seeds import DEMO_PROJECT_ID, demo_environment

from .harness import SECRET, FunctionProcess, signed_post, start_all

JOB = "4444aaaa2222bbbb3333cccc4444dddd"
SLOW, NORMAL, ATTACK_S = 20, 6, 6.0


def dribble(port: int, into_body: bool, stop: threading.Event) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=ATTACK_S + 5) as sock:
            head = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            if into_body:
                sock.sendall(head + b"Content-Length: 100000\r\n\r\n")
            else:
                sock.sendall(head[:20])
            while not stop.wait(1.0):
                sock.sendall(b"x" if into_body else b"X-Slow: y\r\n"[:1])
    except OSError:
        pass  # the server gave up on us: fine


def served_during_attack(proc: FunctionProcess) -> int:
    """How many of NORMAL concurrent signed requests, sent once the attack is under way, are answered
    while it lasts. The attack holds its connections for ATTACK_S; a server that gives each connection a
    thread has none left, so its normal requests wait for the attack to end and time out first."""
    stop = threading.Event()
    attackers = [threading.Thread(target=dribble, args=(proc.port, i % 2 == 0, stop)) for i in range(SLOW)]
    for t in attackers:
        t.start()
    time.sleep(0.5)
    answered: list[bool] = []

    def normal(n: int) -> None:
        try:
            reply = signed_post(proc.url, {"action": "stop_build", "job_id": JOB, "build_no": n + 1},
                                timeout=ATTACK_S - 1.5)
            answered.append(reply.status_code == 200)
        except httpx.HTTPError:  # a timeout is exactly what is being counted
            answered.append(False)

    senders = [threading.Thread(target=normal, args=(n,)) for n in range(NORMAL)]
    try:
        for t in senders:
            t.start()
        for t in senders:
            t.join()
    finally:
        stop.set()
        for t in attackers:
            t.join()
    return sum(answered)


def test_asgi_serves_everyone_while_slow_senders_dribble(tmp_path: Path) -> None:
    emulator = Emulator().seed("demo")
    emulator.seed(build_tasks=[{"job_id": JOB, "project_id": DEMO_PROJECT_ID,
                                "builds": [{"build_no": n} for n in range(1, 20)]}])
    server = emulator.serve()
    env = {**demo_environment(server.url), "STOPLINE_WEBHOOK_SECRETS": SECRET}
    asgi, flask = start_all([FunctionProcess("webhook", True, env, tmp_path / "asgi.log"),
                             FunctionProcess("webhook", False, env, tmp_path / "flask.log")])
    try:
        asgi_served = served_during_attack(asgi)
        flask_served = served_during_attack(flask)
        print(f"\nslow senders ({SLOW} connections, a byte a second): asgi served {asgi_served}/{NORMAL}, "
              f"flask served {flask_served}/{NORMAL}")
        assert asgi_served == NORMAL
    finally:
        asgi.stop()
        flask.stop()
        server.stop()
