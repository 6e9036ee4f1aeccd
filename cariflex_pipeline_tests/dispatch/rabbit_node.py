"""A RabbitMQ node of the tests' own, on its own ports and data folder, that a test may stop and start again.

The shared broker (127.0.0.1:5672) is never stopped: fault tests that need a broker restart (queued messages lost
with CitrineOS's transient queues) run against this one. Started with Debian's `rabbitmq-server`, which drops to
the `rabbitmq` user, so its folders belong to that user; no plugins; loopback only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class RabbitNode:
    """One RabbitMQ node: `start()`, `stop()`, `url`, `remove()`; its data survive a restart, transient queues
    do not. Its folder lies directly under /tmp: the `rabbitmq` user cannot enter pytest's (mode 700) folders."""

    def __init__(self) -> None:
        base = self.base = Path(tempfile.mkdtemp(prefix="cariflex-rabbit-"))
        self.port = _free_port()
        self.name = f"cariflex-fault-{uuid.uuid4().hex[:8]}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        for folder in ("mnesia", "log"):
            (base / folder).mkdir(parents=True, exist_ok=True)
        (base / "plugins").write_text("[].\n")
        (base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{self.port}\n")
        owner = pwd.getpwnam("rabbitmq")
        for path in (base, *base.rglob("*")):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        self._env = {**os.environ, "RABBITMQ_NODENAME": self.name, "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
                     "RABBITMQ_DIST_PORT": str(_free_port()), "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                     "RABBITMQ_LOG_BASE": str(base / "log"), "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "plugins"),
                     "RABBITMQ_PID_FILE": str(base / "pid")}

    def start(self, timeout: float = 60.0) -> RabbitNode:
        subprocess.run(["rabbitmq-server", "-detached"], env=self._env, check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if time.monotonic() > deadline:
                log = self.base / "log" / f"{self.name}.log"
                tail = log.read_text()[-2000:] if log.exists() else "(no log)"
                raise RuntimeError(f"RabbitMQ node {self.name} not listening on {self.port} after {timeout} s: {tail}")
            time.sleep(0.2)
        return self

    def remove(self) -> None:
        """Stop the node and delete its folder."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def stop(self) -> None:
        subprocess.run(["rabbitmqctl", "-n", self.name, "stop"], env=self._env, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.2)
