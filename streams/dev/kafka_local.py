"""A local single-node Apache Kafka (KRaft) on 127.0.0.1 for development, demos and tests.

The broker is the real Apache Kafka from Maven Central: the package's pom
(``streams/resources/kafka/pom.xml``, written next to the cache) names it and Maven resolves it
with its runtime dependencies into a cache, once. The broker then runs on the machine's Java as
a background process whose pid, configuration and logs live in the data dir.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from streams.config import LOCAL_BROKER_ENV, Settings, load
from streams.dev.net import port_free
from streams.errors import CcmonError
from streams.packaged import kafka_pom
from streams.processes import alive

START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0

LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = ${sys:ccmon.kafka.log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.raft.name = org.apache.kafka.raft
logger.raft.level = WARN
"""


def new_cluster_id() -> str:
    """A random KRaft cluster id, as Kafka's own ``Uuid.randomUuid`` makes them.

    Like Kafka, it never starts with ``-``: 1 id in 64 would, and ``kafka-storage format -t``
    would read it as an option and fail.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _configured() -> Settings:
    return load(only=LOCAL_BROKER_ENV)


def _say(message: str) -> None:
    print(f"ccmon kafka: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class LocalKafka:
    port: int = 9092
    #: the defaults come from the configuration (CCMON_DATA_DIR/kafka, CCMON_KAFKA_*) when made
    data_dir: Path = field(default_factory=lambda: Path(_configured().data_dir) / "kafka")
    cache_dir: Path = field(default_factory=lambda: Path(_configured().local_broker.cache_dir))
    version: str = field(default_factory=lambda: _configured().local_broker.version)
    heap: str = field(default_factory=lambda: _configured().local_broker.heap)
    #: with a port: also a SASL_SSL listener there (SCRAM-SHA-512, a self-signed certificate for
    #: 127.0.0.1 whose PEM is ``ca_file``), for these (user, password) pairs, set when formatting
    sasl_port: int | None = None
    scram_users: tuple[tuple[str, str], ...] = ()

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def lib_dir(self) -> Path:
        return self.cache_dir / f"kafka-{self.version}" / "lib"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ---- installation ----------------------------------------------------------------------
    def resolve(self) -> Path:
        """Resolve the broker's jars with Maven (cached after the first run)."""
        marker = self.lib_dir / ".complete"
        if marker.exists():
            return self.lib_dir
        mvn = shutil.which("mvn")
        if mvn is None:
            raise CcmonError(
                "Maven (mvn) not found: install it (apt-get install -y maven) to fetch Apache Kafka"
            )
        if shutil.which("java") is None:
            raise CcmonError("Java not found: install a JDK 17+ (apt-get install -y openjdk-17-jre-headless)")
        _say(
            f"resolving Apache Kafka {self.version} and its dependencies from Maven Central "
            "(first run only)..."
        )
        self.lib_dir.mkdir(parents=True, exist_ok=True)
        pom = self.lib_dir.parent / "pom.xml"  # Maven needs a file; the package may be a wheel or a zip
        pom.write_text(kafka_pom(), encoding="utf-8")
        started = time.monotonic()
        proc = subprocess.run(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={self.lib_dir}",
                f"-Dkafka.version={self.version}",
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise CcmonError(f"Maven could not resolve Apache Kafka {self.version}: {' | '.join(tail)}")
        jars = list(self.lib_dir.glob("*.jar"))
        marker.write_text(f"{len(jars)} jars\n")
        _say(f"resolved {len(jars)} jars in {time.monotonic() - started:.0f} s into {self.lib_dir}")
        return self.lib_dir

    # ---- process ---------------------------------------------------------------------------
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def accepts_clients(self, timeout: float = 1.0) -> bool:
        """True when the broker answers a Kafka ApiVersions request on the port."""
        request = b"\x00\x12\x00\x00" + b"\x00\x00\x00\x01" + b"\x00\x05ccmon"  # ApiVersions v0
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(len(request).to_bytes(4, "big") + request)
                head = sock.recv(4)
                if len(head) < 4:
                    return False
                body = sock.recv(int.from_bytes(head, "big"))
                return len(body) >= 6 and body[4:6] == b"\x00\x00"  # correlation id, then error 0
        except OSError:
            return False

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    def _tls(self) -> list[str]:
        """A self-signed PKCS12 keystore for 127.0.0.1 (made once, with keytool) and its listener settings."""
        tls = self.data_dir / "tls"
        store, secret_file = tls / "broker.p12", tls / "keystore-password"
        if store.exists():
            secret = secret_file.read_text()
        else:
            tls.mkdir(parents=True, exist_ok=True)
            secret = uuid.uuid4().hex
            secret_file.touch(mode=0o600)  # private before the secret is in it
            secret_file.write_text(secret)
            keytool = shutil.which("keytool") or str(
                Path(os.path.realpath(shutil.which("java") or "java")).parent / "keytool"
            )
            for args in (
                [
                    "-genkeypair",
                    "-alias",
                    "broker",
                    "-keyalg",
                    "RSA",
                    "-keysize",
                    "2048",
                    "-validity",
                    "3650",
                    "-dname",
                    "CN=127.0.0.1",
                    "-ext",
                    "SAN=ip:127.0.0.1,dns:localhost",
                ],
                ["-exportcert", "-rfc", "-alias", "broker", "-file", str(self.ca_file)],
            ):
                proc = subprocess.run(
                    [
                        keytool,
                        *args,
                        "-keystore",
                        str(store),
                        "-storetype",
                        "PKCS12",
                        "-storepass",
                        secret,
                        "-noprompt",
                    ],
                    capture_output=True,
                    text=True,
                )
                if proc.returncode != 0:
                    raise CcmonError(
                        f"keytool failed making the broker's TLS certificate: {proc.stderr.strip()}"
                    )
        return [
            f"listener.name.sasl_ssl.ssl.keystore.location={store}",
            "listener.name.sasl_ssl.ssl.keystore.type=PKCS12",
            f"listener.name.sasl_ssl.ssl.keystore.password={secret}",
            f"listener.name.sasl_ssl.ssl.key.password={secret}",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        ]

    def _write_config(self) -> Path:
        logs = self.data_dir / "logs"
        props = self.data_dir / "server.properties"
        sasl = f",SASL_SSL://127.0.0.1:{self.sasl_port}" if self.sasl_port else ""
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}{sasl}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}{sasl}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL",
                    *(self._tls() if self.sasl_port else []),
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={logs}",
                    "num.partitions=8",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=8",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=4",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        (self.data_dir / "log4j2.properties").write_text(LOG4J2)
        return props

    def _classpath(self) -> str:
        return str(self.lib_dir / "*")

    def start(self) -> str:
        """Start the broker unless it runs; return once it accepts clients."""
        if self.pid() is not None and self.accepts_clients():
            return f"already running (pid {self.pid()}) on {self.address}"
        java = shutil.which("java")
        if java is None:
            raise CcmonError("Java not found: install a JDK 17+ (apt-get install -y openjdk-17-jre-headless)")
        for port in (self.port, self.controller_port, *([self.sasl_port] if self.sasl_port else [])):
            if not port_free(port):
                raise CcmonError(
                    f"port {port} on 127.0.0.1 is in use by another process; "
                    f"stop it or choose another with --port"
                )
        self.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self._write_config()
        if not (self.data_dir / "logs" / "meta.properties").exists():
            cluster_id = new_cluster_id()
            formatted = subprocess.run(
                [
                    java,
                    "-cp",
                    self._classpath(),
                    f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
                    f"-Dccmon.kafka.log={self.log_file}",
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                    *(
                        arg
                        for user, password in self.scram_users
                        for arg in ("--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]")
                    ),
                ],
                capture_output=True,
                text=True,
            )
            if formatted.returncode != 0:
                raise CcmonError(
                    f"formatting Kafka storage in {self.data_dir} failed: "
                    f"{(formatted.stdout + formatted.stderr).strip().splitlines()[-1:]}"
                )
        _say(f"starting Apache Kafka {self.version} (KRaft) on {self.address}, logs in {self.log_file}")
        out = open(self.data_dir / "kafka.out", "ab")
        proc = subprocess.Popen(
            [
                java,
                f"-Xmx{self.heap}",
                f"-Xms{self.heap}",
                "-XX:+UseG1GC",
                "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
                f"-Dccmon.kafka.log={self.log_file}",
                "-cp",
                self._classpath(),
                "kafka.Kafka",
                str(props),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.pid_file.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + START_TIMEOUT_S
        started = time.monotonic()
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                self.pid_file.unlink(missing_ok=True)
                raise CcmonError(
                    f"Kafka exited during start-up (code {proc.returncode}); see {self.log_file}"
                )
            if self.accepts_clients():
                ready_s = time.monotonic() - started
                return f"running (pid {proc.pid}) on {self.address}, ready after {ready_s:.1f} s"
            time.sleep(0.2)
        raise CcmonError(f"Kafka did not accept clients within {START_TIMEOUT_S:.0f} s; see {self.log_file}")

    def stop(self) -> str:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return "not running"
        os.killpg(pid, signal.SIGTERM) if _is_group_leader(pid) else os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
            while self.pid() is not None:
                time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return f"stopped (pid {pid})"

    def status(self) -> tuple[bool, str]:
        pid = self.pid()
        if pid is None:
            return False, "not running"
        if self.accepts_clients():
            return True, f"running (pid {pid}) on {self.address}"
        return False, f"process {pid} exists but does not answer on {self.address}"


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False
