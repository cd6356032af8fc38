"""``cloacina alerts`` end to end: a channel added from the command line (its secret shown
once), tested, listed without the secret, fed by a failing `cloacina run`, its deliveries
shown, and removed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cloacina.service.alerts import verify_signature

from .helpers import Cli

pytestmark = pytest.mark.timeout(120)


class Hook:
    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.codes: list[int] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.got.append((dict(self.headers.items()), body))
                self.send_response(hook.codes.pop(0) if hook.codes else 200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"


@pytest.fixture
def hook() -> Iterator[Hook]:
    made = Hook()
    yield made
    made.server.shutdown()
    made.server.server_close()


def test_alerts_from_the_command_line(cli: Cli, flows: Path, db: str, hook: Hook) -> None:
    added = cli("alerts", "add", "ops", hook.url, "--db", db)
    assert added.returncode == 0, added
    secret = added.stdout.strip().splitlines()[-1]
    assert len(secret) >= 32 and "ops" in added.stdout

    again = cli("alerts", "add", "ops", hook.url, "--db", db)
    assert again.returncode == 2 and "exists already" in again.stderr, again
    bad = cli("alerts", "add", "x", "not a url", "--db", db)
    assert bad.returncode == 2 and "invalid webhook URL" in bad.stderr, bad

    listed = cli("alerts", "list", "--db", db, "--json")
    assert listed.returncode == 0, listed
    (channel,) = json.loads(listed.stdout)
    assert channel["name"] == "ops" and channel["url"] == hook.url
    assert "secret" not in channel and secret not in listed.output
    table = cli("alerts", "list", "--db", db)
    assert "ops" in table.stdout and secret not in table.output

    tested = cli("alerts", "test", "ops", "--db", db)
    assert tested.returncode == 0 and "Delivered" in tested.stdout, tested
    headers, body = hook.got[-1]
    assert json.loads(body)["rule"] == "test"
    assert verify_signature(secret, body, headers["X-Cloacina-Signature"])

    hook.codes = [500]
    refused = cli("alerts", "test", "ops", "--db", db)
    assert refused.returncode == 1 and "HTTP 500" in refused.stdout, refused

    run = cli("run", "broken", "--module", "flows", "--db", db)
    assert run.returncode == 1, run
    failures = [json.loads(b) for _h, b in hook.got if json.loads(b)["rule"] == "run_failed"]
    assert len(failures) == 1, hook.got
    assert failures[0]["workflow"] == "broken" and "transform exploded" in failures[0]["error"]

    shown = cli("alerts", "deliveries", "--db", db, "--json")
    assert shown.returncode == 0, shown
    rows = json.loads(shown.stdout)
    assert [r["rule"] for r in rows][:1] == ["run_failed"]
    assert {r["status_code"] for r in rows} >= {200, 500}
    assert secret not in shown.output
    assert "run_failed" in cli("alerts", "deliveries", "--db", db).stdout

    removed = cli("alerts", "remove", "ops", "--db", db)
    assert removed.returncode == 0, removed
    gone = cli("alerts", "remove", "ops", "--db", db)
    assert gone.returncode == 2 and "no alert channel 'ops'" in gone.stderr, gone
    assert "no alert channels" in cli("alerts", "list", "--db", db).stdout
