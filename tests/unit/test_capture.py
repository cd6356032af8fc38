"""Capturing task output (cloacina.engine.capture): the per-attempt bound and its marker,
routing by the running body (threads and asyncio tasks), logging records, and putting the
streams back as they were."""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from cloacina.engine import capture
from cloacina.engine.capture import AttemptLog, RoutingStream


@pytest.fixture
def installed() -> Iterator[None]:
    capture.install()
    try:
        yield
    finally:
        capture.uninstall()


def text_of(log: AttemptLog) -> str:
    return "".join(text for _stream, _at, text in log.take())


def test_writes_to_one_stream_share_a_chunk_and_take_empties() -> None:
    log = AttemptLog("e", "t", 1, 1000)
    log.write("stdout", "a")
    log.write("stdout", "b\n")
    log.write("stderr", "err\n")
    log.write("stdout", "c\n")
    assert log.pending
    chunks = log.take()
    assert [(s, t) for s, _at, t in chunks] == [
        ("stdout", "ab\n"),
        ("stderr", "err\n"),
        ("stdout", "c\n"),
    ]
    assert not log.pending and log.take() == []


def test_bound_keeps_the_first_bytes_and_the_marker_counts_the_rest() -> None:
    log = AttemptLog("e", "t", 1, 10)
    log.write("stdout", "0123456")
    log.write("stdout", "789abcdef")  # 3 of 9 fit
    log.write("stderr", "more")
    log.close()
    log.write("stdout", "after close")  # ignored
    text = text_of(log)
    kept, marker = text.split("\n", 1)
    assert kept == "0123456789"
    assert log.kept == 10 and log.dropped == 6 + 4
    assert marker.startswith("[cloacina: 10 more bytes of output were dropped")
    assert "10 bytes" in marker and "max_log_bytes" in marker and marker.endswith("]\n")


def test_bound_counts_utf8_bytes_and_never_splits_a_character() -> None:
    log = AttemptLog("e", "t", 1, 5)
    log.write("stdout", "ab€cd")  # € is 3 bytes: 'ab€' is 5
    log.close(marker=False)
    assert text_of(log) == "ab€"
    assert log.dropped == 2
    log = AttemptLog("e", "t", 1, 4)
    log.write("stdout", "ab€")  # the euro sign does not fit whole: dropped, not split
    assert text_of(log) == "ab"
    assert log.dropped == 3


def test_marker_starts_a_line_of_its_own_and_no_marker_without_a_cut() -> None:
    log = AttemptLog("e", "t", 1, 3)
    log.write("stdout", "abcdef")
    log.close()
    assert text_of(log).startswith("abc\n[cloacina: 3 more bytes")
    whole = AttemptLog("e", "t", 1, 100)
    whole.write("stdout", "fits\n")
    whole.close()
    assert text_of(whole) == "fits\n"


def test_a_limit_of_zero_bytes_keeps_only_the_marker() -> None:
    log = AttemptLog("e", "t", 1, 0)
    log.write("stdout", "x" * 50)
    log.add_dropped(7)
    log.close()
    assert text_of(log).startswith("[cloacina: 57 more bytes")


@pytest.mark.usefixtures("installed")
def test_two_threads_printing_at_once_get_only_their_own_lines() -> None:
    logs = {name: AttemptLog("e", name, 1, 1 << 20) for name in ("a", "b")}
    barrier = threading.Barrier(2)

    def body(name: str) -> None:
        token = capture.begin(logs[name])
        try:
            barrier.wait()
            for i in range(300):
                print(f"{name} line {i}")
                if i % 50 == 0:
                    print(f"{name} to stderr {i}", file=sys.stderr)
        finally:
            capture.end(token)

    threads = [threading.Thread(target=body, args=(n,)) for n in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("outside any task")
    for name, log in logs.items():
        chunks = log.take()
        lines = "".join(t for _s, _a, t in chunks).splitlines()
        assert lines and all(line.startswith(f"{name} ") for line in lines), name
        assert [line for line in lines if " line " in line] == [
            f"{name} line {i}" for i in range(300)
        ]
        err = "".join(t for s, _a, t in chunks if s == "stderr")
        assert err.count("to stderr") == 6


@pytest.mark.usefixtures("installed")
def test_async_tasks_on_one_loop_are_kept_apart() -> None:
    logs = {name: AttemptLog("e", name, 1, 1 << 20) for name in ("x", "y")}

    async def body(name: str) -> None:
        capture.begin(logs[name])  # an asyncio task has its own copy of the context
        for i in range(20):
            print(f"{name} {i}")
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(body("x"), body("y"))

    asyncio.run(main())
    for name, log in logs.items():
        assert text_of(log) == "".join(f"{name} {i}\n" for i in range(20))


@pytest.mark.usefixtures("installed")
def test_logging_records_are_captured_inside_a_body_only() -> None:
    logger = logging.getLogger("cloacina.test.capture")
    logger.setLevel(logging.INFO)
    log = AttemptLog("e", "t", 1, 1 << 20)
    token = capture.begin(log)
    try:
        logger.info("inside %d", 42)
    finally:
        capture.end(token)
    logger.info("outside")
    chunks = log.take()
    assert len(chunks) == 1
    stream, _at, text = chunks[0]
    assert stream == "log"
    assert text.endswith("INFO cloacina.test.capture: inside 42\n")


def test_where_no_handler_exists_records_still_reach_stderr_and_the_log_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []  # as in a program that never configured logging
    capture.install()
    try:
        logging.getLogger("cloacina.test.alone").warning("no handler configured")
        log = AttemptLog("e", "t", 1, 1 << 20)
        token = capture.begin(log)
        try:
            logging.getLogger("cloacina.test.alone").warning("in a task")
        finally:
            capture.end(token)
    finally:
        capture.uninstall()
        root.handlers = saved
    err = capsys.readouterr().err
    assert "no handler configured" in err and "in a task" in err  # logging.lastResort
    # In the task's log once, as a record: not a second time from the handler's stderr.
    captured = log.take()
    assert [s for s, _a, _t in captured] == ["log"]


@pytest.mark.usefixtures("installed")
def test_basic_config_still_works_and_its_handler_adds_no_second_copy() -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    stream = io.StringIO()
    root.handlers = []
    try:
        # A program configuring logging after a runner started (a handler on the root
        # logger would have made this a no-op), with a handler that writes to stderr.
        logging.basicConfig(format="%(levelname)s:%(message)s", stream=stream)
        root.addHandler(logging.StreamHandler())  # sys.stderr: the routing stream
        log = AttemptLog("e", "t", 1, 1 << 20)
        token = capture.begin(log)
        try:
            logging.getLogger("cloacina.test.basic").error("boom %s", "here", stack_info=False)
            try:
                raise ValueError("bad")
            except ValueError:
                logging.getLogger("cloacina.test.basic").exception("failed")
        finally:
            capture.end(token)
    finally:
        root.handlers = saved
    assert stream.getvalue().startswith("ERROR:boom here\nERROR:failed\n")
    chunks = log.take()
    assert [s for s, _a, _t in chunks] == ["log"]
    text = chunks[0][2]
    assert " ERROR cloacina.test.basic: boom here\n" in text
    assert " ERROR cloacina.test.basic: failed\nTraceback (most recent call last):" in text
    assert text.endswith("ValueError: bad\n")


def test_a_record_whose_arguments_do_not_fit_is_still_written() -> None:
    record = logging.LogRecord("n", logging.INFO, __file__, 1, "%d items", ("x",), None)
    assert capture.format_record(record).endswith(" INFO n: '%d items' % ('x',)\n")


def test_install_is_counted_and_puts_the_streams_back() -> None:
    def streams() -> tuple[object, object]:
        return sys.stdout, sys.stderr

    before_out, before_err = streams()
    capture.install()
    capture.install()
    out, _err = streams()
    assert isinstance(out, RoutingStream) and out.wrapped is before_out
    capture.uninstall()
    assert isinstance(streams()[0], RoutingStream)  # one user left
    capture.uninstall()
    assert streams() == (before_out, before_err)
    assert not isinstance(logging.getLogRecordFactory(), capture._RecordFactory)


def test_begin_wraps_again_a_stream_replaced_since_install() -> None:
    capture.install()
    replaced = io.StringIO()
    saved = sys.stdout
    try:
        sys.stdout = replaced  # pytest does this between a test's phases
        log = AttemptLog("e", "t", 1, 100)
        token = capture.begin(log)
        try:
            print("hello")
        finally:
            capture.end(token)
        assert replaced.getvalue() == "hello\n"  # still passed on
        assert text_of(log) == "hello\n"
    finally:
        capture.uninstall()
        sys.stdout = saved


def test_routing_stream_passes_everything_else_through() -> None:
    target = io.StringIO()
    stream = RoutingStream(target, "stdout")
    stream.write("plain ")
    stream.writelines(["a", "b"])
    stream.flush()
    assert target.getvalue() == "plain ab"
    assert stream.isatty() is False
    assert stream.getvalue() == "plain ab"  # any other attribute is the target's
