#!/usr/bin/env python3
"""Writes N canonical events of one integration, "crm", each on a distinct
resource outside its grants (issue 16, item 3: the out-of-grant-resources
stream). Usage: scripts/hostile-out-of-grant.py N > stream.jsonl"""
import sys, datetime
n = int(sys.argv[1])
t0 = datetime.datetime(2026, 11, 2, 10, 0, tzinfo=datetime.timezone.utc)
out = sys.stdout
for i in range(n):
    t = t0 + datetime.timedelta(milliseconds=100 * i)
    ts = t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    out.write('{"ts":"%s","integration_id":"crm","resource":"junk%d","method":"GET","status":200}\n' % (ts, i))
