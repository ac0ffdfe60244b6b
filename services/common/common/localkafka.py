"""A real, throwaway Kafka broker for development and tests, run from Apache Kafka's jars.

Integration tests run against a real broker, never a fake, and fail rather than skip when
it is missing, so the project brings its own: a single-node KRaft broker on the local JVM
with free ports and its own data directory, so parallel test sessions and a dev stack
never collide. The jars come from Maven Central once, into a per-user cache outside the
repository. ``python -m common.localkafka --help`` lists the command-line uses.
"""

from __future__ import annotations

import argparse
import atexit
import base64
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from kafka import KafkaAdminClient
from kafka.errors import CoordinatorNotAvailableError, KafkaError, TopicAlreadyExistsError

from common import lifeline
from common.topics import CHANGELOG_CONFIGS, all_topic_names, changelog_topic_names, compacted_topic_names

KAFKA_VERSION = "4.1.1"
BROKER_HEAP = "512m"
# A class-data archive no broker has mapped for this long is removed when another is shared.
ARCHIVE_UNUSED_DAYS = 30
# The JVM options Kafka's own start script gives a broker: G1 aiming at 20 ms pauses (the
# JVM's default goal is 200 ms, and every call that waits on the broker would wait through
# them), a heap of fixed size so that it is not grown and shrunk under load.
BROKER_JVM = (f"-Xms{BROKER_HEAP}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
              "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true")
_ARTIFACTS = (
    "org.apache.kafka:kafka_2.13:{kafka}",
    "org.apache.kafka:kafka-tools:{kafka}",  # ProducerPerformance, for benchmarks
    "org.apache.logging.log4j:log4j-slf4j2-impl:2.24.3",
    "org.apache.logging.log4j:log4j-core:2.24.3",
    # Kafka's published poms ask for slf4j-api 1.7, which cannot see log4j's slf4j2
    # binding and would drop every broker log line; Kafka's own distribution ships 2.0.
    "org.slf4j:slf4j-api:2.0.17",
)
_INSTALL_HINTS = {
    "java": "install a Java 17+ runtime, e.g. `apt-get install openjdk-17-jre-headless`",
    "mvn": "install Apache Maven, e.g. `apt-get install maven`",
}
_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:{controller}
log.dirs={data}
auto.create.topics.enable=false
num.partitions=4
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
# A worker killed inside a transaction holds its partitions' readers back until the
# coordinator aborts it: look for timed-out transactions every second, not every ten.
transaction.abort.timed.out.transaction.cleanup.interval.ms=1000
share.coordinator.state.topic.replication.factor=1
"""
# Everything to the console, which start() sends to broker.log: that file then also
# catches what the JVM prints before log4j is up (a bad classpath, an unsupported JVM).
_LOG4J2_PROPERTIES = """\
appender.console.type = Console
appender.console.name = console
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = console
"""


def cache_dir() -> Path:
    """Where downloaded jars are kept: per user, outside any checkout, shared by all."""
    if explicit := os.environ.get("HANDOFF_CACHE_DIR"):
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "handoff-tracking"


def ensure_jars(version: str = KAFKA_VERSION) -> Path:
    """Return the directory holding Kafka's jars, fetching them with Maven on first use."""
    home = cache_dir() / f"kafka-{version}"
    marker = home / "complete"
    if marker.exists():
        return home / "libs"
    mvn = _require("mvn")
    _require("java")
    home.parent.mkdir(parents=True, exist_ok=True)
    with open(home.parent / f"kafka-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second caller waits here, then finds the marker
        if marker.exists():
            return home / "libs"
        with tempfile.TemporaryDirectory(dir=home.parent, prefix=f".kafka-{version}-") as tmp:
            staged = Path(tmp) / "home"
            (Path(tmp) / "pom.xml").write_text(_pom(version))
            fetched = subprocess.run(
                [mvn, "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime",
                 f"-DoutputDirectory={staged / 'libs'}"],
                cwd=tmp, capture_output=True, text=True,
            )
            if fetched.returncode != 0:
                raise RuntimeError(f"mvn could not fetch Kafka {version}:\n"
                                   f"{_tail(fetched.stdout + fetched.stderr)}")
            (staged / "complete").write_text(f"kafka {version}\n")
            shutil.rmtree(home, ignore_errors=True)  # what an interrupted run left behind
            staged.rename(home)
    return home / "libs"


def class_archive(libs: Path, java: str) -> Path:
    """Where the JVM's class-data archive for these jars and this Java runtime is kept.

    A broker loads some 5,000 classes at start; mapped from an archive written by an earlier
    broker's clean stop, it starts in about half the time (the storage format too). The name
    follows the runtime's file, so a new JVM gets an archive of its own; the JVM itself checks
    the archive against its build and the class path, and ignores one that does not match.
    """
    runtime = Path(java).resolve()
    stat = runtime.stat()
    key = hashlib.sha256(f"{runtime}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return libs.parent / "class-archives" / f"{key}.jsa"


def _archive_options(archive: Path, dump_to: Path | None = None) -> list[str]:
    """Use `archive` when there is one; otherwise have this JVM write one to `dump_to` at exit."""
    if archive.exists():
        return [f"-XX:SharedArchiveFile={archive}"]
    return [] if dump_to is None else [f"-XX:ArchiveClassesAtExit={dump_to}"]


def mark_used(archive: Path) -> None:
    """Stamp `archive` as used now (its modification time), so pruning spares it."""
    try:
        os.utime(archive)
    except FileNotFoundError:
        pass  # none yet: this broker writes one


def prune_class_archives(kept: Path) -> None:
    """Remove the archives beside `kept` that no broker has used for ARCHIVE_UNUSED_DAYS (those
    of Java runtimes since updated or removed; about 50 MB each). An archive in use stays
    mapped by its JVM when its file goes."""
    used_since = time.time() - ARCHIVE_UNUSED_DAYS * 86_400
    for other in kept.parent.glob("*.jsa"):
        if other == kept:
            continue
        try:
            if other.stat().st_mtime < used_since:
                other.unlink()
        except FileNotFoundError:
            pass  # removed meanwhile by another broker's stop


def _pom(version: str) -> str:
    dependencies = "".join(
        "<dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version>"
        "</dependency>".format(*artifact.format(kafka=version).split(":"))
        for artifact in _ARTIFACTS
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>local</groupId><artifactId>kafka-jars</artifactId><version>1</version>"
        f"<packaging>pom</packaging><dependencies>{dependencies}</dependencies></project>\n"
    )


def _require(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise RuntimeError(f"`{tool}` not found on PATH: {_INSTALL_HINTS[tool]}")
    return found


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])


def new_cluster_id() -> str:
    """A KRaft cluster id as Kafka makes one: 16 random bytes, base64url, no padding."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids these too: they read as CLI options
            return text


def _free_ports(count: int) -> list[int]:
    """Ports the kernel just handed out; held open together so that they differ."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for held in sockets:
            held.bind(("127.0.0.1", 0))
        return [held.getsockname()[1] for held in sockets]
    finally:
        for held in sockets:
            held.close()


@dataclass(frozen=True)
class SaslSslListener:
    """A second listener speaking SASL_SSL (SCRAM-SHA-512), as a production cluster does.

    `pem_file` holds the broker's private key (unencrypted PKCS#8) and certificate chain;
    `users` maps each SCRAM user to its password.
    """

    pem_file: Path
    users: Mapping[str, str]

    def properties(self, port: int) -> str:
        return (
            f"listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512\n"
            f"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            f"org.apache.kafka.common.security.scram.ScramLoginModule required;\n"
            f"listener.name.sasl_ssl.ssl.keystore.type=PEM\n"
            f"listener.name.sasl_ssl.ssl.keystore.location={self.pem_file}\n"
        )

    def format_arguments(self) -> list[str]:
        """StorageTool arguments that create the SCRAM users when the storage is formatted."""
        return [argument for name, password in self.users.items()
                for argument in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")]


def _admin(bootstrap: str, timeout: float) -> KafkaAdminClient:
    ms = max(int(timeout * 1000), 500)
    return KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=ms,
                            request_timeout_ms=ms)


def _answers(bootstrap: str, timeout: float) -> bool:
    """True when a broker at `bootstrap` serves metadata within `timeout` seconds."""
    # Probe TCP first: an admin client that fails to bootstrap leaves its IO thread
    # running, and a refused connection is by far the commonest "not yet".
    if not any(_accepts(address, timeout) for address in bootstrap.split(",")):
        return False
    try:
        with _admin(bootstrap, timeout) as admin:
            admin.list_topics()
        return True
    except Exception:  # any failure only means "not yet"; the caller owns the deadline
        return False


def _accepts(address: str, timeout: float) -> bool:
    host, _, port = address.strip().rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
        return True
    except (OSError, ValueError):
        return False


def wait_for_kafka(bootstrap: str, timeout: float = 60) -> None:
    """Block until the broker at `bootstrap` answers, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while not _answers(bootstrap, min(5.0, max(deadline - time.monotonic(), 0.5))):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no Kafka broker answered at {bootstrap} within {timeout:g}s")
        time.sleep(0.2)


class LocalKafka:
    """One KRaft broker+controller process on 127.0.0.1 with its own ports and data dir."""

    def __init__(self, workdir: Path, libs: Path | None = None, sasl_ssl: SaslSslListener | None = None) -> None:
        self.workdir = Path(workdir)
        self._libs = libs
        self._sasl_ssl = sasl_ssl
        self._port = 0
        self._sasl_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._jvm: list[str] = []
        self._arguments: list[str] = []
        self._archive: Path | None = None

    @property
    def bootstrap(self) -> str:
        """Where clients connect, e.g. ``127.0.0.1:40123``."""
        if not self._port:
            raise RuntimeError("the broker has not been started")
        return f"127.0.0.1:{self._port}"

    @property
    def sasl_bootstrap(self) -> str:
        """Where clients connect over SASL_SSL (when started with `sasl_ssl`)."""
        if not self._sasl_port:
            raise RuntimeError("the broker has no SASL_SSL listener, or has not been started")
        return f"127.0.0.1:{self._sasl_port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id, or None before start."""
        return self._process.pid if self._process else None

    @property
    def gc_log(self) -> Path:
        """The broker's garbage-collection log: each collection, with the heap before and after."""
        return self.workdir / "gc.log"

    @property
    def is_running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 90) -> LocalKafka:
        """Format fresh storage, launch the broker and return once it answers clients."""
        if self._process is not None:
            raise RuntimeError(f"this broker was already started (pid {self.pid})")
        libs = self._libs or ensure_jars()
        java = _require("java")
        # Throwaway by design: each start begins with an empty log, so no run inherits
        # topics or offsets from the last one (and StorageTool refuses a used directory).
        shutil.rmtree(self.workdir / "data", ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port, controller, sasl_port = _free_ports(3)
        properties = _SERVER_PROPERTIES.format(port=self._port, controller=controller, data=self.workdir / "data")
        if self._sasl_ssl:
            self._sasl_port = sasl_port
            listener = f"SASL_SSL://127.0.0.1:{sasl_port}"
            properties = (properties.replace(f"listeners=PLAINTEXT://127.0.0.1:{self._port},",
                                             f"listeners=PLAINTEXT://127.0.0.1:{self._port},{listener},")
                          .replace("CONTROLLER:PLAINTEXT\n", "CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL\n")
                          + self._sasl_ssl.properties(sasl_port))
        config = self.workdir / "server.properties"
        config.write_text(properties)
        log4j = self.workdir / "log4j2.properties"
        log4j.write_text(_LOG4J2_PROPERTIES)
        jvm = [java, f"-Xmx{BROKER_HEAP}", f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*"]
        self._archive = class_archive(libs, java)
        mark_used(self._archive)
        formatted = subprocess.run(
            [*jvm, *_archive_options(self._archive), "kafka.tools.StorageTool", "format", "--standalone",
             "-t", new_cluster_id(), "-c", str(config),
             *(self._sasl_ssl.format_arguments() if self._sasl_ssl else ())],
            capture_output=True, text=True,
        )
        if formatted.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n"
                               f"{_tail(formatted.stdout + formatted.stderr)}")
        self._jvm = [*jvm, *BROKER_JVM, f"-Xlog:gc:file={self.gc_log}:uptime:filecount=2,filesize=20m"]
        self._arguments = ["kafka.Kafka", str(config)]
        self._launch(timeout)
        return self

    @property
    def _archive_dump(self) -> Path:
        """Where this broker's JVM writes a class-data archive when none exists yet."""
        return self.workdir / "classes.jsa"

    def _launch(self, timeout: float) -> None:
        command = [*self._jvm, *_archive_options(self._archive, self._archive_dump), *self._arguments]
        with open(self.workdir / "broker.log", "ab") as log:
            # A session of its own keeps a terminal's Ctrl-C from reaching the broker
            # directly: the owner decides when and how it stops. An owner killed outright
            # takes the broker with it.
            self._process = subprocess.Popen(
                lifeline.command(command), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        atexit.register(self.stop)
        try:
            self._wait_until_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def restart(self, timeout: float = 90) -> None:
        """Stop the broker and start it again on the same ports and data (a broker restart)."""
        if self._process is None:
            raise RuntimeError("the broker was never started")
        self.stop()
        self._launch(timeout)

    def _wait_until_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not _answers(self.bootstrap, 2.0):
            if not self.is_running:
                raise RuntimeError(f"Kafka broker exited with code {self._process.returncode}:"
                                   f"\n{self._log_tail()}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"Kafka broker not ready after {timeout:g}s:\n"
                                   f"{self._log_tail()}")
            time.sleep(0.2)

    def _log_tail(self) -> str:
        log = self.workdir / "broker.log"
        return _tail(log.read_text(errors="replace")) if log.exists() else ""

    def stop(self, timeout: float = 30) -> None:
        """Stop the broker this object started: SIGTERM, then SIGKILL after `timeout`."""
        atexit.unregister(self.stop)
        if not self.is_running:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._keep_class_archive()

    def _keep_class_archive(self) -> None:
        """Share the class-data archive this broker's JVM wrote at a clean stop; the rename
        is atomic, so a broker starting meanwhile maps a whole archive or none."""
        dumped = self._archive_dump
        if self._archive is None or not dumped.exists():
            return
        if self._process.returncode in (0, 128 + signal.SIGTERM) and not self._archive.exists():
            self._archive.parent.mkdir(parents=True, exist_ok=True)
            os.replace(dumped, self._archive)
            prune_class_archives(self._archive)
        else:
            dumped.unlink()

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


def _wait_for_group_coordinator(admin: KafkaAdminClient, timeout: float) -> None:
    """Ask for a consumer group's coordinator until the broker has one.

    A fresh broker creates its offsets topic on the first such question; asked here, the
    services' first group joins find a coordinator instead of each logging an error.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.describe_groups(["handoff-tracking-warm-up"])
            return
        except CoordinatorNotAvailableError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the broker had no group coordinator within {timeout:g}s") from None
            time.sleep(0.2)


def create_topics(bootstrap: str, partitions: int = 4, replication: int = 1,
                  timeout: float = 60) -> None:
    """Create every catalogue topic, its dead-letter topic and every table changelog
    (changelogs with CHANGELOG_CONFIGS, compacted catalogue topics with cleanup.policy=compact);
    existing ones are kept."""
    changelogs = changelog_topic_names()
    names = all_topic_names() + changelogs
    wait_for_kafka(bootstrap, timeout)
    with _admin(bootstrap, timeout) as admin:
        existing = set(admin.list_topics())
        wanted = {"num_partitions": partitions, "replication_factor": replication}
        configs = {**dict.fromkeys(compacted_topic_names(), {"cleanup.policy": "compact"}),
                   **dict.fromkeys(changelogs, CHANGELOG_CONFIGS)}
        missing = {name: {**wanted, "configs": dict(configs[name])} if name in configs else wanted
                   for name in names if name not in existing}
        if missing:
            try:
                admin.create_topics(missing, timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                pass  # another process created some of them since we listed
        admin.wait_for_topics(names, timeout_ms=int(timeout * 1000))
        found = {topic["name"]: len(topic["partitions"]) for topic in admin.describe_topics(names)}
        _wait_for_group_coordinator(admin, timeout)
    wrong = {name: found.get(name) for name in names if found.get(name) != partitions}
    if wrong:
        raise RuntimeError(f"topics at {bootstrap} do not have {partitions} partitions: {wrong}; "
                           "joined topics must be co-partitioned, so delete and recreate them")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``python -m common.localkafka {fetch,run,topics}``."""
    parser = argparse.ArgumentParser(
        prog="python -m common.localkafka",
        description=f"A local single-node Kafka {KAFKA_VERSION} (KRaft) for development and tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("fetch", help=f"fetch the Kafka jars into {cache_dir()}, print their path")
    run = commands.add_parser("run", help="start a broker, create the topics, print "
                              "KAFKA_BOOTSTRAP=HOST:PORT, run until SIGTERM or Ctrl-C")
    run.add_argument("--workdir", type=Path, required=True,
                     help="directory for config, data and broker.log (data is wiped at start)")
    topics = commands.add_parser("topics", help="create the project's topics on an existing broker")
    topics.add_argument("--bootstrap", required=True, metavar="HOST:PORT", help="the broker to use")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(ensure_jars())
        elif args.command == "topics":
            create_topics(args.bootstrap)
        else:
            _run(args.workdir)
    except (RuntimeError, TimeoutError, KafkaError) as error:  # worded for people already
        parser.exit(1, f"{parser.prog} {args.command}: {error}\n")
    return 0


def _run(workdir: Path) -> None:
    stopping = threading.Event()
    # Installed before start, so a signal during start-up still ends in a clean stop.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with LocalKafka(workdir) as kafka:
        create_topics(kafka.bootstrap)
        print(f"KAFKA_BOOTSTRAP={kafka.bootstrap}", flush=True)
        while not stopping.wait(1.0):
            if not kafka.is_running:
                raise SystemExit(f"Kafka broker exited unexpectedly; see {workdir / 'broker.log'}")


if __name__ == "__main__":
    sys.exit(main())
