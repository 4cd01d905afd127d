"""Every line `cds-service serve` writes, on standard output and standard error, is one JSON
object with `message` first, whatever happens: a normal start and stop, a worker killed
(SIGKILL), a worker that stops answering (gunicorn's worker timeout), a worker that crashes
with an exception, errors in greenlets and threads, stray prints. The service runs under
gunicorn as a real subprocess, as an operator runs it; the crash is injected by a
`sitecustomize` module on the service's PYTHONPATH (Python imports it at start)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.service import REPO_ROOT, free_port, service_command, service_env, stop_gunicorn

CANARY = "canary-patient-7731"
"""Sent in query strings and put in an injected exception's message: it must never be logged."""
START_S = 120.0
"""Not a speed check: a service not answering after this long has failed to start."""
WORKER_TIMEOUT_S = 30
"""gunicorn's worker timeout with the default settings (`server.gunicorn_options`)."""
FIXED = ["message", "level", "ts", "logger", "request_id"]

# Injected into the service by the crash test: the first worker's main loop raises an
# exception whose message holds patient data; the next worker starts a greenlet and a
# thread that fail, warns, and prints plain text on both streams.
SITECUSTOMIZE = f'''
import os, sys

MARK = os.environ.get("CDS_TEST_CRASH_MARK")


def _fail():
    raise KeyError("{CANARY}")


def _after_fork():
    worker = sys.modules.get("gunicorn.workers.ggevent")
    if not MARK or worker is None:
        return
    if not os.path.exists(MARK + ".1"):
        open(MARK + ".1", "w").close()

        def run(self):
            raise RuntimeError("{CANARY} Jane Doe 1970-01-01\\nsecond line")

        worker.GeventWorker.run = run
    elif not os.path.exists(MARK + ".2"):
        open(MARK + ".2", "w").close()
        import threading, warnings
        import gevent

        gevent.spawn(_fail)
        threading.Thread(target=_fail).start()
        warnings.warn("a warning from a library")
        print("plain text on standard output")
        print("plain text on standard error", file=sys.stderr)


os.register_at_fork(after_in_child=_after_fork)
'''


def _nonblank_lines(path: Path) -> list[str]:
    return [line for line in path.read_text("utf-8").splitlines() if line.strip()]


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    base_url: str
    stdout: Path
    stderr: Path

    def lines(self) -> tuple[list[str], list[str]]:
        return _nonblank_lines(self.stdout), _nonblank_lines(self.stderr)

    def logged(self) -> list[dict[str, Any]]:
        """Both streams' lines so far (a line being written is left for the next look)."""
        stdout, stderr = self.lines()
        return [json.loads(line) for line in stdout + stderr if line.endswith("}")]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], what: str) -> None:
        deadline = time.monotonic() + START_S + WORKER_TIMEOUT_S
        while time.monotonic() < deadline:
            if any(predicate(line) for line in self.logged()):
                return
            assert self.process.poll() is None, f"the service exited: {self.lines()[1][-5:]}"
            time.sleep(0.2)
        pytest.fail(f"no log line: {what}")

    def wait_answering(self) -> None:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the service exited: {self.lines()[1][-5:]}"
            try:
                if requests.get(self.base_url + "/health/live", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        pytest.fail("the service did not answer")

    def workers(self) -> list[int]:
        """Worker pids in the order they were booted, from gunicorn's own lines."""
        booted = [re.search(r"pid: (\d+)", line["message"]) for line in self.logged()]
        return [int(match.group(1)) for match in booted if match]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Served]]:
    started: list[Served] = []

    def start(extra: dict[str, str]) -> Served:
        port = free_port()
        env = service_env(
            os.environ,
            fhir_servers=[],
            database_url=f"sqlite:///{tmp_path / 'audit.sqlite'}",
            extra=extra,
        )
        out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
                service_command("127.0.0.1", port, 1),
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
            )
        served = Served(process, f"http://127.0.0.1:{port}", out, err)
        started.append(served)
        served.wait_answering()
        return served

    yield start
    for served in started:
        stop_gunicorn(served.process)


def assert_every_line_json(served: Served) -> list[dict[str, Any]]:
    """Every line of both streams parses as a JSON object with the fixed fields, message
    first; the canary appears nowhere; standard output starts with the `listening` line.
    Returns the lines of both streams (standard output first)."""
    stdout, stderr = served.lines()
    assert stdout
    assert stderr
    parsed = []
    for line in stdout + stderr:
        assert CANARY not in line
        value = json.loads(line)
        assert isinstance(value, dict), line
        assert list(value)[: len(FIXED)] == FIXED, line
        assert isinstance(value["message"], str), line
        assert value["message"], line
        parsed.append(value)
    listening = parsed[0]
    assert listening["event"] == "listening"
    assert listening["message"].startswith(f"cds-service listening on {served.base_url}/")
    return parsed


def messages(logged: list[dict[str, Any]]) -> str:
    return "\n".join(line["message"] for line in logged)


def test_a_run_with_a_killed_and_a_hung_worker_writes_only_json(
    serve: Callable[[dict[str, str]], Served],
) -> None:
    served = serve({})
    asked = requests.get(
        f"{served.base_url}/cds-services?patient={CANARY}",
        headers={"X-Request-Id": "ops-check-0001"},
        timeout=10,
    )
    assert asked.status_code == 200
    # The access line is written after the answer: wait for it before killing that worker.
    served.wait_for(
        lambda line: line.get("event") == "access" and line.get("request_id") == "ops-check-0001",
        "access line",
    )
    first = served.workers()[-1]
    os.kill(first, signal.SIGKILL)
    served.wait_for(lambda line: "was sent SIGKILL" in line["message"], "worker killed")
    served.wait_answering()
    # A worker that stops answering: gunicorn ends it after its timeout and boots another.
    hung = served.workers()[-1]
    assert hung != first
    os.kill(hung, signal.SIGSTOP)
    served.wait_for(lambda line: line["message"] == f"WORKER TIMEOUT (pid:{hung})", "timeout")
    served.wait_for(lambda line: served.workers()[-1] != hung, "a new worker")
    served.wait_answering()
    stop_gunicorn(served.process)
    assert served.process.returncode == 0

    logged = assert_every_line_json(served)
    text = messages(logged)
    for expected in ("Starting gunicorn", "Booting worker", "Shutting down: Master"):
        assert expected in text
    timeout = next(line for line in logged if line["message"].startswith("WORKER TIMEOUT"))
    assert (timeout["level"], timeout["logger"]) == ("critical", "gunicorn.error")
    ours = [line for line in logged if line["request_id"] == "ops-check-0001"]
    assert {line.get("event") for line in ours} == {"request", "access"}
    assert all(line["path"] == "/cds-services" for line in ours if line["event"] == "access")


def test_a_crashed_worker_is_one_json_line_with_its_type_and_code_locations(
    serve: Callable[[dict[str, str]], Served], tmp_path: Path
) -> None:
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE, encoding="utf-8")
    served = serve(
        {
            "PYTHONPATH": os.pathsep.join([str(inject), str(REPO_ROOT)]),
            "CDS_TEST_CRASH_MARK": str(tmp_path / "crash"),
        }
    )
    served.wait_for(lambda line: line.get("exception") == "KeyError", "greenlet failed")
    served.wait_for(lambda line: line.get("logger") == "stdout", "plain print")
    served.wait_answering()  # the next worker serves
    stop_gunicorn(served.process)

    logged = assert_every_line_json(served)
    crash = next(line for line in logged if line.get("exception") == "RuntimeError")
    assert crash["message"] == "Exception in worker process"
    assert crash["level"] == "error"
    frames = crash["traceback"]
    assert frames
    assert all(re.fullmatch(r".+:\d+:[\w.<>]+", frame) for frame in frames)
    assert frames[-1].startswith(str(inject / "sitecustomize.py"))
    assert "Jane Doe" not in messages(logged)
    assert "second line" not in messages(logged)
    failed = [line for line in logged if line.get("event") == "crash"]
    assert {line["exception"] for line in failed} == {"KeyError"}
    assert {line["message"] for line in failed} == {
        "a greenlet ended with an exception",
        "uncaught exception in a thread",
    }
    assert any(line["logger"] == "py.warnings" for line in logged)
    plain = [(line["logger"], line["message"]) for line in logged if line.get("event") is None]
    assert ("stdout", "plain text on standard output") in plain
    assert ("stderr", "plain text on standard error") in plain
