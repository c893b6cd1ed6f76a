#!/usr/bin/env python3
"""Helpers for bench/run.sh and bench/http.sh (through bench/lib.sh): process
CPU/RSS sampling, idle connections, wrk output parsing, upstream connection
counts, admin /stats, and the Markdown reports.

Subcommands (all print to stdout):
  pids ROOT                 ROOT and all its descendants, one per line
  cpu ROOT                  utime+stime and stime (seconds, "TOTAL SYSTEM") summed
                            over ROOT + descendants
  rss ROOT                  VmRSS (KB) summed over ROOT + descendants
  freeport [N]              N free 127.0.0.1 TCP ports
  wrk FILE                  parse wrk output (with --latency: p50..p99) -> JSON
  conns LOG PORT FROM TO    the upstream access log's lines FROM+1..TO of PORT:
                            lines, distinct and new $connection values -> JSON
  stats URL                 admin /stats -> JSON {name: value}
  wait-http URL TIMEOUT     poll until URL answers 200 (exit 1 on timeout)
  wait-port PORT TIMEOUT    poll until 127.0.0.1:PORT accepts (exit 1 on timeout)
  idle PORT N ROOT SETTLE   open N keep-alive connections through PORT, one GET
                            each, hold them, measure RSS of ROOT's tree -> JSON
  wrk-check NAME LOAD FILE  the anomalies of a wrk run (errors, no request), one a line
  set RESULTS.json SECTION KEY VALUE   record a value (SECTION "-" = top level; with
                            BENCH_ROUND=N set, kept per round, the median in SECTION)
  record-load RESULTS.json NAME LOAD WRK_FILE CPU_S ACCESS_LOG PORT FROM TO [STATS0 STATS1]
                            record one load of bench/http.sh (keys LOAD_*) -> JSON
  value RESULTS.json SECTION KEY   one recorded value (JSON; "" when missing)
  get JSON KEY              one key of a JSON object
  calc EXPR                 arithmetic (min, max, int, round) -> JSON number or null
  report RESULTS.json OUT.md       the L4 table (bench/run.sh)
  report-http RESULTS.json OUT.md  the HTTP table (bench/http.sh)
Each report replaces its own section of OUT.md and keeps the others.
"""
import json
import os
import re
import socket
import sys
import time

# asyncio and urllib.request are imported where they are used: the scripts run
# these subcommands many times per load, and on a busy machine importing them
# doubles Python's start-up.

CLK_TCK = os.sysconf("SC_CLK_TCK")


def descendants(root):
    """root and every descendant (by ppid), from /proc/*/stat."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        # comm may contain spaces/parens: split after the last ')'
        rest = s[s.rindex(")") + 2:].split()
        ppid = int(rest[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(root):
    """(utime+stime, stime) of ROOT and its descendants, in seconds (a
    process's stat already includes all its threads)."""
    total = system = 0
    for p in descendants(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rindex(")") + 2:].split()
        # fields 14,15 (1-based) -> index 11,12 after pid and comm removed
        total += int(rest[11]) + int(rest[12])
        system += int(rest[12])
    return total / CLK_TCK, system / CLK_TCK


def rss_kb(root):
    total = 0
    for p in descendants(root):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total


def freeports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def parse_wrk(path):
    txt = open(path, errors="replace").read()
    r = {"requests": 0, "seconds": None, "errors_connect": 0, "errors_read": 0,
         "errors_write": 0, "errors_timeout": 0, "non2xx": 0, "rps": None}
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", txt)
    if m:
        r["requests"] = int(m.group(1))
        v, u = float(m.group(2)), m.group(3)
        r["seconds"] = v * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60}[u]
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", txt)
    if m:
        (r["errors_connect"], r["errors_read"], r["errors_write"],
         r["errors_timeout"]) = map(int, m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", txt)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", txt)
    if m:
        r["rps"] = float(m.group(1))
    # `--latency`: "Latency Distribution" then "  50%  312.00us" ... "  99%    2.10ms"
    dist = txt.split("Latency Distribution", 1)
    if len(dist) == 2:
        for pct, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)\s*$", dist[1], re.M):
            r[f"latency_p{pct}_ms"] = float(v) * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4}[u]
    return r


def upstream_conns(log, port, first, last):
    """Lines first+1..last of the upstream access log (fields: server_port,
    ssl_session_reused, ssl_protocol, status, bytes_sent, connection, ...)
    that came in on `port`: how many, how many distinct connections, and how
    many of those were not seen before line first+1 (new connections, each
    one TLS handshake), and of these how many resumed a session."""
    seen, window, new, resumed, lines = set(), set(), set(), 0, 0
    with open(log, errors="replace") as f:
        for i, line in enumerate(f, 1):
            if i > last:
                break
            w = line.split()
            if len(w) < 6 or w[0] != str(port):
                continue
            conn = w[5]
            if i <= first:
                seen.add(conn)
                continue
            lines += 1
            window.add(conn)
            if conn not in seen and conn not in new:
                new.add(conn)
                resumed += w[1] == "r"
    return {"lines": lines, "distinct": len(window), "new": len(new), "new_resumed": resumed}


def get_stats(url):
    import urllib.request
    with urllib.request.urlopen(url, timeout=5) as resp:
        data = json.load(resp)
    return {s["name"]: s["value"] for s in data.get("stats", [])}


def wait_http(url, timeout):
    import urllib.request
    end = time.time() + timeout
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return True
        except Exception:
            pass
        time.sleep(0.1)
    return False


def wait_port(port, timeout):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


async def _open_one(port, sem, timeout):
    import asyncio
    async with sem:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(b"GET /small HTTP/1.1\r\nHost: upstream.bench\r\n"
                     b"Connection: keep-alive\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = head.split(b"\r\n", 1)[0]
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        if m:
            await asyncio.wait_for(reader.readexactly(int(m.group(1))), timeout)
        if b" 200 " not in status + b" ":
            raise RuntimeError(f"status {status!r}")
        return reader, writer


async def _idle(port, n, root, settle, timeout=20.0):
    import asyncio
    sem = asyncio.Semaphore(64)
    before = rss_kb(root)
    t0 = time.time()
    results = await asyncio.gather(*[_open_one(port, sem, timeout) for _ in range(n)],
                                   return_exceptions=True)
    t_open = time.time() - t0
    ok = [r for r in results if not isinstance(r, BaseException)]
    errs = {}
    for r in results:
        if isinstance(r, BaseException):
            k = f"{type(r).__name__}: {r}"[:120]
            errs[k] = errs.get(k, 0) + 1
    await asyncio.sleep(settle)
    after = rss_kb(root)
    # are they still alive? a zero-byte peek would block; just check transports
    alive = sum(1 for _, w in ok if not w.is_closing())
    for _, w in ok:
        w.close()
    await asyncio.sleep(0.5)
    return {"n": n, "opened": len(ok), "alive_at_measure": alive, "errors": errs,
            "rss_before_kb": before, "rss_after_kb": after,
            "kb_per_conn": (after - before) / len(ok) if ok else None,
            "open_seconds": round(t_open, 2)}


def median_or_last(values):
    """The median of `values` when they are all numbers (None ignored), else
    the last one."""
    nums = [v for v in values if v is not None]
    if nums and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in nums):
        import statistics
        return statistics.median(nums)
    return values[-1]


def record(path, section, values):
    """Add `values` (a dict) to the results file `path`: at the top level when
    section is "-", appended to the list "anomalies" when section is that,
    else into the object `section`. With BENCH_ROUND=N in the environment a
    section's value is kept per round (under "by_round") and the section holds
    the median of the rounds so far."""
    try:
        R = json.load(open(path))
    except (OSError, ValueError):
        R = {}
    for key, v in values.items():
        if section == "-":
            R[key] = v
        elif section == "anomalies":
            R.setdefault("anomalies", []).append(v)
        else:
            R.setdefault(section, {})[key] = v
            round_ = os.environ.get("BENCH_ROUND")
            if round_:
                # one value per round; the section holds their median
                by_round = R.setdefault("by_round", {}).setdefault(section, {}).setdefault(key, {})
                by_round[round_] = v
                R[section][key] = median_or_last(list(by_round.values()))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(R, f, indent=1)
    os.replace(tmp, path)


def wrk_problems(name, load, path):
    """The anomalies of one wrk run, as sentences: errors, or no request."""
    r, out = parse_wrk(path), []
    errors = (r["errors_connect"] + r["errors_read"] + r["errors_write"] +
              r["errors_timeout"] + r["non2xx"])
    if errors:
        lines = [ln.strip() for ln in open(path, errors="replace")
                 if re.search(r"Socket errors|Non-2xx", ln)]
        out.append(f"{name} load {load}: wrk reported errors: {' '.join(lines)} "
                   f"(of {r['requests']} requests)")
    if r["requests"] == 0:
        out.append(f"{name} load {load}: wrk completed no requests")
    return out


def per(count, total, scale):
    return scale * count / total if count is not None and total else None


def record_load(res, name, load, wrk_file, cpu_s, access_log, port, first, last,
                stats_before=None, stats_after=None):
    """Record under res[name] the keys LOAD_*: of one load of bench/http.sh,
    from wrk's output, the CPU seconds of the originator, the upstream access
    log's lines first+1..last on its port, and for the sidecar its /stats
    (JSON {name: value}) before and after."""
    w = parse_wrk(wrk_file)
    c = upstream_conns(access_log, port, first, last)
    v = {"requests": w["requests"], "rps": w["rps"],
         "p50_ms": w.get("latency_p50_ms"), "p90_ms": w.get("latency_p90_ms"),
         "p99_ms": w.get("latency_p99_ms"),
         "cpu_s": cpu_s, "cpu_us_per_req": per(cpu_s, w["requests"], 1e6),
         "upstream_requests": c["lines"], "upstream_conns_used": c["distinct"],
         "upstream_conns_new": c["new"],
         "new_resumed_pct": per(c["new_resumed"], c["new"], 100.0),
         "hs_per_10k": per(c["new"], c["lines"], 1e4)}
    if stats_before is not None:
        s0, s1 = json.loads(stats_before), json.loads(stats_after)
        for k in ("ssl_handshake", "ssl_session_reused", "http_rq_total",
                  "http_pool_reused", "http_pool_new"):
            v[f"stats_{k}"] = s1.get(k, 0) - s0.get(k, 0)
        v["stats_hs_per_10k"] = per(v["stats_ssl_handshake"], v["stats_http_rq_total"], 1e4)
    record(res, name, {f"{load}_{k}": x for k, x in v.items()})
    return {"wrk": w, "upstream": c}


def fmt(v, nd=2):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or isinstance(v, int):
        return str(v)
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.{nd}f}"


def ratio(a, b):
    """b / a, or None when either is missing or a is 0."""
    try:
        return b / a if a else None
    except TypeError:
        return None


def compare(ng, sc, metric, key, target=None, check=None, absolute=False):
    """One row of a side-by-side table: nginx, sidecar, their ratio and the
    target with PASS/FAIL when `check` is given (on the ratio, or on the
    sidecar's own value when `absolute`)."""
    a, b = ng.get(key), sc.get(key)
    r = ratio(a, b)
    verdict = ""
    if check is not None:
        v = b if absolute else r
        if v is None:
            verdict = " — n/a"
        else:
            verdict = " — PASS" if check(v) else " — FAIL"
    return (metric, fmt(a), fmt(b), fmt(r), (target or "") + verdict)


def kernel_rows(ng, sc, label, load):
    """Two information rows for a load: the share of each originator's CPU
    spent in the kernel (stime), and the sidecar's kernel CPU alone over
    nginx's whole CPU: the ratio the sidecar would have with no user-space
    CPU at all (what bounds the CPU ratio on this machine)."""
    def share(d):
        return per(d.get(f"{load}_cpu_sys_s"), d.get(f"{load}_cpu_s"), 100.0)
    floor = ratio(ng.get(f"{load}_cpu_s"), sc.get(f"{load}_cpu_sys_s"))
    return [(f"  {label} CPU in the kernel (%, info)", fmt(share(ng)), fmt(share(sc)), "", ""),
            (f"  {label} the sidecar's kernel CPU alone / nginx's CPU (info: the ratio with "
             "no user-space CPU at all)", "", "", fmt(floor), "")]


def table_lines(rows):
    lines = ["| metric | nginx | sidecar | ratio (sidecar/nginx) | target |",
             "|---|---|---|---|---|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def raw_lines(ng, sc):
    """Every value recorded for nginx and the sidecar, by key."""
    lines = ["Raw per-load numbers:", "", "| raw | nginx | sidecar |", "|---|---|---|"]
    for k in sorted(set(ng) | set(sc)):
        if k.startswith("_"):
            continue
        a, b = ng.get(k), sc.get(k)
        if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
            a, b = json.dumps(a), json.dumps(b)
        lines.append(f"| {k} | {fmt(a) if not isinstance(a, str) else a} | "
                     f"{fmt(b) if not isinstance(b, str) else b} |")
    return lines


def round_lines(R, metrics):
    """For each (label, key) of `metrics`: the sidecar/nginx ratio of each
    round, and the ratio of the medians (what the table shows)."""
    rounds = R.get("by_round", {})
    ng, sc = rounds.get("nginx", {}), rounds.get("sidecar", {})
    n = len(ng.get(metrics[0][1], {}))
    if n < 2:
        return []
    lines = [f"Per round ({n} rounds, nginx and the sidecar in turn, the first to go "
             "alternating; the table shows the medians):", ""]
    for label, key in metrics:
        a, b = ng.get(key, {}), sc.get(key, {})
        per_round = [ratio(a.get(r), b.get(r)) for r in sorted(a, key=int)]
        shown = ", ".join(fmt(x) for x in per_round)
        lines.append(f"- {label}, sidecar/nginx by round: {shown}")
    return lines + [""]


def anomaly_lines(R):
    notes = R.get("anomalies", [])
    lines = ["Anomalies:" if notes else "Anomalies: none detected by the script."]
    return lines + [f"- {n}" for n in notes]


def machine_line(R):
    m = R.get("machine", {})
    return (f"- machine: nproc={m.get('nproc','?')}, kernel {m.get('kernel','?')}, "
            f"nginx {m.get('nginx','?')}, {m.get('wrk','?')}")


NOISY = ("- **The machine is shared and noisy** (2 cores also running wrk, the "
         "upstream nginx and other users' jobs): each load runs in rounds "
         "(`--rounds=N`, default 3, `--quick` 1), nginx and the sidecar in turn, and "
         "the table gives each figure's median over the rounds; the ratio of each "
         "round is listed under the table.")


def write_section(path, name, text):
    """Put `text` in the Markdown file `path` between the lines
    `<!-- begin NAME -->` and `<!-- end NAME -->`, replacing what was there,
    or at the end of the file when there is no such section yet; the rest of
    the file (other benchmarks' sections, notes written by hand) is kept."""
    begin, end = f"<!-- begin {name} -->\n", f"<!-- end {name} -->\n"
    try:
        old = open(path).read()
    except FileNotFoundError:
        old = ""
    block = begin + text + end
    i = old.find(begin)
    j = old.find(end, i + len(begin)) if i >= 0 else -1
    if i >= 0 and j >= 0:
        new = old[:i] + block + old[j + len(end):]
    else:
        new = old + ("\n" if old and not old.endswith("\n\n") else "") + block
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, path)


def report(res_path, out_path):
    """The L4 section (bench/run.sh) of out_path; also printed."""
    R = json.load(open(res_path))
    ng, sc = R.get("nginx", {}), R.get("sidecar", {})
    rows = [
        compare(ng, sc, "CPU per keep-alive request (µs)", "ka_cpu_us_per_req", "ratio ≤ 0.75",
                lambda r: r <= 0.75),
        compare(ng, sc, "  keep-alive requests/s (wall, info)", "ka_rps"),
        *kernel_rows(ng, sc, "keep-alive:", "ka"),
        compare(ng, sc, "CPU per new connection (ms)", "nc_cpu_ms_per_conn", "ratio ≤ 0.5",
                lambda r: r <= 0.5),
        compare(ng, sc, "  new connections/s (wall, info)", "nc_rps"),
        *kernel_rows(ng, sc, "new connections:", "nc"),
        compare(ng, sc, "Resumed handshakes, load (b), upstream log (%)", "nc_resumed_pct",
                "sidecar ≥ 99%", lambda v: v >= 99, absolute=True),
        compare(ng, sc, "Resumed handshakes, load (b), sidecar /stats (%)",
                "nc_stats_resumed_pct", "sidecar ≥ 99%", lambda v: v >= 99, absolute=True),
        compare(ng, sc, "Bulk 1 GiB: MB per CPU-second", "bulk_mb_per_cpu_s", "ratio ≥ 1.5",
                lambda r: r >= 1.5),
        compare(ng, sc, "  bulk wall throughput MB/s (info)", "bulk_mb_per_s"),
        (("  bulk: CPU in the kernel (%, info)",) +
         tuple(fmt(per(d.get("bulk_cpu_sys_s"), d.get("bulk_cpu_s"), 100.0)) for d in (ng, sc)) +
         ("", "")),
        compare(ng, sc, "Memory per idle connection (KB)", "idle_kb_per_conn",
                "sidecar ≤ 12 KB", lambda v: v <= 12, absolute=True),
        compare(ng, sc, "Baseline RSS (MB)", "baseline_rss_mb", "sidecar ≤ 4 MB",
                lambda v: v <= 4, absolute=True),
    ]
    m = R.get("machine", {})
    lines = [f"# mTLS origination: nginx stream proxy_ssl vs mtls-sidecar\n",
             f"- date: {m.get('date','?')}",
             machine_line(R),
             f"- mode: {R.get('mode','?')}; keep-alive load `{R.get('ka_cmd','')}`; "
             f"new-connection load `{R.get('nc_cmd','')}`; idle N={R.get('idle_n','?')}; "
             f"nofile limit {m.get('nofile','?')}",
             NOISY, ""]
    lines += table_lines(rows) + [""] + round_lines(R, [
        ("CPU per keep-alive request", "ka_cpu_us_per_req"),
        ("CPU per new connection", "nc_cpu_ms_per_conn"),
        ("bulk MB per CPU-second", "bulk_mb_per_cpu_s")])
    lines += raw_lines(ng, sc) + [""] + anomaly_lines(R)
    text = "\n".join(lines) + "\n"
    write_section(out_path, "bench/run.sh", text)
    sys.stdout.write(text)


def report_http(res_path, out_path):
    """The HTTP section (bench/http.sh) of out_path; also printed."""
    R = json.load(open(res_path))
    ng, sc = R.get("nginx", {}), R.get("sidecar", {})
    cpu = ("ratio ≤ 0.75", lambda r: r <= 0.75)
    rows = [
        compare(ng, sc, "(1) CPU per request (µs)", "ka_cpu_us_per_req", *cpu),
        compare(ng, sc, "  (1) requests/s (wall, info)", "ka_rps"),
        *kernel_rows(ng, sc, "(1)", "ka"),
        compare(ng, sc, "  (1) p50 latency, wrk (ms, info)", "ka_p50_ms"),
        compare(ng, sc, "  (1) p99 latency, wrk (ms, info: not the same load)", "ka_p99_ms"),
        compare(ng, sc, "(1) handshakes per 10,000 requests, upstream log", "ka_hs_per_10k",
                "reported"),
        compare(ng, sc, "  (1) same, sidecar /stats ssl_handshake", "ka_stats_hs_per_10k"),
        compare(ng, sc, "(2) CPU per request (µs)", "fr_cpu_us_per_req", *cpu),
        compare(ng, sc, "  (2) requests/s achieved (offered: "
                f"{fmt(R.get('fr_rate'))}/s)", "fr_rps"),
        *kernel_rows(ng, sc, "(2)", "fr"),
        compare(ng, sc, "  (2) p50 latency, wrk (ms, info)", "fr_p50_ms"),
        compare(ng, sc, "(2) p99 latency, wrk (ms)", "fr_p99_ms", "ratio ≤ 1.0",
                lambda r: r <= 1.0),
        compare(ng, sc, "(2) handshakes per 10,000 requests, upstream log", "fr_hs_per_10k",
                "reported"),
        compare(ng, sc, "  (2) same, sidecar /stats ssl_handshake", "fr_stats_hs_per_10k"),
    ]
    m = R.get("machine", {})
    lines = ["## HTTP/1.1 origination: nginx `proxy_pass https://` + `keepalive` "
             "vs mtls-sidecar `\"protocol\": \"http\"` (`bench/http.sh`)\n",
             f"- date: {m.get('date','?')}",
             machine_line(R),
             f"- mode: {R.get('mode','?')}; nofile limit {m.get('nofile','?')}",
             f"- load (1), closed loop: `{R.get('ka_cmd','')}`, each originator as fast as "
             "it answers; CPU per request and requests/s compare, latencies do not (the "
             "faster one carries more load).",
             f"- load (2), **the same offered load**: `{R.get('fr_cmd','')}`: "
             f"{R.get('fr_how','')}",
             "- CPU: utime+stime from /proc of all the originator's processes (nginx: "
             "master + 2 workers; sidecar: one process, 2 workers), over the load only.",
             "- handshakes per 10,000 requests: upstream TLS connections that the originator "
             "opened during the load (upstream access log `$connection` values on its own "
             "upstream port not seen before the load) per 10,000 upstream log lines; "
             "the upstream allows 100,000 requests per connection, so the originators' "
             "limits decide (nginx `keepalive_requests` default 1000, sidecar "
             "`http_pool.max_requests` default 1000).",
             f"- {R.get('config_note','')}",
             NOISY, ""]
    lines += table_lines(rows) + [""] + round_lines(R, [
        ("(1) CPU per request", "ka_cpu_us_per_req"),
        ("(2) CPU per request", "fr_cpu_us_per_req"),
        ("(2) p99 latency", "fr_p99_ms")])
    lines += raw_lines(ng, sc) + [""] + anomaly_lines(R)
    text = "\n".join(lines) + "\n"
    write_section(out_path, "bench/http.sh", text)
    sys.stdout.write(text)


def main():
    a = sys.argv[1:]
    cmd = a[0]
    if cmd == "pids":
        print("\n".join(map(str, descendants(int(a[1])))))
    elif cmd == "cpu":
        print("%.2f %.2f" % cpu_seconds(int(a[1])))
    elif cmd == "rss":
        print(rss_kb(int(a[1])))
    elif cmd == "freeport":
        print(" ".join(map(str, freeports(int(a[1]) if len(a) > 1 else 1))))
    elif cmd == "wrk":
        print(json.dumps(parse_wrk(a[1])))
    elif cmd == "stats":
        print(json.dumps(get_stats(a[1])))
    elif cmd == "wait-http":
        sys.exit(0 if wait_http(a[1], float(a[2])) else 1)
    elif cmd == "wait-port":
        sys.exit(0 if wait_port(int(a[1]), float(a[2])) else 1)
    elif cmd == "idle":
        port, n, root, settle = int(a[1]), int(a[2]), int(a[3]), float(a[4])
        import asyncio
        print(json.dumps(asyncio.run(_idle(port, n, root, settle))))
    elif cmd == "set":
        # set RESULTS.json SECTION KEY VALUE   (VALUE parsed as JSON if possible)
        try:
            v = json.loads(a[4])
        except ValueError:
            v = a[4]
        record(a[1], a[2], {a[3]: v})
    elif cmd == "value":
        # value RESULTS.json SECTION KEY -> that recorded value ("" when missing)
        try:
            v = json.load(open(a[1])).get(a[2], {}).get(a[3])
        except (OSError, ValueError):
            v = None
        print("" if v is None else json.dumps(v))
    elif cmd == "get":
        # get JSON_STRING KEY -> value
        v = json.loads(a[1]).get(a[2])
        print("" if v is None else v)
    elif cmd == "calc":
        # calc EXPR  (python arithmetic on numbers, min/max/int/round; null on error)
        names = {"min": min, "max": max, "int": int, "round": round}
        try:
            print(json.dumps(eval(a[1], {"__builtins__": {}}, names)))
        except Exception:
            print("null")
    elif cmd == "wrk-check":
        # wrk-check NAME LOAD FILE -> the anomalies of one wrk run, one a line
        for line in wrk_problems(a[1], a[2], a[3]):
            print(line)
    elif cmd == "record-load":
        # record-load RES NAME LOAD WRK_FILE CPU_S ACCESS_LOG PORT FROM TO [STATS0 STATS1]
        print(json.dumps(record_load(a[1], a[2], a[3], a[4], float(a[5]), a[6], a[7],
                                     int(a[8]), int(a[9]), *a[10:12])))
    elif cmd == "conns":
        print(json.dumps(upstream_conns(a[1], a[2], int(a[3]), int(a[4]))))
    elif cmd == "report":
        report(a[1], a[2])
    elif cmd == "report-http":
        report_http(a[1], a[2])
    else:
        sys.exit(f"unknown subcommand {cmd}")


if __name__ == "__main__":
    main()
