#!/usr/bin/env python3
"""Check every PromQL query of the tripline Grafana dashboard against a live
Prometheus.

    scripts/dashboard_queries.py --list
    scripts/dashboard_queries.py http://127.0.0.1:9090 [--retry-for 60]

Extracts every `expr` from every panel target (rows and nested panels
included) plus the dashboard's query variables (`label_values(METRIC, label)`
is checked as `METRIC`), substitutes Grafana variables ($__rate_interval,
$__interval, $__range, $instance, ...), and runs each as an instant query
(`/api/v1/query`). A query passes when Prometheus accepts it and returns a
non-empty result. Exits non-zero if any query fails; the last line is
'N passed, M failed'.

Standard library only.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_DASHBOARD = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), os.pardir,
    "deploy", "grafana", "dashboards", "tripline.json")

# Grafana's global variables, and what stands in for them in an instant query.
def builtin_vars(rate_interval: str) -> dict[str, str]:
    return {
        "__rate_interval": rate_interval,
        "__interval": rate_interval,
        "__range": "1h",
        "__range_s": "3600",
        "__interval_ms": "60000",
    }

LABEL_VALUES = re.compile(r"^\s*label_values\((?P<body>.*)\)\s*$", re.S)
VAR_REF = re.compile(r"\$\{(?P<braced>\w+)(?::\w+)?\}|\[\[(?P<old>\w+)\]\]|\$(?P<plain>\w+)")


def iter_panels(panels):
    for p in panels or []:
        yield p
        # Rows (collapsed or not) may carry nested panels.
        yield from iter_panels(p.get("panels"))


def extract(dashboard: dict) -> list[dict]:
    """Return [{"source": str, "expr": str}] for every PromQL query."""
    out = []
    for p in iter_panels(dashboard.get("panels")):
        title = p.get("title") or f"panel {p.get('id')}"
        for t in p.get("targets") or []:
            expr = t.get("expr")
            if expr is None or t.get("hide"):
                continue
            out.append({"source": f"panel '{title}' ref {t.get('refId', '?')}", "expr": expr})
    for v in (dashboard.get("templating") or {}).get("list", []):
        if v.get("type") != "query":
            continue
        q = v.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if not q:
            continue
        m = LABEL_VALUES.match(q)
        if m:
            body = m.group("body")
            # label_values(metric_selector, label) -> metric_selector;
            # label_values(label) has no selector to check.
            depth, cut = 0, None
            for i, ch in enumerate(body):
                if ch in "({[":
                    depth += 1
                elif ch in ")}]":
                    depth -= 1
                elif ch == "," and depth == 0:
                    cut = i
            if cut is None:
                continue
            q = body[:cut].strip()
        elif q.strip().startswith(("label_names(", "metrics(", "query_result(")):
            if q.strip().startswith("query_result("):
                q = q.strip()[len("query_result("):-1]
            else:
                continue
        out.append({"source": f"variable '{v.get('name')}'", "expr": q})
    return out


def substitute(expr: str, variables: dict[str, str]) -> tuple[str, list[str]]:
    """Replace Grafana variable references; return (expr, unknown names)."""
    unknown = []

    def repl(m):
        name = m.group("braced") or m.group("old") or m.group("plain")
        if name in variables:
            return variables[name]
        unknown.append(name)
        return m.group(0)

    return VAR_REF.sub(repl, expr), unknown


def dashboard_variables(dashboard: dict, rate_interval: str) -> dict[str, str]:
    vs = builtin_vars(rate_interval)
    for v in (dashboard.get("templating") or {}).get("list", []):
        name = v.get("name")
        if not name:
            continue
        if v.get("type") == "datasource":
            vs[name] = "prometheus"  # only appears in datasource refs, not in exprs
        elif v.get("type") in ("constant", "textbox", "custom") and not v.get("multi"):
            cur = (v.get("current") or {}).get("value")
            vs[name] = cur if isinstance(cur, str) else ".*"
        else:
            # Query / multi-value variables are used as regex matchers (=~).
            vs[name] = v.get("allValue") or ".*"
    return vs


def query(prom_url: str, expr: str, timeout: float) -> tuple[bool, str]:
    url = prom_url.rstrip("/") + "/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            body = json.load(r)
    except urllib.error.HTTPError as e:  # 400/422: Prometheus rejected the query
        try:
            body = json.load(e)
        except Exception:
            return False, f"HTTP {e.code}"
    except Exception as e:  # connection refused, timeout, bad JSON
        return False, f"request failed: {e}"
    if body.get("status") != "success":
        return False, f"{body.get('errorType', 'error')}: {body.get('error', body)}"
    data = body.get("data") or {}
    rtype, result = data.get("resultType"), data.get("result")
    if rtype in ("vector", "matrix"):
        if not result:
            return False, "empty result"
        return True, f"{len(result)} series"
    if rtype in ("scalar", "string"):
        return True, rtype
    return False, f"unexpected resultType {rtype!r}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("prom_url", nargs="?", help="Prometheus base URL, e.g. http://127.0.0.1:9090")
    ap.add_argument("--dashboard", default=DEFAULT_DASHBOARD, help="dashboard JSON (default: %(default)s)")
    ap.add_argument("--list", action="store_true", help="print the substituted queries and exit")
    ap.add_argument("--rate-interval", default="5m", help="value for $__rate_interval/$__interval (default: %(default)s)")
    ap.add_argument("--retry-for", type=float, default=0.0,
                    help="keep retrying failing queries for this many seconds (a fresh Prometheus needs a few scrapes before rate() has data)")
    ap.add_argument("--allow-empty", action="append", default=[], metavar="REGEX",
                    help="an empty result is a pass for queries whose source or expr matches REGEX (repeatable), "
                         "e.g. for labelled counters a process only creates on first use")
    ap.add_argument("--timeout", type=float, default=10.0, help="per-request timeout, seconds")
    args = ap.parse_args(argv)

    with open(args.dashboard, encoding="utf-8") as f:
        dashboard = json.load(f)
    variables = dashboard_variables(dashboard, args.rate_interval)
    queries = extract(dashboard)
    if not queries:
        print("no queries found in", args.dashboard, file=sys.stderr)
        print("0 passed, 1 failed")
        return 1

    bad_vars = 0
    for q in queries:
        q["promql"], unknown = substitute(q["expr"], variables)
        if unknown:
            q["unknown"] = unknown
            bad_vars += 1

    if args.list:
        for q in queries:
            note = f"   # UNKNOWN VARIABLES: {', '.join(q['unknown'])}" if q.get("unknown") else ""
            print(f"{q['source']}\t{q['promql']}{note}")
        print(f"{len(queries)} queries", file=sys.stderr)
        return 1 if bad_vars else 0

    if not args.prom_url:
        ap.error("PROM_URL is required unless --list is given")

    allow = [re.compile(r) for r in args.allow_empty]
    pending = {i: q for i, q in enumerate(queries) if not q.get("unknown")}
    results: dict[int, tuple[bool, str]] = {i: (False, f"unknown variables {q['unknown']}")
                                            for i, q in enumerate(queries) if q.get("unknown")}
    deadline = time.monotonic() + args.retry_for
    while True:
        for i in list(pending):
            q = pending[i]
            ok, why = query(args.prom_url, q["promql"], args.timeout)
            if not ok and why == "empty result" and any(r.search(q["source"]) or r.search(q["expr"]) for r in allow):
                ok, why = True, "empty result (allowed)"
            results[i] = (ok, why)
            if ok:
                del pending[i]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(min(5.0, max(0.5, deadline - time.monotonic())))

    passed = failed = 0
    for i, q in enumerate(queries):
        ok, why = results[i]
        print(f"{'PASS' if ok else 'FAIL'}  {q['source']}: {why}\n      {q['promql']}")
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
