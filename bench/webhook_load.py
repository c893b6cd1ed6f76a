"""webhook_load.py: the client of bench/webhook.sh. POSTs one AdmissionReview
again and again over HTTPS (python's http.client and ssl, the server's
certificate verified) and prints the latency of each review as JSON: on one
keep-alive connection, or on a new TLS connection per review (the connect
and the handshake counted in the review's time). The same client, the same
request, for every server measured.

usage: webhook_load.py HOST PORT CA PATH BODY_FILE COUNT keepalive|new
"""
import http.client
import json
import ssl
import sys
import time

host, port, ca, path, body_file, count, mode = sys.argv[1:8]
port, count = int(port), int(count)
body = open(body_file, "rb").read()
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["http/1.1"])
headers = {"Content-Type": "application/json"}


def one(conn):
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    if response.status != 200 or b'"allowed":true' not in data.replace(b" ", b""):
        raise SystemExit("unexpected answer: %d %r" % (response.status, data[:200]))
    return len(data)


times = []
answer_bytes = 0
conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
for _ in range(20):  # warm up (and, keep-alive, open the connection)
    one(conn)
if mode == "new":
    conn.close()
for _ in range(count):
    t0 = time.perf_counter_ns()
    if mode == "new":
        conn = http.client.HTTPSConnection(host, port, context=ctx, timeout=10)
        answer_bytes = one(conn)
        conn.close()
    else:
        answer_bytes = one(conn)
    times.append((time.perf_counter_ns() - t0) / 1000.0)
conn.close()
times.sort()


def pct(p):
    return times[min(len(times) - 1, int(len(times) * p / 100.0))]


print(json.dumps({"count": count, "p50_us": pct(50), "p99_us": pct(99), "mean_us": sum(times) / len(times),
                  "answer_bytes": answer_bytes}))
