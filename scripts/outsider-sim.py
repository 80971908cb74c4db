#!/usr/bin/env python3
"""A second, independent CRM-traffic generator, to check that tripline
generalises beyond its own simulator (crates/sim).

It shares no code and no parameters with crates/sim: other archetypes, other
dispersion, other incident shapes, its own labels and its own scorer. Use it
as a user would use tripline on traffic nobody tuned for:

    scripts/outsider-sim.py gen --seed 5 --out /tmp/out5
    tripline replay --registry /tmp/out5/registry.toml /tmp/out5/events.jsonl > /tmp/out5/alerts.jsonl
    scripts/outsider-sim.py score /tmp/out5

`gen` writes events.jsonl (canonical events, time-ordered), registry.toml
and truth.json (incidents and benign look-alikes with their windows);
`score` matches alerts.jsonl against truth.json and prints recall by
incident family and difficulty, false alerts per 100 integration-days by
kind and cause, and time to detect. Standard library only.
"""

import argparse
import datetime as dt
import json
import math
import os
import random
import sys

START = dt.datetime(2026, 10, 5, tzinfo=dt.timezone.utc)  # a Monday
RESOURCES = ["contacts", "companies", "deals", "tickets", "notes", "tasks",
             "products", "line_items", "quotes", "emails", "calls", "meetings"]
RARE = ["payments", "invoices", "attachments", "users", "owners"]


def iso(ms):
    t = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam < 30:
        l, k, p = math.exp(-lam), 0, 1.0
        while True:
            p *= rng.random()
            if p <= l:
                return k
            k += 1
    return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))


class Integration:
    def __init__(self, rng, idx, arche):
        self.arche = arche
        vendors = ["acme", "northwind", "globex", "initech", "umbrella", "hooli",
                   "stark", "wayne", "wonka", "tyrell", "cyberdyne", "soylent"]
        kinds = {"biz": "sync", "always": "gateway", "batch": "etl",
                 "sparse": "report", "bursty": "automation", "desk": "helpdesk"}
        self.id = "%s-%s-%02d" % (rng.choice(vendors), kinds[arche], idx)
        self.tz = rng.choice([-8, -5, -3, 0, 1, 2, 5.5, 9])
        self.weekend = rng.uniform(0.05, 0.35)
        self.night = rng.uniform(0.01, 0.08)
        if arche == "biz":
            self.peak = rng.uniform(40, 300)
        elif arche == "always":
            self.peak = rng.uniform(400, 900)
        elif arche == "batch":
            self.peak = rng.uniform(1, 4)
            self.job_hour = rng.randrange(0, 6)
            self.job_min = rng.uniform(15, 50)
            self.job_rate = rng.uniform(20, 90)  # calls per minute
            self.job_weekly = rng.random() < 0.3
            self.job_dow = rng.randrange(7)
        elif arche == "sparse":
            self.peak = rng.uniform(2, 10)
            self.weekend = 0.0
        elif arche == "bursty":
            self.peak = rng.uniform(30, 120)
        else:  # desk
            self.peak = rng.uniform(60, 250)
        n_res = rng.randint(2, 5)
        self.resources = rng.sample(RESOURCES, n_res)
        self.res_w = [rng.uniform(0.2, 1.0) for _ in self.resources]
        self.write_share = rng.uniform(0.0, 0.4)
        self.delete = rng.random() < 0.15
        self.rec_median = rng.choice([1, 1, 3, 10, 20, 50])
        self.keys = ["k_%s_%d" % (self.id.replace("-", ""), j)
                     for j in range(rng.choice([1, 1, 2, 3]))]
        self.key_w = [rng.uniform(0.3, 1.0) for _ in self.keys]
        base = "%d.%d.%d" % (rng.choice([52, 34, 104, 185, 91]), rng.randrange(256),
                             rng.randrange(256))
        self.pool = rng.random() < 0.25  # egress from many /24s of one /16
        if self.pool:
            b16 = base.rsplit(".", 1)[0]
            self.nets = ["%s.%d" % (b16, rng.randrange(256)) for _ in range(rng.randint(6, 12))]
        else:
            self.nets = [base] + (["%d.%d.%d" % (rng.choice([13, 35, 44]), rng.randrange(256),
                                                 rng.randrange(256))] if rng.random() < 0.3 else [])
        if arche == "desk":
            self.principals = ["agent%02d@%s.example" % (j, self.id) for j in range(rng.randint(4, 12))]
        else:
            self.principals = ["svc@%s.example" % self.id]
        self.ua = rng.choice(["python-requests/2.31", "okhttp/4.12", "Go-http-client/2.0",
                              "node-fetch/3.3", "%s/1.0" % self.id])
        self.start_day = 0
        self.stop = None  # (from_day, to_day) silence
        self.declare_networks = not self.pool and rng.random() < 0.5
        self.declare_hours = arche == "sparse"
        self.hourly = {}

    def local_hour(self, t_min):
        return ((t_min / 60.0) + self.tz) % 24

    def rate(self, rng, t_min):
        """Expected calls in minute t_min (minutes since START)."""
        day = t_min // 1440
        if day < self.start_day:
            return 0.0
        if self.stop and self.stop[0] <= day < self.stop[1]:
            return 0.0
        lh = self.local_hour(t_min)
        dow = int(((t_min / 60.0 + self.tz) // 24) % 7)  # 0 = Monday
        wk = self.weekend if dow >= 5 else 1.0
        h = int(t_min // 60)
        if h not in self.hourly:  # hour-level overdispersion, CV 1/sqrt(HOUR_SHAPE)
            prev = next(iter(self.hourly.values()), None)
            if prev is not None and HOUR_PERSIST > 0 and rng.random() < HOUR_PERSIST:
                self.hourly = {h: prev}  # the level carries into the next hour
            else:
                self.hourly = {h: rng.gammavariate(HOUR_SHAPE, 1 / HOUR_SHAPE)}
        od = self.hourly[h]
        a = self.arche
        if a == "always":
            shape = 0.55 + 0.45 * math.cos((lh - 14) / 24 * 2 * math.pi)
            return self.peak / 60 * shape * (0.7 if dow >= 5 else 1.0) * od
        if a == "batch":
            r = self.peak / 60 * od
            if (not self.job_weekly or dow == self.job_dow):
                m = (lh - self.job_hour) * 60
                if 0 <= m < self.job_min:
                    r += self.job_rate
            return r
        if a == "sparse":
            if dow >= 5 or not (8 <= lh < 18):
                return 0.0
            return self.peak / 60 * od
        # biz, bursty, desk: business hours with shoulders
        if 8 <= lh < 18:
            shape = 1.0 - 0.25 * abs(lh - 13) / 5
        elif 6 <= lh < 8 or 18 <= lh < 21:
            shape = 0.3
        else:
            shape = self.night
        return self.peak / 60 * shape * wk * od


HOUR_SHAPE = 16.0
HOUR_PERSIST = 0.0


def gen(args):
    global HOUR_SHAPE, HOUR_PERSIST
    HOUR_SHAPE, HOUR_PERSIST = args.hour_shape, args.hour_persist
    rng = random.Random(args.seed)
    days = args.days
    arches = (["biz"] * 16 + ["always"] * 2 + ["batch"] * 8 + ["sparse"] * 8 +
              ["bursty"] * 6 + ["desk"] * 6)
    ints = [Integration(rng, i, a) for i, a in enumerate(arches)]
    # onboarding: a few start late (their own learning period)
    for ig in rng.sample(ints, 3):
        ig.start_day = rng.randint(5, 9)
    truth = []
    mods = []  # (integration, start_min, end_min, fn-name, params)

    def pick(pred, used):
        c = [i for i in ints if pred(i) and i.id not in used and i.start_day == 0]
        if not c:  # the archetype is used up: any unused integration of a busy kind
            c = [i for i in ints if i.id not in used and i.start_day == 0
                 and i.arche in ("biz", "desk", "bursty")]
        return rng.choice(c)

    used = set()
    lo_day = 12

    def window(dur_min, hours=None):
        d = rng.randint(lo_day, days - 2)
        s = d * 1440 + rng.randrange(1440)
        return s, s + dur_min

    def busy_window(ig, dur_min):
        """A window starting inside the integration's busy hours."""
        for _ in range(5000):
            s, e = window(dur_min)
            if ig.rate(random.Random(0), s) * 60 >= ig.peak * 0.5:
                return s, e
        return window(dur_min)

    def add(kind, family, difficulty, ig, s, e, accept, **p):
        used.add(ig.id)
        truth.append(dict(kind=kind, family=family, difficulty=difficulty,
                          integration_id=ig.id, start=START_MS + s * 60000,
                          end=START_MS + e * 60000, accept=accept))
        mods.append((ig, s, e, kind, p))

    learned = ["call_spike"]
    # rises
    for _ in range(3):
        ig = pick(lambda i: i.arche in ("biz", "desk", "always"), used)
        s, e = busy_window(ig, rng.randint(10, 20))
        add("spike", "rise", "easy", ig, s, e, learned, mult=rng.uniform(8, 15))
    for _ in range(3):
        ig = pick(lambda i: i.arche in ("biz", "desk") and i.peak >= 80, used)
        s, e = busy_window(ig, rng.randint(60, 180))
        add("sustained", "rise", "moderate", ig, s, e, learned, mult=rng.uniform(3, 4))
    ig = pick(lambda i: i.arche == "always", used)
    s, e = window(240)
    add("sustained", "rise", "hard", ig, s, e, learned, mult=rng.uniform(2.2, 2.8))
    for _ in range(2):
        ig = pick(lambda i: i.arche == "sparse", used)
        s, e = busy_window(ig, 60)
        add("lowvol_leak", "rise", "hard", ig, s, e, learned, mult=4.0)
    # one key of several
    ig = pick(lambda i: len(i.keys) >= 2 and i.arche in ("biz", "desk", "always"), used)
    s, e = busy_window(ig, 60)
    add("key_rise", "rise", "moderate", ig, s, e, learned, mult=5.0, key=ig.keys[-1])
    # exfiltration: records per call
    for diff in ("moderate", "hard"):
        ig = pick(lambda i: i.arche in ("biz", "desk") and i.rec_median >= 3, used)
        s, e = busy_window(ig, 180)
        add("exfil", "volume", diff, ig, s, e, ["volume_spike"],
            rec_mult=8.0 if diff == "moderate" else 5.0)
    ig = pick(lambda i: i.arche in ("biz", "bursty"), used)
    s, e = busy_window(ig, 20)
    add("bulk_export", "volume", "easy", ig, s, e, ["call_spike", "volume_spike"])
    # probing inside busy traffic
    ig = pick(lambda i: i.arche == "always", used)
    s, e = busy_window(ig, 30)
    add("probing", "auth", "hard", ig, s, e, ["error_burst"], n401=40)
    ig = pick(lambda i: i.arche in ("biz", "desk"), used)
    s, e = busy_window(ig, 15)
    add("probing", "auth", "easy", ig, s, e, ["error_burst"], n401=150)
    # data types
    for _ in range(3):
        ig = pick(lambda i: i.arche in ("biz", "desk", "bursty"), used)
        s, e = busy_window(ig, 30)
        add("new_data_type", "data_type", "easy", ig, s, e,
            ["new_data_type", "scope_violation"], res=rng.choice(RARE))
    # networks
    for _ in range(3):
        ig = pick(lambda i: i.arche in ("biz", "desk", "bursty", "always"), used)
        s, e = busy_window(ig, 30)
        add("new_network", "network", "easy", ig, s, e, ["new_source"],
            net="%d.%d.%d" % (rng.choice([45, 77, 141, 196]), rng.randrange(256), rng.randrange(256)))
    # revoked key, offboarded principal
    revoked, offboarded = [], []
    for _ in range(2):
        ig = pick(lambda i: i.arche in ("biz", "desk", "bursty"), used)
        s, e = busy_window(ig, 20)
        k = "k_old_%s" % ig.id.replace("-", "")
        revoked.append((ig, k, s - 7 * 1440))
        add("revoked_key", "credential", "easy", ig, s, e, ["revoked_credential"], key=k)
    ig = pick(lambda i: i.arche == "desk", used)
    s, e = busy_window(ig, 120)
    e = days * 1440  # the offboarded agent's traffic goes on: every call after is the incident
    offboarded.append((ig.principals[0], s))
    add("offboarded", "credential", "easy", ig, s, e, ["revoked_credential"], principal=ig.principals[0])
    # dormant: a short-lived integration, and one with a full history
    ig = pick(lambda i: i.arche in ("biz", "desk"), used)
    ig.stop = (4, days - 3)
    s = (days - 3) * 1440
    add("dormant_short", "dormancy", "moderate", ig, s, s + 1440, ["dormant_reactivated"])
    if days >= 27:
        ig = pick(lambda i: i.arche in ("biz", "bursty"), used)
        ig.stop = (9, days - 2)
        s = (days - 2) * 1440
        add("dormant_long", "dormancy", "easy", ig, s, s + 1440, ["dormant_reactivated"])
    # off hours
    ig = pick(lambda i: i.arche == "sparse", used)
    d = rng.randint(lo_day, days - 2)
    while (START + dt.timedelta(days=d)).weekday() >= 5:
        d -= 1
    s = d * 1440 + int((2 - ig.tz) % 24 * 60)
    add("off_hours", "registry", "easy", ig, s, s + 30, ["off_hours"], calls=25)
    # an unregistered integration
    shadow = Integration(rng, 99, "biz")
    shadow.id = "shadow-exporter"
    shadow.start_day = rng.randint(lo_day, days - 3)
    ints.append(shadow)
    s = shadow.start_day * 1440
    truth.append(dict(kind="unregistered", family="registry", difficulty="easy",
                      integration_id=shadow.id, start=START_MS + s * 60000,
                      end=START_MS + days * 1440 * 60000, accept=["unknown_integration"]))
    # benign look-alikes (must stay quiet)
    benign = []
    for _ in range(4):  # x1.3-1.8 for hours
        ig = rng.choice([i for i in ints if i.id not in used and i.arche != "sparse"])
        s, e = busy_window(ig, rng.randint(120, 360))
        benign.append(dict(kind="drift", integration_id=ig.id, start=START_MS + s * 60000,
                           end=START_MS + e * 60000))
        mods.append((ig, s, e, "drift", dict(mult=rng.uniform(1.3, 1.8))))
    for _ in range(3):  # small 429 bursts
        ig = rng.choice([i for i in ints if i.id not in used and i.arche in ("always", "biz")])
        s, e = busy_window(ig, 3)
        benign.append(dict(kind="429_burst", integration_id=ig.id, start=START_MS + s * 60000,
                           end=START_MS + e * 60000))
        mods.append((ig, s, e, "429", dict(n=rng.randint(15, 40))))
    # month end (Oct 31): batch jobs run twice as long
    me = (dt.datetime(2026, 10, 31, tzinfo=dt.timezone.utc) - START).days
    if me < days:
        for ig in [i for i in ints if i.arche == "batch" and not i.job_weekly][:3]:
            s = me * 1440
            benign.append(dict(kind="month_end", integration_id=ig.id, start=START_MS + s * 60000,
                               end=START_MS + (s + 1440) * 60000))
            mods.append((ig, s, s + 1440, "month_end", {}))
    # a permanent step x1.5 (a rollout)
    ig = rng.choice([i for i in ints if i.id not in used and i.arche in ("biz", "desk")])
    s = (days // 2) * 1440
    benign.append(dict(kind="rollout_step", integration_id=ig.id, start=START_MS + s * 60000,
                       end=START_MS + days * 1440 * 60000))
    mods.append((ig, s, days * 1440, "drift", dict(mult=1.5)))

    by_int = {}
    for m in mods:
        by_int.setdefault(m[0].id, []).append(m)

    events = []
    for ig in ints:
        my = by_int.get(ig.id, [])
        for t in range(days * 1440):
            lam = ig.rate(rng, t)
            active = [m for m in my if m[1] <= t < m[2]]
            mult, rec_mult = 1.0, 1.0
            for m in active:
                k, p = m[3], m[4]
                if k in ("spike", "sustained", "lowvol_leak", "drift"):
                    mult *= p["mult"]
                if k == "month_end":
                    if ig.arche == "batch":
                        lh = ig.local_hour(t)
                        mm = (lh - ig.job_hour) * 60
                        if ig.job_min <= mm < 2 * ig.job_min:
                            lam += ig.job_rate
                if k == "exfil":
                    rec_mult = p["rec_mult"]
            n = poisson(rng, lam * mult)
            ms0 = START_MS + t * 60000
            for _ in range(n):
                events.append(make(rng, ig, ms0 + rng.randrange(60000), rec_mult=rec_mult))
            for m in active:
                k, p = m[3], m[4]
                if k == "key_rise":
                    share = ig.key_w[-1] / sum(ig.key_w)
                    for _ in range(poisson(rng, lam * share * (p["mult"] - 1))):
                        events.append(make(rng, ig, ms0 + rng.randrange(60000), key=p["key"]))
                elif k == "bulk_export" and t < m[1] + 20:
                    for _ in range(10):
                        events.append(make(rng, ig, ms0 + rng.randrange(60000), records=1000,
                                           res=ig.resources[0], method="GET"))
                elif k == "probing":
                    per = p["n401"] / (m[2] - m[1])
                    for _ in range(poisson(rng, per)):
                        events.append(make(rng, ig, ms0 + rng.randrange(60000), status=401))
                elif k == "new_data_type":
                    for _ in range(max(1, poisson(rng, max(lam, 0.3) * 0.1))):
                        events.append(make(rng, ig, ms0 + rng.randrange(60000), res=p["res"],
                                           method="GET"))
                elif k == "new_network":
                    for e in events[len(events) - n:] if n else []:
                        e["source_ip"] = "%s.%d" % (p["net"], rng.randrange(1, 255))
                    if n == 0 and t == m[1]:
                        ev = make(rng, ig, ms0 + rng.randrange(60000))
                        ev["source_ip"] = "%s.%d" % (p["net"], rng.randrange(1, 255))
                        events.append(ev)
                elif k == "revoked_key":
                    if t % 2 == 0:
                        events.append(make(rng, ig, ms0 + rng.randrange(60000), key=p["key"]))
                elif k == "offboarded":
                    for e in events[len(events) - n:] if n else []:
                        e["principal"] = p["principal"]
                    if t % 10 == 0:
                        events.append(make(rng, ig, ms0 + rng.randrange(60000),
                                           principal=p["principal"]))
                elif k == "off_hours" and t < m[1] + 25:
                    events.append(make(rng, ig, ms0 + rng.randrange(60000)))
                elif k == "429":
                    per = p["n"] / 3
                    for _ in range(poisson(rng, per)):
                        events.append(make(rng, ig, ms0 + rng.randrange(60000), status=429))
    # the dormant integrations resume at their normal rate: rate() returns
    # to normal after `stop`
    events.sort(key=lambda e: e["ts"])
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "events.jsonl"), "w") as f:
        for e in events:
            e = dict(e)
            e["ts"] = iso(e["ts"]) if rng.random() < 0.7 else e["ts"]
            f.write(json.dumps(e, separators=(",", ":")) + "\n")
    with open(os.path.join(args.out, "registry.toml"), "w") as f:
        for ig in ints:
            if ig.id == "shadow-exporter":
                continue
            grants = sorted({"%s:read" % r for r in ig.resources} |
                            {"%s:write" % r for r in ig.resources if ig.write_share > 0} |
                            {"%s:delete" % r for r in ig.resources if ig.delete})
            f.write('[[integrations]]\nid = "%s"\nname = "%s"\nowner = "it@corp.example"\n' % (ig.id, ig.id))
            f.write("granted = [%s]\n" % ", ".join('"%s"' % g for g in grants))
            if ig.declare_networks:
                f.write("networks = [%s]\n" % ", ".join('"%s.0/24"' % n for n in ig.nets))
            if ig.declare_hours:
                off = ig.tz
                sign = "+" if off >= 0 else "-"
                hh, mm = int(abs(off)), int(round((abs(off) % 1) * 60))
                f.write('active_hours = { days = ["mon","tue","wed","thu","fri"], start = "07:00", '
                        'end = "19:00", utc_offset = "%s%02d:%02d" }\n' % (sign, hh, mm))
            f.write("\n")
            for k in ig.keys:
                f.write('[[keys]]\nid = "%s"\nintegration = "%s"\ncreated = "2026-01-01T00:00:00Z"\n\n' % (k, ig.id))
        for ig, k, at in revoked:
            f.write('[[keys]]\nid = "%s"\nintegration = "%s"\ncreated = "2025-06-01T00:00:00Z"\n'
                    'revoked_at = "%s"\n\n' % (k, ig.id, iso(START_MS + at * 60000)))
        for p, at in offboarded:
            f.write('[[principals]]\nid = "%s"\noffboarded_at = "%s"\n\n' % (p, iso(START_MS + at * 60000)))
    int_days = sum(days - ig.start_day - ((ig.stop[1] - ig.stop[0]) if ig.stop else 0) for ig in ints)
    with open(os.path.join(args.out, "truth.json"), "w") as f:
        json.dump(dict(seed=args.seed, days=days, integrations=len(ints), integration_days=int_days,
                       events=len(events), incidents=truth, benign=benign,
                       archetypes={ig.id: ig.arche for ig in ints}), f, indent=1)
    print("%d events, %d integrations, %d incidents, %d benign look-alikes -> %s"
          % (len(events), len(ints), len(truth), len(benign), args.out), file=sys.stderr)


START_MS = int(START.timestamp() * 1000)


def make(rng, ig, ms, rec_mult=1.0, key=None, status=None, res=None, method=None,
         records=None, principal=None):
    if res is None:
        res = rng.choices(ig.resources, ig.res_w)[0]
    if method is None:
        u = rng.random()
        if u < ig.write_share:
            method = rng.choice(["POST", "PATCH", "PUT"])
        elif ig.delete and u < ig.write_share + 0.02:
            method = "DELETE"
        else:
            method = "GET"
    if records is None:
        if method == "GET":
            records = max(1, int(rng.lognormvariate(math.log(ig.rec_median), 0.6) * rec_mult))
        else:
            records = 1
    if status is None:
        u = rng.random()
        status = 200 if u < 0.985 else (404 if u < 0.995 else (500 if u < 0.999 else 401))
        if method == "POST" and status == 200:
            status = 201
    if key is None:
        key = rng.choices(ig.keys, ig.key_w)[0]
    net = rng.choice(ig.nets)
    ev = {"ts": ms, "integration_id": ig.id, "resource": res, "method": method,
          "status": status, "key_id": key,
          "principal": principal or rng.choice(ig.principals),
          "endpoint": "/crm/v3/objects/%s" % res, "records": records if status < 400 else 0,
          "bytes": (records * rng.randint(300, 1400) + 200) if status < 400 else 120,
          "source_ip": "%s.%d" % (net, rng.randrange(1, 255)), "user_agent": ig.ua}
    return ev


def score(args):
    truth = json.load(open(os.path.join(args.dir, "truth.json")))
    alerts = [json.loads(l) for l in open(os.path.join(args.dir, args.alerts)) if l.strip()]

    def ms(s):
        return int(dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)

    grace = args.grace_min * 60000
    matched = set()
    rows = []
    for inc in truth["incidents"]:
        hits = []
        for i, a in enumerate(alerts):
            if a.get("integration_id") != inc["integration_id"]:
                continue
            t = ms(a["detected_at"])
            if inc["start"] - 60000 <= t <= inc["end"] + grace:
                matched.add(i)
                if a["kind"] in inc["accept"]:
                    hits.append(t)
        ttd = (min(hits) - inc["start"]) / 60000 if hits else None
        rows.append((inc, ttd))
    benign_hit = {}
    false = []
    for i, a in enumerate(alerts):
        if i in matched:
            continue
        if a.get("integration_id") == "*":
            false.append((a, "aggregate"))
            continue
        t = ms(a["detected_at"])
        cause = "other"
        for b in truth["benign"]:
            if b["integration_id"] == a.get("integration_id") and b["start"] - 60000 <= t <= b["end"] + grace:
                cause = b["kind"]
        false.append((a, cause))
    print("incidents (detected if an accepted kind fires on the integration from 1 min before "
          "its start to %d min after its end):" % args.grace_min)
    fam = {}
    diff = {}
    for inc, ttd in rows:
        fam.setdefault(inc["family"], [0, 0])
        diff.setdefault(inc["difficulty"], [0, 0])
        fam[inc["family"]][1] += 1
        diff[inc["difficulty"]][1] += 1
        if ttd is not None:
            fam[inc["family"]][0] += 1
            diff[inc["difficulty"]][0] += 1
        print("  %-14s %-9s %-28s %s" % (inc["kind"], inc["difficulty"], inc["integration_id"],
                                        "TTD %.1f min" % ttd if ttd is not None else "MISSED"))
    tot = sum(v[0] for v in fam.values()), sum(v[1] for v in fam.values())
    print("recall by family: " + ", ".join("%s %d/%d" % (k, v[0], v[1]) for k, v in sorted(fam.items())))
    print("recall by difficulty: " + ", ".join("%s %d/%d" % (k, v[0], v[1]) for k, v in sorted(diff.items())))
    print("recall overall: %d/%d (%.2f)" % (tot[0], tot[1], tot[0] / tot[1]))
    ttds = sorted(t for _, t in rows if t is not None)
    if ttds:
        p = lambda q: ttds[min(len(ttds) - 1, int(q * len(ttds)))]
        print("TTD p50 %.1f min, p90 %.1f min" % (p(0.5), p(0.9)))
    idays = truth["integration_days"]
    print("false alerts: %d over %d integration-days = %.2f per 100" % (len(false), idays, 100 * len(false) / idays))
    by = {}
    for a, cause in false:
        by.setdefault((a["kind"], cause), []).append(a)
    for (k, c), v in sorted(by.items(), key=lambda x: -len(x[1])):
        print("  %3d %-20s %-14s e.g. %s" % (len(v), k, c, v[0]["summary"][:150]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--seed", type=int, default=5)
    g.add_argument("--days", type=int, default=28)
    g.add_argument("--out", required=True)
    g.add_argument("--hour-shape", type=float, default=16.0,
                   help="gamma shape of the hourly level (CV = 1/sqrt(shape); 16: CV 0.25)")
    g.add_argument("--hour-persist", type=float, default=0.0,
                   help="chance an hour keeps the previous hour's level (0: independent hours)")
    s = sub.add_parser("score")
    s.add_argument("dir")
    s.add_argument("--alerts", default="alerts.jsonl")
    s.add_argument("--grace-min", type=int, default=60)
    a = ap.parse_args()
    gen(a) if a.cmd == "gen" else score(a)


if __name__ == "__main__":
    main()
