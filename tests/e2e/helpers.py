"""Helpers of the end-to-end tests: run the ``cloacina`` CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

FLOWS = textwrap.dedent(
    """
    import asyncio

    from cloacina import Context, RetryPolicy, task, workflow


    @workflow(name="greeting")
    class greeting:
        @task()
        def greet(context: Context) -> None:
            context.insert("greeting", f"hello {context.get('name', 'world')}")

        @task(dependencies=["greet"])
        def shout(context: Context) -> None:
            context.insert("shout", context["greeting"].upper())


    @workflow(name="broken")
    class broken:
        @task()
        def extract(context: Context) -> None:
            context.insert("rows", 3)

        @task(dependencies=["extract"], retry=RetryPolicy(max_attempts=2, initial_delay=0.01))
        def transform(context: Context) -> None:
            raise ValueError("transform exploded")

        @task(dependencies=["transform"])
        def load(context: Context) -> None:
            context.insert("loaded", True)


    @workflow(name="sleepy")
    class sleepy:
        @task()
        async def nap(context: Context) -> None:
            await asyncio.sleep(30)
    """
)


@dataclass
class Result:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (
            f"cloacina {' '.join(self.args)} -> exit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


Cli = Callable[..., Result]


def run_cli(
    *args: str | Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 30,
) -> Result:
    """``python -m cloacina ARGS`` in ``cwd``; a wide terminal so tables do not wrap."""
    full_env = {k: v for k, v in os.environ.items() if k != "CLOACINA_DB"}
    full_env.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONIOENCODING": "utf-8"})
    full_env.update(env or {})
    argv = [str(a) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "cloacina", *argv],
        cwd=cwd,
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(argv, proc.returncode, proc.stdout, proc.stderr)
