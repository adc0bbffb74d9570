"""Real Redis deployments on 127.0.0.1, from Debian's redis-server: TLS (certificates from trustme), a
3-master cluster (``redis-cli --cluster create``), and a master behind one sentinel. Each is started in
a temporary folder and stopped by pid."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from stopline.cli.devstack import port_free

from .conftest import stop_process, wait_port


def ports(n: int, *, bus: bool = False) -> list[int]:
    """``n`` free ports below 50000 (a cluster node also needs port + 10000 for its bus)."""
    found: list[int] = []
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        start = 20000 + int(probe.getsockname()[1]) % 25000
    for port in range(start, 50000):
        if port_free(port) and (not bus or port_free(port + 10000)):
            found.append(port)
            if len(found) == n:
                return found
    raise RuntimeError("no free ports")


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (scripts/test installs Debian's redis-server and redis-tools)")
    return found


class Node:
    """One redis-server process; ``args`` are its command-line options."""

    def __init__(self, workdir: Path, port: int, args: list[str], *, plain_port: bool = True,
                 config: Path | None = None) -> None:
        self.workdir, self.port, self.args, self.plain_port, self.config = workdir, port, args, plain_port, config
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        first = [str(self.config)] if self.config is not None else []
        base = ["--port", str(self.port)] if self.plain_port else []
        with (self.workdir / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen([_binary("redis-server"), *first, *base, "--bind", "127.0.0.1", "--dir",
                                          str(self.workdir), *self.args], stdout=log, stderr=subprocess.STDOUT)
        wait_port(self.port, process=self.proc)
        return self

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None


class Topology:
    """A running deployment: ``url`` is what STOPLINE_IDEMPOTENCY_URL says; ``restart`` restarts the
    node that holds data (all masters for a cluster), one at a time."""

    def __init__(self, name: str, url: str, nodes: list[Node], data: list[Node]) -> None:
        self.name, self.url, self.nodes, self.data = name, url, nodes, data

    def restart(self) -> None:
        for node in self.data:
            node.stop()
            node.start()

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()


PERSIST = ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]


def tls(workdir: Path) -> Topology:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    workdir.mkdir(parents=True, exist_ok=True)
    cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
    ca.cert_pem.write_to_path(str(workdir / "ca.pem"))
    (port,) = ports(1)
    node = Node(workdir, port, ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(workdir / "cert.pem"),
                                "--tls-key-file", str(workdir / "key.pem"), "--tls-ca-cert-file",
                                str(workdir / "ca.pem"), "--tls-auth-clients", "no", *PERSIST],
                plain_port=False).start()
    return Topology("tls", f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={workdir / 'ca.pem'}", [node], [node])


def cluster(workdir: Path) -> Topology:
    chosen = ports(3, bus=True)
    nodes = [Node(workdir / str(p), p, ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                        "--cluster-node-timeout", "5000", *PERSIST]).start() for p in chosen]
    subprocess.run([_binary("redis-cli"), "--cluster", "create", *(f"127.0.0.1:{p}" for p in chosen),
                    "--cluster-replicas", "0", "--cluster-yes"], check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        states = [subprocess.run([_binary("redis-cli"), "-p", str(p), "cluster", "info"], capture_output=True,
                                 text=True).stdout for p in chosen]
        if all("cluster_state:ok" in s for s in states):
            break
        time.sleep(0.2)
    else:
        raise RuntimeError("the cluster did not become ready")
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in chosen)
    return Topology("cluster", url, nodes, nodes)


def sentinel(workdir: Path) -> Topology:
    master_port, sentinel_port = ports(2)
    master = Node(workdir / "master", master_port, PERSIST).start()
    (workdir / "sentinel").mkdir(parents=True, exist_ok=True)
    config = workdir / "sentinel" / "sentinel.conf"
    config.write_text(f"sentinel monitor stopline 127.0.0.1 {master_port} 1\n"
                      "sentinel down-after-milliseconds stopline 60000\n")
    watcher = Node(workdir / "sentinel", sentinel_port, ["--sentinel"], config=config).start()
    return Topology("sentinel", f"redis+sentinel://127.0.0.1:{sentinel_port}/stopline/0", [master, watcher],
                    [master])


def persistent(workdir: Path) -> Topology:
    (port,) = ports(1)
    node = Node(workdir, port, PERSIST).start()
    return Topology("persistent", f"redis://127.0.0.1:{port}/0", [node], [node])


TOPOLOGIES = {"tls": tls, "cluster": cluster, "sentinel": sentinel, "persistent": persistent}
