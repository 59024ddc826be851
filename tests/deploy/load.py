#!/usr/bin/env python3
"""Load for frugal behind nginx (the scale-out test, docs/deploy.md).

CLIENTS threads send chat requests back to back for SECONDS, each over one
kept-alive connection, cycling through MODELS. Every request is recorded
(start, end, model, status) in --records as JSON lines; the summary
(requests/s, p50/p99 latency, failures) is printed as one JSON object.
Python's standard library only; loopback targets only.
"""
import argparse
import http.client
import json
import statistics
import threading
import time
from urllib.parse import urlsplit

QUESTION = "Who directs the Harlow Clinic?"


def client(url, models, deadline, index, max_tokens, records, lock):
    target = urlsplit(url)
    connection = None
    i = index
    while time.monotonic() < deadline:
        model = models[i % len(models)]
        i += 1
        body = json.dumps({"model": model, "max_tokens": max_tokens, "temperature": 0,
                           "messages": [{"role": "user", "content": QUESTION}]})
        start = time.monotonic()
        status, answer = 0, ""
        try:
            if connection is None:
                connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = response.read()
            status = response.status
            if status == 200:
                answer = json.loads(payload)["choices"][0]["message"]["content"]
            if response.getheader("Connection", "").lower() == "close":
                connection.close()
                connection = None
        except Exception as error:  # a refused or cut connection is a failure like any other
            answer = type(error).__name__
            if connection is not None:
                connection.close()
            connection = None
        end = time.monotonic()
        with lock:
            records.append({"start": start, "end": end, "model": model, "status": status, "answer": answer})
    if connection is not None:
        connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url", help="http://127.0.0.1:PORT")
    parser.add_argument("--models", required=True, help="comma-separated model ids")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--max-tokens", type=int, default=8)
    parser.add_argument("--records", help="write every request as a JSON line here")
    args = parser.parse_args()
    if urlsplit(args.url).hostname not in ("127.0.0.1", "localhost", "::1"):
        parser.error("only loopback targets")
    models = args.models.split(",")
    records, lock = [], threading.Lock()
    begin = time.monotonic()
    deadline = begin + args.seconds
    threads = [threading.Thread(target=client, args=(args.url, models, deadline, i, args.max_tokens, records, lock))
               for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - begin
    if args.records:
        with open(args.records, "w") as out:
            for r in records:
                out.write(json.dumps(r) + "\n")
    ok = sorted(r["end"] - r["start"] for r in records if r["status"] == 200)

    def percentile(p):
        return round(ok[min(len(ok) - 1, int(p * len(ok)))] * 1000, 1) if ok else None

    print(json.dumps({"requests": len(records), "failures": len(records) - len(ok),
                      "requests_per_second": round(len(ok) / elapsed, 1),
                      "p50_ms": percentile(0.50), "p99_ms": percentile(0.99),
                      "mean_ms": round(statistics.mean(ok) * 1000, 1) if ok else None,
                      "clients": args.clients, "seconds": round(elapsed, 1)}))


if __name__ == "__main__":
    main()
