"""``enrich_orders``: load_orders -> score (bin/score.sh) -> summarise.

``score`` is a *command task*: the runner starts ``bin/score.sh`` from the package with the
task's input context as JSON on stdin, and merges the JSON object it prints into the context.
A non-zero exit fails the task with the script's stderr as the error. Any executable works
(a shell script here; a compiled program, another language...).
"""

from __future__ import annotations

from cloacina import Context, command_task, packaged_workflow, task


@packaged_workflow(name="enrich_orders", package="enrichment", description="Score orders")
class enrich_orders:
    @task
    def load_orders(context: Context) -> None:
        context.insert("orders", [120, 75, 430])

    score = command_task(
        id="score", command=["bin/score.sh"], dependencies=["load_orders"], timeout=30
    )

    @task(dependencies=["score"])
    def summarise(context: Context) -> None:
        context.insert("summary", f"{context['order_count']} orders, score {context['score']}")
