#!/usr/bin/env python3
"""Load generator for offboard's push endpoint (POST /v1/terminations), standard library only.

Sends COUNT pushes, one termination each, over CONNECTIONS keep-alive connections at once. A push
answered 503 (not stored) is sent again, as an HR system would. Writes every acknowledged (202)
push as "EMPLOYEE_ID BATCH_ID" lines to ACKED and a JSON summary to stdout. With --kill-pid, sends
SIGKILL to that process right after the last answer, before anything else.

Usage:
    push_load.py --url http://127.0.0.1:PORT --token-file FILE --count 2000 --connections 8 \
        --acked acked.txt [--kill-pid PID]
"""

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time
import urllib.parse

RETRIES = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--acked", required=True)
    parser.add_argument("--kill-pid", type=int)
    args = parser.parse_args()

    with open(args.token_file, encoding="utf-8") as f:
        token = f.read().strip()
    url = urllib.parse.urlsplit(args.url)
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
    }

    lock = threading.Lock()
    next_id = iter(range(1, args.count + 1))
    acked = []
    refused = []
    stats = {"resent_after_503": 0, "connection_errors": 0}

    def connect():
        return http.client.HTTPConnection(url.hostname, url.port, timeout=30)

    def sender():
        conn = connect()
        while True:
            with lock:
                i = next(next_id, None)
            if i is None:
                break
            employee = f"P{i:05d}"
            body = json.dumps(
                {
                    "employee_id": employee,
                    "email": f"p{i:05d}@example.org",
                    "effective_date": "2026-01-05",
                    "status": "terminated",
                }
            )
            for _ in range(RETRIES):
                try:
                    conn.request("POST", "/v1/terminations", body, headers)
                    response = conn.getresponse()
                    data = response.read()
                except (http.client.HTTPException, OSError):
                    conn.close()
                    conn = connect()
                    with lock:
                        stats["connection_errors"] += 1
                    continue
                if response.status == 202:
                    batch = json.loads(data)["batch_id"]
                    with lock:
                        acked.append((employee, batch))
                    break
                if response.status == 503:
                    with lock:
                        stats["resent_after_503"] += 1
                    time.sleep(0.05)
                    continue
                with lock:
                    refused.append((employee, response.status, data.decode("utf-8", "replace")))
                break
            else:
                with lock:
                    refused.append((employee, None, f"no answer after {RETRIES} tries"))
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=sender) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Right after the last answer: whatever was acknowledged must already be durable.
    if args.kill_pid:
        os.kill(args.kill_pid, signal.SIGKILL)
    elapsed = time.monotonic() - started

    with open(args.acked, "w", encoding="utf-8") as f:
        for employee, batch in acked:
            f.write(f"{employee} {batch}\n")
    json.dump(
        {
            "sent": args.count,
            "acked": len(acked),
            "refused": refused[:20],
            "refused_count": len(refused),
            "seconds": round(elapsed, 3),
            **stats,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
