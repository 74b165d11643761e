"""The floor of the collect + build workload: the same job with nothing but the standard library.

Run as a script (`python bench/floor.py FORMAT DIRECTORY OUT`) so it is measured as a whole
process, like the CLI. It maps rows the way the collectors do, minimally, and writes a payload
with the same rows. `json.dumps` + one write stands in for `json.dump`: `json.dump` streams
through the pure-Python encoder, `json.dumps` uses the C one, so this floor is the faster of
the two. Standard library only: `bench.data` imports it to build request bodies.

The hostile inputs of bench/hostile.py have floors of their own (`python bench/floor.py
WORKLOAD FILE OUT`): `json.loads` per line, skipping what does not parse (malformed NDJSON);
a bare `iterparse` (nested suites); an expat parse that stops at the first entity
declaration, as the collector does (entity-heavy XML).
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from xml.parsers import expat

ECOSYSTEM = "bench"
STARTED_AT = "2026-02-19T14:31:25Z"
COMPLETED_AT = "2026-02-19T15:02:10Z"
_RESULTS = {"pass": "passed", "fail": "failed", "skipped": "skipped"}
# tsuku's canonical categories and the subcategory of a failure with no message, by exit code.
_CANONICAL = {"api_error": "network_error", "validation_failed": "install_failed", "timeout": "network_error",
              "deterministic_insufficient": "generation_failed", "deterministic": "generation_failed",
              "network": "network_error"}  # fmt: skip
_SUBCATEGORIES = {6: "install_failed", 7: "verify_failed", 9: "deterministic_failed"}


def record_row(record: dict[str, Any]) -> dict[str, Any]:
    """A validation result or a per-record NDJSON line as a result row."""
    if "status" in record:
        result = _RESULTS[record["status"]]
    else:
        result = "passed" if record["exit_code"] == 0 else "failed"
    row = {
        "recipe_name": record["recipe"],
        "ecosystem": ECOSYSTEM,
        "result": result,
        "platform": record["platform"],
    }
    if record.get("attempts", 0) > 1:
        row["attempts"] = record["attempts"]
    if result == "failed":
        given = record.get("category")
        category = (_CANONICAL.get(given, given) if given else None) or (
            "blocked" if record.get("blocked_by") else None
        )
        row["error_category"] = category or f"exit_code_{record['exit_code']}"
        if record["exit_code"] in _SUBCATEGORIES:
            row["error_subcategory"] = _SUBCATEGORIES[record["exit_code"]]
        if record.get("blocked_by"):
            row["blocked_by"] = record["blocked_by"]
        message = f"exit code {record['exit_code']}"
        if record.get("attempts"):
            message += f" after {record['attempts']} attempt(s)"
        if record.get("blocked_by"):
            message += " blocked by " + ", ".join(record["blocked_by"])
        row["error_message"] = message
    return row


def junit_row(case: ET.Element) -> dict[str, Any]:
    failure = case.find("failure")
    skipped = case.find("skipped")
    row: dict[str, Any] = {
        "recipe_name": f"{case.get('classname')}.{case.get('name')}",
        "ecosystem": ECOSYSTEM,
        "result": "failed" if failure is not None else "skipped" if skipped is not None else "passed",
        "duration_seconds": float(case.get("time") or 0),
    }
    if failure is not None:
        row["error_category"] = failure.get("type")
        row["error_message"] = "\n".join(part for part in (failure.get("message"), failure.text) if part)
    return row


def payload(rows: list[dict[str, Any]], batch_id: str) -> dict[str, Any]:
    passed = sum(1 for row in rows if row["result"] == "passed")
    failed = sum(1 for row in rows if row["result"] == "failed")
    return {
        "batch_id": batch_id,
        "ecosystem": ECOSYSTEM,
        "started_at": STARTED_AT,
        "completed_at": COMPLETED_AT,
        "total_recipes": len(rows),
        "passed": passed,
        "failed": failed,
        "skipped": len(rows) - passed - failed,
        "success_rate": round(passed / (passed + failed), 4) if passed + failed else 0.0,
        "macos_minutes": 0.0,
        "linux_minutes": 0.0,
        "results": rows,
    }


def read_rows(fmt: str, directory: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(item for item in directory.rglob("*") if item.is_file()):
        if fmt == "validation-results":
            with path.open("rb") as stream:
                rows.extend(record_row(record) for record in json.load(stream))
        elif fmt == "ndjson":
            with path.open("rb") as stream:
                rows.extend(record_row(json.loads(line)) for line in stream if line.strip())
        else:
            # The benchmark's own generated files: nothing untrusted is parsed here.
            cases = ET.parse(path).getroot().iter("testcase")  # noqa: S314
            rows.extend(junit_row(case) for case in cases)
    return rows


def malformed_ndjson_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open("rb") as stream:
        for line in stream:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            rows.append(record_row(record))
    return rows


def nested_suites_rows(path: Path) -> list[dict[str, Any]]:
    rows = []
    # The benchmark's own generated files: nothing untrusted is parsed here.
    for _, element in ET.iterparse(path):  # noqa: S314
        if element.tag == "testcase":
            rows.append(junit_row(element))
            element.clear()
    return rows


class _Refused(Exception):
    pass


def entity_xml_rows(path: Path) -> list[dict[str, Any]]:
    def refuse(*_: object) -> None:
        raise _Refused

    parser = expat.ParserCreate()
    parser.EntityDeclHandler = refuse
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 16):
                parser.Parse(chunk, False)
    except _Refused:
        return []
    raise ValueError(f"{path} declares no entity")


HOSTILE = {"malformed-ndjson": malformed_ndjson_rows, "nested-suites": nested_suites_rows,
           "entity-xml": entity_xml_rows}  # fmt: skip


def main(argv: list[str]) -> int:
    fmt, where, out = argv
    rows = HOSTILE[fmt](Path(where)) if fmt in HOSTILE else read_rows(fmt, Path(where))
    body = json.dumps(payload(rows, "bench-floor"), separators=(",", ":"))
    Path(out).write_bytes(body.encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
