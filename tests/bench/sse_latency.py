#!/usr/bin/env python3
"""sse_latency.py - time from an event entering tm-collector (HTTP ingest) to its
appearance on tm-dashboard's Server-Sent Events stream.

    sse_latency.py --collector HOST:PORT --ingest-token T --dashboard HOST:PORT
                   --token T [--rate 1000] [--seconds 10] [--batch 10]

One thread reads /api/stream (plain HTTP/1.0, so no chunked framing) and notes when each
`event: feed` arrives; the main thread posts NDJSON batches to POST /v1/events on a
keep-alive connection at the given rate, each event with severity 9 (so it reaches
tm:feed) and its send time (time.time(), the same clock the reader uses) in the summary.
Prints the counts and the p50 / p90 / p99 / max latency in milliseconds; exits 1 when
fewer than 99% of the events showed up.
"""
import argparse
import http.client
import json
import socket
import sys
import threading
import time


def parse_addr(a):
    host, port = a.rsplit(":", 1)
    return host, int(port)


def reader(addr, token, seen, ready, stop):
    s = socket.create_connection(parse_addr(addr), timeout=2)
    s.sendall(("GET /api/stream HTTP/1.0\r\nHost: bench\r\nAuthorization: Bearer %s\r\n\r\n"
               % token).encode())
    buf = b""
    event = None
    while not stop.is_set():
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        now = time.time()
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.rstrip(b"\r")
            if line.startswith(b": connected"):
                ready.set()
            elif line.startswith(b"event: "):
                event = line[7:]
            elif line.startswith(b"data: ") and event == b"feed":
                item = json.loads(line[6:])
                summary = item.get("summary", "")
                if summary.startswith("lat "):
                    sent = float(summary.split()[1])
                    seen[item["id"]] = (now - sent) * 1000.0
    s.close()


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--collector", required=True)
    ap.add_argument("--ingest-token", required=True)
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--batch", type=int, default=10)
    a = ap.parse_args()

    seen, ready, stop = {}, threading.Event(), threading.Event()
    t = threading.Thread(target=reader, args=(a.dashboard, a.token, seen, ready, stop),
                         daemon=True)
    t.start()
    if not ready.wait(10):
        print("sse_latency: the stream did not open", file=sys.stderr)
        return 1
    host, port = parse_addr(a.collector)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Authorization": "Bearer " + a.ingest_token,
               "Content-Type": "application/x-ndjson"}
    total = int(a.rate * a.seconds)
    interval = a.batch / a.rate
    sent, late, t0 = 0, 0, time.time()
    cats = ["ddos", "phishing", "malware", "intrusion", "scan"]
    while sent < total:
        due = t0 + (sent // a.batch) * interval
        wait = due - time.time()
        if wait > 0:
            time.sleep(wait)
        elif wait < -0.05:
            late += 1
        now = time.time()
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % int(now % 1 * 1000)
        lines = []
        for i in range(a.batch):
            n = sent + i
            lines.append(json.dumps({
                "id": "lat-%d-%d" % (int(t0), n), "ts": ts, "category": cats[n % 5],
                "severity": 9, "src": {"ip": "203.0.113.%d" % (n % 250)},
                "summary": "lat %.6f bench event %d" % (now, n)}))
        conn.request("POST", "/v1/events", body="\n".join(lines) + "\n", headers=headers)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            print("sse_latency: collector answered %d" % r.status, file=sys.stderr)
            return 1
        sent += a.batch
    elapsed = time.time() - t0
    deadline = time.time() + 10
    while len(seen) < sent and time.time() < deadline:
        time.sleep(0.1)
    stop.set()
    lat = list(seen.values())
    print("sent %d events in %.2f s (%.0f events/s, %d batches late); %d on the stream"
          % (sent, elapsed, sent / elapsed, late, len(seen)))
    print("latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f"
          % (pct(lat, 50), pct(lat, 90), pct(lat, 99), max(lat) if lat else float("nan")))
    return 0 if len(seen) >= 0.99 * sent else 1


if __name__ == "__main__":
    sys.exit(main())
