"""MQTT publishing against a real mosquitto: topics, QoS, a broker that is absent, dies and comes back.

Each test starts its own mosquitto on a free 127.0.0.1 port (never the system service). Without the
mosquitto binary the tests skip locally but fail under CI (CI=true), where `make apt-test` installs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

import aiomqtt
import pytest

from server_fixtures import free_port
from streaming.mqtt import MqttOptions, MqttPublisher

MOSQUITTO = shutil.which("mosquitto", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"]))


@pytest.fixture(scope="module")
def mosquitto_bin() -> str:
    if MOSQUITTO is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("mosquitto is not installed; CI installs it with `make apt-test` (Makefile APT_TEST)")
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    return MOSQUITTO


class Broker:
    """A mosquitto process on 127.0.0.1:<port>, started and stopped by the test (restartable on the port)."""

    def __init__(self, binary: str, workdir: Path, port: int, persistent: bool = False) -> None:
        self.binary, self.port = binary, port
        self.config = workdir / f"mosquitto-{port}.conf"
        lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "log_dest stdout"]
        if persistent:  # keeps an offline subscriber's session (and its queued QoS-1 messages) across restarts
            lines += ["persistence true", f"persistence_location {workdir}/", "user root"]
        else:
            lines += ["persistence false"]
        self.config.write_text("\n".join(lines) + "\n")
        self.log = workdir / f"mosquitto-{port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 5.0) -> None:
        assert self.proc is None
        with self.log.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([self.binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            with socket.socket() as s:
                s.settimeout(0.2)
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout} s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self.proc = None


@pytest.fixture
def broker_factory(mosquitto_bin, tmp_path):
    brokers: list[Broker] = []

    def make(port: int | None = None, persistent: bool = False) -> Broker:
        broker = Broker(mosquitto_bin, tmp_path, port or free_port(), persistent)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop(kill=True)


def run(coro, timeout: float = 20.0):
    """Every scenario is bounded: a hang fails the test instead of stalling the suite."""

    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


class Subscriber:
    """An aiomqtt client subscribed to steno/# with QoS 1 that collects (topic, payload, qos)."""

    def __init__(self, port: int, identifier: str | None = None, clean_session: bool = True) -> None:
        self.client = aiomqtt.Client(
            "127.0.0.1", port, identifier=identifier, clean_session=clean_session, timeout=5
        )
        self.received: list[tuple[str, dict, int]] = []
        self._new = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Subscriber:
        await self.client.__aenter__()
        await self.client.subscribe("steno/#", qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.wait({self._task}, timeout=2)
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)

    async def _collect(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in self.client.messages:
                self.received.append((str(message.topic), json.loads(message.payload), message.qos))
                self._new.set()

    async def wait_for(self, predicate, timeout: float = 5.0) -> list[tuple[str, dict, int]]:
        async with asyncio.timeout(timeout):
            while not predicate(self.received):
                self._new.clear()
                await self._new.wait()
        return self.received


def texts(received, kind: str = "final") -> list[str]:
    return [payload["text"] for topic, payload, _ in received if topic.endswith("/" + kind)]


def final(i: int) -> dict:
    return {"type": "final", "seq": i, "segment": i, "text": f"final {i}", "start": i * 1.0, "end": i + 0.9}


# -- options -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, host, port",
    [
        ("localhost:1884", "localhost", 1884),
        ("broker.lan", "broker.lan", 1883),
        (" 10.0.0.5:8883 ", "10.0.0.5", 8883),
        ("[::1]:1885", "::1", 1885),
        ("[::1]", "::1", 1883),
    ],
)
def test_from_address_parses_host_and_port(address, host, port):
    options = MqttOptions.from_address(address)
    assert (options.host, options.port, options.topic_prefix) == (host, port, "steno")


@pytest.mark.parametrize(
    "address, message",
    [
        ("", "empty"),
        (":1883", "no host"),
        ("localhost:", "not a number"),
        ("localhost:mqtt", "not a number"),
        ("localhost:70000", "out of range"),
        ("localhost:0", "out of range"),
        ("mqtt://localhost:1883", "not a URL"),
        ("::1", "IPv6"),
        ("[::1", "v6-address"),
    ],
)
def test_from_address_rejects_bad_addresses_with_a_clear_message(address, message):
    with pytest.raises(ValueError, match=message):
        MqttOptions.from_address(address)


def test_from_address_passes_other_options_through():
    options = MqttOptions.from_address("h:1", topic_prefix="captions", queue_size=5)
    assert (options.topic_prefix, options.queue_size) == ("captions", 5)


# -- queue policy (no broker needed) ----------------------------------------------------------------------


def test_full_queue_drops_partials_first_then_the_oldest():
    async def scenario():
        publisher = MqttPublisher(MqttOptions("127.0.0.1", free_port(), queue_size=3))  # never started
        publisher.publish("s", {"type": "partial", "text": "p1"})
        publisher.publish("s", final(1))
        publisher.publish("s", final(2))
        publisher.publish("s", final(3))  # full: the partial goes
        publisher.publish("s", {"type": "partial", "text": "p2"})  # full of finals: the new partial goes
        publisher.publish("s", final(4))  # full of finals: the oldest final goes
        assert [json.loads(m.payload).get("seq") for m in publisher._queue] == [2, 3, 4]
        assert publisher.stats["dropped"] == 3
        await publisher.close(timeout=0.5)
        assert publisher.stats["dropped"] == 6  # closing drops what never reached a broker

    run(scenario())


# -- a real broker -------------------------------------------------------------------------------------


def test_events_arrive_on_session_topics_as_json_and_finals_with_qos_1(broker_factory):
    broker = broker_factory()
    broker.start()

    async def scenario():
        async with Subscriber(broker.port) as subscriber:
            publisher = MqttPublisher(MqttOptions("127.0.0.1", broker.port))
            await publisher.start()
            assert publisher.connected
            publisher.publish("sess-1", {"type": "partial", "seq": 1, "text": "hello wor"})
            publisher.publish("sess-1", final(2))
            publisher.publish("sess-1", {"type": "topic", "seq": 3, "index": 0, "title": "Greetings"})
            publisher.publish("a/b+#", {"type": "partial", "seq": 4, "text": "x"})  # no extra topic levels
            received = await subscriber.wait_for(lambda r: len(r) >= 4)
            await publisher.close()
        by_topic = {topic: (payload, qos) for topic, payload, qos in received}
        assert by_topic["steno/sess-1/partial"] == ({"type": "partial", "seq": 1, "text": "hello wor"}, 0)
        assert by_topic["steno/sess-1/final"] == (final(2), 1)
        assert by_topic["steno/sess-1/topic"][1] == 1
        assert "steno/a_b__/partial" in by_topic
        assert publisher.stats["published"] == 4 and publisher.stats["dropped"] == 0

    run(scenario())


def test_no_broker_at_start_warns_and_queued_finals_arrive_once_it_is_up(broker_factory, caplog):
    broker = broker_factory(persistent=True)
    # An offline subscriber session the broker keeps on disk, so nothing published later is missed.
    broker.start()

    async def register_observer():
        async with Subscriber(broker.port, identifier="observer", clean_session=False):
            pass

    run(register_observer())
    broker.stop()  # SIGTERM: the session is saved; now nothing listens on the port

    async def scenario():
        publisher = MqttPublisher(MqttOptions("127.0.0.1", broker.port, reconnect_interval=0.2))
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="streaming.mqtt"):
            await publisher.start()
        assert time.monotonic() - began < 1.5
        warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any(f"127.0.0.1:{broker.port} unreachable" in m and "captions continue" in m for m in warning)
        assert not publisher.connected
        for i in range(5):
            publisher.publish("s", final(i))  # must not raise
            publisher.publish("s", {"type": "partial", "seq": 100 + i, "text": "..."})
        await asyncio.to_thread(broker.start)
        async with asyncio.timeout(5):
            while publisher.stats["published"] < 10:
                await asyncio.sleep(0.02)
        async with Subscriber(broker.port, identifier="observer", clean_session=False) as observer:
            await observer.wait_for(lambda r: len(texts(r)) >= 5)
        await publisher.close()
        assert texts(observer.received) == [f"final {i}" for i in range(5)]
        assert publisher.stats["reconnects"] == 0  # the first successful connection is not a reconnect

    run(scenario())


def test_broker_killed_mid_session_never_stalls_publish_and_later_finals_arrive(broker_factory):
    broker = broker_factory()
    broker.start()

    async def scenario():
        loop = asyncio.get_running_loop()
        gaps: list[float] = []

        async def ticker():  # the event loop's responsiveness: the largest gap between 10 ms ticks
            last = loop.time()
            while True:
                await asyncio.sleep(0.01)
                now = loop.time()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        publisher = MqttPublisher(MqttOptions("127.0.0.1", broker.port, reconnect_interval=0.2))
        await publisher.start()
        durations: list[float] = []
        async with Subscriber(broker.port) as subscriber:
            publisher.publish("s", final(0))
            await subscriber.wait_for(lambda r: texts(r) == ["final 0"])

        broker.stop(kill=True)
        for i in range(1, 301):  # captions keep flowing while the broker is gone
            began = time.perf_counter()
            publisher.publish("s", {"type": "partial", "seq": 1000 + i, "text": "." * 50})
            if i % 10 == 0:
                publisher.publish("s", final(i))
            durations.append(time.perf_counter() - began)
            await asyncio.sleep(0.002)
        assert not publisher.connected
        gaps.clear()
        await asyncio.to_thread(broker.start)
        async with Subscriber(broker.port) as subscriber:
            async with asyncio.timeout(5):
                while not publisher.connected:
                    await asyncio.sleep(0.02)
            publisher.publish("s", final(999))
            received = await subscriber.wait_for(lambda r: "final 999" in texts(r))
            await publisher.close()
        tick.cancel()
        # publish() only queues. One call in a few hundred may still be hit by a GC pause or the OS
        # scheduler on a loaded 2-core machine (a clean-clone run saw 5.2 ms once), so the bound is on the
        # 99th percentile, with a loose ceiling for any single call.
        p99, slowest = statistics.quantiles(durations, n=100)[98], max(durations)
        assert p99 < 0.005, f"publish() p99 {p99 * 1000:.1f} ms while the broker was down"
        assert slowest < 0.05, f"publish() took {slowest * 1000:.1f} ms while the broker was down"
        assert max(gaps) < 0.25, f"event loop stalled {max(gaps) * 1000:.0f} ms"
        assert texts(received)[-1] == "final 999"
        stats = publisher.stats
        assert stats["reconnects"] == 1
        # every final queued during the outage reached the broker (acknowledged) before the later one
        assert stats["published"] >= 1 + 30 + 1

    run(scenario())


def test_close_returns_within_its_timeout_when_the_broker_is_gone(broker_factory):
    broker = broker_factory()
    broker.start()

    async def scenario():
        publisher = MqttPublisher(MqttOptions("127.0.0.1", broker.port, reconnect_interval=0.1))
        await publisher.start()
        assert publisher.connected
        broker.stop(kill=True)
        for i in range(50):
            publisher.publish("s", final(i))
        began = time.monotonic()
        await publisher.close(timeout=0.5)
        assert time.monotonic() - began < 0.8
        assert publisher._task is None and not publisher.connected
        publisher.publish("s", final(99))  # after close: counted, not raised
        assert publisher.stats["dropped"] >= 1

    run(scenario())


def test_close_flushes_queued_finals_when_connected(broker_factory):
    broker = broker_factory()
    broker.start()

    async def scenario():
        async with Subscriber(broker.port) as subscriber:
            publisher = MqttPublisher(MqttOptions("127.0.0.1", broker.port))
            await publisher.start()
            for i in range(200):
                publisher.publish("s", final(i))
            await publisher.close(timeout=2.0)
            assert publisher.stats["published"] == 200
            received = await subscriber.wait_for(lambda r: len(r) >= 200)
        assert texts(received) == [f"final {i}" for i in range(200)]  # in order

    run(scenario())


def test_close_returns_within_its_timeout_when_the_broker_hangs(broker_factory):
    broker = broker_factory()
    broker.start()

    async def scenario():
        publisher = MqttPublisher(MqttOptions("127.0.0.1", broker.port))
        await publisher.start()
        assert publisher.connected
        broker.proc.send_signal(signal.SIGSTOP)  # the socket stays open, nothing is acknowledged
        try:
            for i in range(50):
                publisher.publish("s", final(i))
            await asyncio.sleep(0.1)
            began = time.monotonic()
            await publisher.close(timeout=0.5)
            assert time.monotonic() - began < 0.8
            assert publisher._task is None
        finally:
            broker.proc.send_signal(signal.SIGCONT)

    run(scenario())
