"""The alert payload's JSON Schema, kept in `contracts/schemas/topic_alert.schema.json`.

Regenerate after changing `TopicAlert`: `python -m services.alerter.schema`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from contracts import TopicAlert

SCHEMA_PATH = (
    Path(__file__).resolve().parents[2] / "contracts" / "schemas" / "topic_alert.schema.json"
)


def topic_alert_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a `TopicAlert` as it appears on the wire."""
    schema = TopicAlert.model_json_schema(mode="serialization")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def render() -> str:
    return json.dumps(topic_alert_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main() -> None:
    SCHEMA_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH}")


if __name__ == "__main__":
    main()
