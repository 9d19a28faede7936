"""Ambient state inside a simulation scope: wall clock, module-level random, network."""

from __future__ import annotations

import _socket
import asyncio
import os
import pickle
import random
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from time import monotonic as captured_monotonic
from time import time as captured_time
from typing import Any

import _pytest.timing
import freezegun
import freezegun.api as fg
import pytest

from awf_sim.dsl._errors import AwfError
from awf_sim.engine._ambient import (
    NetworkAccessRefused,
    current_wall_ms,
    in_simulation,
    simulation_scope,
)

REPO = Path(__file__).resolve().parents[2]
MS_2023 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
MS_2001 = 978_307_200_000  # 2001-01-01 00:00:00 UTC


class Clock:
    """A virtual wall clock the test moves by hand."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def real_now_utc() -> datetime:
    return fg.real_datetime.now(UTC)


def local_naive(ms: int) -> datetime:
    """A simulation's local wall time at an instant: its local zone is UTC."""
    return fg.real_datetime.fromtimestamp(ms // 1000, UTC).replace(tzinfo=None) + timedelta(
        milliseconds=ms % 1000
    )


def scope(ms: int = MS_2023, seed: int = 0) -> AbstractContextManager[None]:
    return simulation_scope(Clock(ms), random.Random(seed))


@pytest.fixture(autouse=True)
def _keep_global_random() -> Iterator[None]:
    state = random.getstate()
    yield
    random.setstate(state)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- wall clock ---


def test_wall_clock_reads_return_the_virtual_time() -> None:
    with scope(MS_2023):
        assert time.time() == 1_700_000_000.0
        assert time.time_ns() == 1_700_000_000_000_000_000
        assert datetime.now(UTC) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
        assert datetime.utcnow() == datetime(2023, 11, 14, 22, 13, 20)
        assert datetime.now() == local_naive(MS_2023)
        assert datetime.today() == local_naive(MS_2023)
        assert date.today() == local_naive(MS_2023).date()
        assert time.gmtime() == fg.real_gmtime(1_700_000_000)
        assert time.localtime() == fg.real_gmtime(1_700_000_000)
        assert time.strftime("%Y-%m-%d %H:%M:%S") == fg.real_strftime(
            "%Y-%m-%d %H:%M:%S", fg.real_gmtime(1_700_000_000)
        )
        assert captured_time() == 1_700_000_000.0
        assert current_wall_ms() == MS_2023
        assert in_simulation()


def test_milliseconds_are_exact() -> None:
    with scope(1_700_000_000_123):
        assert time.time_ns() == 1_700_000_000_123_000_000
        assert time.time() == 1_700_000_000.123
        assert datetime.now(UTC) == datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)
        assert datetime.utcnow().microsecond == 123_000


def test_explicit_arguments_are_conversions_not_reads() -> None:
    with scope(MS_2023):
        assert time.gmtime(0).tm_year == 1970
        assert time.strftime("%Y", time.gmtime(0)) == "1970"
        assert datetime.fromtimestamp(0, UTC) == datetime(1970, 1, 1, tzinfo=UTC)
        assert datetime(1970, 1, 1, tzinfo=UTC).timestamp() == 0
        with pytest.raises(TypeError):
            time.strftime("%Y", None)  # type: ignore[arg-type]


def test_reads_move_with_the_callable() -> None:
    clock = Clock(MS_2023)
    with simulation_scope(clock, random.Random(0)):
        before = datetime.now(UTC)
        clock.ms += 90_061_500  # 1 day, 1 h, 1 min, 1.5 s
        assert time.time() == 1_700_090_061.5
        assert datetime.now(UTC) - before == timedelta(days=1, hours=1, minutes=1, seconds=1.5)
        assert date.today() == local_naive(clock.ms).date()
        assert time.gmtime().tm_mday == 15
        assert current_wall_ms() == clock.ms


def test_reads_are_real_outside_a_scope() -> None:
    def check_real() -> None:
        assert abs(time.time() - fg.real_time()) < 5
        assert abs(time.time_ns() - fg.real_time_ns()) < 5 * 10**9
        assert abs(captured_time() - fg.real_time()) < 5
        assert abs(datetime.now(UTC) - real_now_utc()) < timedelta(seconds=5)
        assert abs(datetime.now() - fg.real_datetime.now()) < timedelta(seconds=5)
        assert abs(datetime.utcnow() - fg.real_datetime.utcnow()) < timedelta(seconds=5)
        assert date.today() in {fg.real_date.today(), fg.real_date.today() - timedelta(days=1)}
        assert abs(time.mktime(time.localtime()) - fg.real_time()) < 5
        assert time.gmtime().tm_year == fg.real_gmtime().tm_year
        assert current_wall_ms() is None
        assert not in_simulation()

    check_real()
    with scope(MS_2001):
        pass
    check_real()


def test_values_outside_a_scope_are_plain_datetimes() -> None:
    with scope():
        pass  # freezegun is installed from here on, datetime.datetime is its class
    now = datetime.now()
    assert type(now) is fg.real_datetime
    assert repr(now).startswith("datetime.datetime(")
    assert type(date.today()) is fg.real_date
    assert pickle.loads(pickle.dumps(now)) == now
    with scope():
        assert type(datetime.now()) is fg.real_datetime


def test_subclasses_keep_their_type() -> None:
    with scope():
        pass

    class Moment(datetime):
        pass

    with scope(MS_2023):
        assert type(Moment.now(UTC)) is Moment
        assert Moment.now(UTC) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert type(Moment.now()) is Moment


def test_monotonic_clocks_are_never_faked() -> None:
    m0, p0 = time.monotonic(), time.perf_counter()
    with scope(MS_2001):
        assert time.monotonic is fg.real_monotonic
        assert time.monotonic_ns is fg.real_monotonic_ns
        assert time.perf_counter is fg.real_perf_counter
        assert time.perf_counter_ns is fg.real_perf_counter_ns
        assert captured_monotonic is fg.real_monotonic
        assert 0 <= time.monotonic() - m0 < 5
        assert 0 <= time.perf_counter() - p0 < 5
    assert time.monotonic is fg.real_monotonic
    assert time.perf_counter is fg.real_perf_counter


def test_pytest_timing_stays_real() -> None:
    with scope(MS_2001):
        assert _pytest.timing.perf_counter is fg.real_perf_counter
    assert abs(_pytest.timing.time() - fg.real_time()) < 5


def test_freezegun_is_started_once_and_stays_started() -> None:
    for _ in range(3):
        with scope():
            pass
    assert len(fg.freeze_factories) == 1
    assert datetime is fg.FakeDatetime
    assert time.time is not fg.real_time


def test_nested_scopes_inner_wins_outer_restored() -> None:
    with scope(MS_2023):
        with scope(MS_2001):
            assert datetime.now(UTC).year == 2001
            assert current_wall_ms() == MS_2001
        assert datetime.now(UTC).year == 2023
        assert current_wall_ms() == MS_2023
    assert current_wall_ms() is None


def test_state_is_restored_when_the_body_raises() -> None:
    def fail_inside() -> None:
        with scope(MS_2001, seed=3):
            random.random()
            raise RuntimeError("boom")

    state = random.getstate()
    with pytest.raises(RuntimeError, match="boom"):
        fail_inside()
    assert not in_simulation()
    assert abs(time.time() - fg.real_time()) < 5
    assert random.getstate() == state


def test_simulation_local_time_is_utc_whatever_the_machine_zone(non_utc_zone: None) -> None:
    # Workers run on UTC, and a seed must replay identically on every machine.
    with scope(MS_2023):
        assert datetime.now() == datetime(2023, 11, 14, 22, 13, 20)
        assert datetime.utcnow() == datetime(2023, 11, 14, 22, 13, 20)
        assert date.today() == date(2023, 11, 14)
        assert time.localtime().tm_hour == 22
        assert time.strftime("%H:%M") == "22:13"
        assert time.gmtime().tm_hour == 22
    # Outside, freezegun's classes must not treat naive values as UTC.
    assert abs(datetime.now() - fg.real_datetime.now()) < timedelta(seconds=5)
    assert abs((datetime.now() - datetime.utcnow()) - timedelta(hours=5, minutes=30)) < timedelta(
        seconds=5
    )
    assert datetime.fromtimestamp(0) == datetime(1970, 1, 1, 5, 30)
    assert datetime(1970, 1, 1, 5, 30).timestamp() == 0
    assert date.today() == fg.real_date.today()


@pytest.fixture
def non_utc_zone() -> Iterator[None]:
    if not hasattr(time, "tzset"):
        pytest.skip("needs time.tzset")
    with scope():
        pass  # install first, so that the checks above run against freezegun's classes
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "AWF-05:30"  # POSIX: UTC+5:30, no DST, needs no zone database
    time.tzset()
    try:
        yield
    finally:
        if saved is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = saved
        time.tzset()


# --- threads and asyncio ---


def test_another_thread_reads_real_time_during_a_scope() -> None:
    seen: dict[str, object] = {}

    def read() -> None:
        seen["time"] = time.time()
        seen["now"] = datetime.now(UTC)
        seen["today"] = date.today()
        seen["in_simulation"] = in_simulation()

    with scope(MS_2001):
        reader = threading.Thread(target=read)
        reader.start()
        reader.join()
        assert datetime.now(UTC).year == 2001
    assert abs(seen["time"] - fg.real_time()) < 5  # type: ignore[operator]
    assert seen["now"].year >= 2024  # type: ignore[attr-defined]
    assert seen["today"].year >= 2024  # type: ignore[attr-defined]
    assert seen["in_simulation"] is False


def test_a_scope_on_another_thread_does_not_leak_here() -> None:
    entered, release = threading.Event(), threading.Event()
    inside: list[int] = []

    def simulate() -> None:
        with scope(MS_2001):
            inside.append(datetime.now(UTC).year)
            entered.set()
            release.wait(10)
            inside.append(datetime.now(UTC).year)

    worker = threading.Thread(target=simulate)
    worker.start()
    try:
        assert entered.wait(10)
        assert abs(time.time() - fg.real_time()) < 5
        assert datetime.now(UTC).year >= 2024
        assert not in_simulation()
    finally:
        release.set()
        worker.join()
    assert inside == [2001, 2001]


def test_asyncio_works_after_a_scope_and_on_another_thread_during_one() -> None:
    with scope(MS_2001):
        pass
    started = time.monotonic()
    asyncio.run(asyncio.sleep(0.01))
    assert time.monotonic() - started >= 0.01

    errors: list[BaseException] = []

    def run_loop() -> None:
        try:
            asyncio.run(asyncio.sleep(0.01))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with scope(MS_2001):
        other = threading.Thread(target=run_loop)
        other.start()
        other.join(10)
    assert not other.is_alive()
    assert errors == []


def test_to_thread_work_of_the_simulation_is_inside() -> None:
    async def main() -> tuple[float, bool]:
        return await asyncio.to_thread(lambda: (time.time(), in_simulation()))

    with scope(MS_2023):
        assert asyncio.run(main()) == (1_700_000_000.0, True)


def test_the_scope_holds_no_os_resources() -> None:
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc")
    with scope():
        pass  # the first entry installs freezegun; measure the later ones
    before = len(list(fds.iterdir()))
    with scope():
        assert len(list(fds.iterdir())) == before
    assert len(list(fds.iterdir())) == before


# --- random ---


def draws(source: Any = random) -> list[object]:
    """The same calls, on the module-level functions or on a Random instance."""
    deck = list(range(10))
    source.shuffle(deck)
    return [source.random(), source.randint(1, 1000), source.choice("abcdefgh"), deck]


def test_same_seed_same_draws() -> None:
    with simulation_scope(Clock(0), random.Random(7)):
        first = draws()
    with simulation_scope(Clock(0), random.Random(7)):
        second = draws()
    assert first == second
    with simulation_scope(Clock(0), random.Random(8)):
        assert draws() != first


def test_draws_come_from_the_rng_and_advance_it() -> None:
    rng, reference = random.Random(7), random.Random(7)
    with simulation_scope(Clock(0), rng):
        inside = draws()
    assert inside == draws(reference)
    assert rng.getstate() == reference.getstate()
    assert rng.getstate() != random.Random(7).getstate()


def test_the_callers_global_state_is_untouched() -> None:
    random.seed(12345)
    expected = [random.random() for _ in range(3)]
    random.seed(12345)
    got = [random.random()]
    with simulation_scope(Clock(0), random.Random(7)):
        draws()
    got += [random.random(), random.random()]
    assert got == expected


def test_nested_random_scopes() -> None:
    outer_rng, reference = random.Random(1), random.Random(1)
    with simulation_scope(Clock(0), outer_rng):
        a = random.random()
        with simulation_scope(Clock(0), random.Random(2)):
            assert random.random() == random.Random(2).random()
        b = random.random()
    assert [a, b] == [reference.random(), reference.random()]
    assert outer_rng.getstate() == reference.getstate()


def test_passing_the_global_random_itself_keeps_its_draws() -> None:
    global_rng = random.random.__self__  # type: ignore[attr-defined]
    random.seed(5)
    reference = random.Random(5)
    with simulation_scope(Clock(0), global_rng):
        assert random.random() == reference.random()
    assert random.random() == reference.random()


# --- network ---


def test_connect_inside_is_refused_with_a_hint() -> None:
    port = free_port()
    with scope(), socket.socket() as sock:
        with pytest.raises(NetworkAccessRefused) as caught:
            sock.connect(("127.0.0.1", port))
        with pytest.raises(NetworkAccessRefused):
            sock.connect_ex(("127.0.0.1", port))
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "ctx.http" in message
    assert "respx routes or a mock transport" in message
    assert "pass http=... to Simulator/create_test_workflow" in message
    assert isinstance(caught.value, AwfError)
    assert isinstance(caught.value, ConnectionError)
    assert caught.value.target == f"127.0.0.1:{port}"


def test_connect_outside_is_an_ordinary_refusal() -> None:
    port = free_port()
    with scope():
        pass
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError) as caught:
        sock.connect(("127.0.0.1", port))
    assert not isinstance(caught.value, NetworkAccessRefused)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_create_connection_and_getaddrinfo_inside_are_refused() -> None:
    with scope():
        with pytest.raises(NetworkAccessRefused, match=r"example\.com:443"):
            socket.create_connection(("example.com", 443))
        with pytest.raises(NetworkAccessRefused, match=r"resolve example\.com:443"):
            socket.getaddrinfo("example.com", 443)
        with pytest.raises(NetworkAccessRefused, match=r"localhost:None"):
            socket.getaddrinfo("localhost", None)


def test_ipv6_targets_are_bracketed() -> None:
    try:
        sock = socket.socket(socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 sockets")
    with sock, scope(), pytest.raises(NetworkAccessRefused, match=r"\[::1\]:80"):
        sock.connect(("::1", 80))


def test_unix_sockets_are_not_network() -> None:
    if not hasattr(socket, "AF_UNIX"):
        pytest.skip("no AF_UNIX")
    with scope(), socket.socket(socket.AF_UNIX) as sock, pytest.raises(FileNotFoundError):
        sock.connect("/nonexistent/awf-ambient.sock")


def test_asyncio_connections_inside_are_refused() -> None:
    port = free_port()

    async def connect() -> None:
        await asyncio.open_connection("127.0.0.1", port)

    with scope(), pytest.raises(NetworkAccessRefused):
        asyncio.run(connect())


def test_another_thread_may_connect_during_a_scope() -> None:
    """A thread the simulation did not start (a test server, a pool made before) is not
    guarded: the guard belongs to the simulation's own work."""
    port = free_port()
    errors: list[BaseException] = []
    go = threading.Event()

    def connect() -> None:
        go.wait(10)
        with socket.socket() as sock:
            try:
                sock.connect(("127.0.0.1", port))
            except OSError as exc:
                errors.append(exc)

    other = threading.Thread(target=connect)
    other.start()
    with scope():
        go.set()
        other.join(10)
    assert len(errors) == 1
    assert type(errors[0]) is ConnectionRefusedError


def test_a_thread_started_inside_a_scope_is_guarded_while_it_lasts() -> None:
    port = free_port()
    errors: list[BaseException] = []
    later = threading.Event()

    def connect() -> None:
        for _ in range(2):
            with socket.socket() as sock:
                try:
                    sock.connect(("127.0.0.1", port))
                except OSError as exc:
                    errors.append(exc)
            later.wait(10)

    with scope():
        other = threading.Thread(target=connect)
        other.start()
        while not errors:
            time.sleep(0.001)
    later.set()
    other.join(10)
    assert type(errors[0]) is NetworkAccessRefused
    assert type(errors[1]) is ConnectionRefusedError  # the scope is over


def test_refusal_pickles() -> None:
    error = NetworkAccessRefused("db:5432", "connect to")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is NetworkAccessRefused
    assert str(copy) == str(error)
    assert copy.target == "db:5432"


# --- living with user code's own freeze_time ---


def test_a_users_freeze_time_still_works_outside_and_loses_inside() -> None:
    with scope():
        pass
    with freezegun.freeze_time("2020-05-17 12:00:00"):
        assert datetime.now() == datetime(2020, 5, 17, 12)
        assert datetime.now(UTC) == datetime(2020, 5, 17, 12, tzinfo=UTC)
        assert date.today() == date(2020, 5, 17)
        assert time.time() == datetime(2020, 5, 17, 12, tzinfo=UTC).timestamp()
        assert time.gmtime().tm_year == 2020
        with scope(MS_2023):
            assert time.time() == 1_700_000_000.0
            assert datetime.now(UTC).year == 2023
        assert datetime.now().year == 2020
        assert time.monotonic is fg.real_monotonic
    assert len(fg.freeze_factories) == 1
    assert abs(time.time() - fg.real_time()) < 5
    assert abs(datetime.now(UTC) - real_now_utc()) < timedelta(seconds=5)


def run_fresh(code: str) -> str:
    """Run code in a new interpreter, where nothing is installed yet."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_fresh_process_installs_once_and_fixes_earlier_imports() -> None:
    out = run_fresh(
        """
        import random, time
        from datetime import datetime, timezone
        from time import monotonic, perf_counter, time as now
        import freezegun.api as fg

        starts = []
        original_start = fg._freeze_time.start
        def counting_start(self):
            starts.append(1)
            return original_start(self)
        fg._freeze_time.start = counting_start

        from awf_sim.engine._ambient import simulation_scope
        began = time.perf_counter()
        with simulation_scope(lambda: 1_700_000_000_000, random.Random(1)):
            first = time.perf_counter() - began
            assert now() == 1_700_000_000.0
            assert datetime.now(timezone.utc).year == 2023
            assert monotonic is fg.real_monotonic and perf_counter is fg.real_perf_counter
        for _ in range(3):
            with simulation_scope(lambda: 0, random.Random(1)):
                assert now() == 0.0
        assert abs(now() - fg.real_time()) < 5
        assert starts == [1]
        print(f"first entry {first * 1000:.1f} ms")
        """
    )
    assert "first entry" in out


def test_install_while_a_users_freeze_time_is_running() -> None:
    run_fresh(
        """
        import random, time
        from datetime import date, datetime, timezone
        from time import time as now
        import freezegun, freezegun.api as fg
        from awf_sim.engine._ambient import simulation_scope

        with freezegun.freeze_time("2020-01-01"):
            assert now() == 1577836800.0
            with simulation_scope(lambda: 1_700_000_000_000, random.Random(1)):
                assert time.time() == 1_700_000_000.0 and now() == 1_700_000_000.0
                assert datetime.now(timezone.utc).year == 2023
            assert time.time() == 1577836800.0 and now() == 1577836800.0
            assert datetime.now() == datetime(2020, 1, 1)
            assert date.today() == date(2020, 1, 1)
        assert abs(time.time() - fg.real_time()) < 5 and abs(now() - fg.real_time()) < 5
        assert datetime.now(timezone.utc).year >= 2024
        assert time.monotonic is fg.real_monotonic
        assert len(fg.freeze_factories) == 1
        with simulation_scope(lambda: 0, random.Random(1)):
            assert time.time() == 0.0
        """
    )


def test_the_guard_survives_another_patch_of_socket_being_undone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A test tool that patches socket.connect and later restores what it saw must not leave
    simulations with a network (pytest's monkeypatch undo, pytest-socket, ...)."""
    with scope():
        pass  # the guard is installed
    saw = socket.socket.connect
    with monkeypatch.context() as patch:
        patch.setattr(socket.socket, "connect", lambda self, address: None)
    # ...and restores the function it saw before the guard existed: the plain C method.
    socket.socket.connect = _socket.socket.connect  # type: ignore[method-assign]
    try:
        with scope(), socket.socket() as sock, pytest.raises(NetworkAccessRefused):
            sock.connect(("127.0.0.1", free_port()))
    finally:
        socket.socket.connect = saw  # type: ignore[method-assign]


def test_reinstalling_after_one_patch_keeps_the_real_functions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only create_connection replaced (a test's monkeypatch): the guard is put back without
    taking the other guards for the real functions, so a connect outside a scope still works."""
    with scope():
        pass
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: None)
    with scope():
        pass  # reinstalls
    monkeypatch.undo()
    with scope():
        pass
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError):
        sock.connect(("127.0.0.1", free_port()))


def test_the_first_run_loads_no_lazy_module_attribute() -> None:
    # freezegun reads every attribute of every module when it installs; a module's lazy
    # attributes (awf_sim's chaos checks, concurrent.futures' process pool) must stay
    # unloaded, and must still load when asked for afterwards.
    code = textwrap.dedent(
        """
        import sys
        from awf_sim import Domain, Simulator, Workflow

        async def one(c, a, ctx):
            return {"ok": True}

        D = Domain("D", {"one": one})

        @Workflow("w", domains=[D])
        async def w(wf, p):
            return await wf.D(p).one()

        with Simulator() as sim:
            inst = sim.create(w, {"n": 1})
            sim.run()
            assert inst.status()["status"] == "complete"
        lazy = ("awf_sim.chaos", "multiprocessing")
        print(",".join(m for m in lazy if m in sys.modules))
        import awf_sim, concurrent.futures
        print(awf_sim.assert_durable.__name__, concurrent.futures.ProcessPoolExecutor.__name__)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["", "assert_durable ProcessPoolExecutor"]
