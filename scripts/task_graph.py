"""Write every DAG's task graph as JSON: each task's downstream tasks, queue, mapping, trigger rule and outlets,
the Params' JSON schemas and the schedule. Run it before and after a refactor and diff the two outputs to see
that the DAGs Airflow serializes are unchanged:

    AIRFLOW_HOME=$(mktemp -d) .venv/bin/python scripts/task_graph.py /tmp/graph.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def main(out_path: Path) -> None:
    sys.path.insert(0, str(REPO / "plugins"))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    if bag.import_errors:
        raise SystemExit(f"DAG import errors: {bag.import_errors}")
    out = {}
    for dag_id, dag in sorted(bag.dags.items()):
        graph: dict = {
            task.task_id: {
                "down": sorted(task.downstream_task_ids),
                "queue": task.queue,
                "mapped": type(task).__name__ == "MappedOperator",
                "trigger_rule": str(task.trigger_rule),
                "outlets": sorted(str(o.uri) for o in (task.outlets or [])),
            }
            for task in dag.tasks
        }
        graph["_params"] = {key: dag.params.get_param(key).schema for key in sorted(dag.params.keys())}
        graph["_schedule"] = str(getattr(dag, "schedule", None))
        out[dag_id] = graph
    out_path.write_text(json.dumps(out, indent=1, sort_keys=True, default=str))  # Airflow logs to stdout


if __name__ == "__main__":
    main(Path(sys.argv[1]))
