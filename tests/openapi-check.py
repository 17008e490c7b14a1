#!/usr/bin/env python3
"""docs/openapi.json against the coordinator's router: the document is JSON,
names OpenAPI 3, and documents exactly the routes in coordinator/http_api.c's
ROUTE(...) table (no route without documentation, no documented route that
does not exist); every $ref resolves and every operation has responses.
The full linter is `make deploy-lint` (npm); this one needs only python3.
    tests/openapi-check.py        (run by make check)"""
import json
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
doc = json.loads((root / "docs/openapi.json").read_text())
src = (root / "coordinator/http_api.c").read_text()
routes = set(re.findall(r'^\s*ROUTE\("([A-Z]+)",\s*"([^"]+)"', src, re.M))
problems = []
if not routes:
    problems.append("no ROUTE(...) lines found in coordinator/http_api.c")
if not str(doc.get("openapi", "")).startswith("3."):
    problems.append("'openapi' is not 3.x")
documented = {(m.upper(), p) for p, item in doc.get("paths", {}).items() for m in item
              if m in ("get", "put", "post", "delete", "patch", "head", "options")}
for m, p in sorted(routes - documented):
    problems.append(f"{m} {p} is routed but not in docs/openapi.json")
for m, p in sorted(documented - routes):
    problems.append(f"{m} {p} is documented but not routed")


def refs(node, where):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                target = doc
                for part in v.lstrip("#/").split("/"):
                    target = target.get(part) if isinstance(target, dict) else None
                if target is None:
                    problems.append(f"{where}: $ref {v} does not resolve")
            else:
                refs(v, where)
    elif isinstance(node, list):
        for v in node:
            refs(v, where)


refs(doc, "docs/openapi.json")
for p, item in doc.get("paths", {}).items():
    for m, o in item.items():
        if not o.get("responses"):
            problems.append(f"{m.upper()} {p} has no responses")
for line in problems:
    print("openapi-check:", line, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"openapi-check: docs/openapi.json documents the {len(routes)} routes of coordinator/http_api.c")
