"""Run by test_network_failures inside a network and mount namespace of its own, whose
/etc/resolv.conf names 127.0.0.1: a DNS server there that answers ``once.example.com`` (A:
127.0.0.1) once per query type and then never again, and nothing else ever; then the checks,
printed as one JSON object.

    python stingy_dns.py CASES_JSON PREMISE_SECONDS

- ``premise_answered``: whether a bare lookup of another name ended within PREMISE_SECONDS
  (it must not: the test is only meaningful if an unbounded lookup outlasts our bounds);
- ``once``: the statuses of two requests through ``dnsbound.bounded_session`` to an HTTP server
  named ``once.example.com``: they must connect to the address the one answered lookup gave;
- one ``[exit status, stdout, stderr]`` per CLI case (``{name: [args, env]}``).
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
from typing import Any

ONCE = "once.example.com"


def serve_dns(sock: socket.socket) -> None:
    answered: set[int] = set()
    while True:
        query, peer = sock.recvfrom(512)
        end = query.index(b"\0", 12) + 1  # the question's name ends with the root label
        labels, at = [], 12
        while query[at]:
            labels.append(query[at + 1 : at + 1 + query[at]].decode().lower())
            at += 1 + query[at]
        qtype = int.from_bytes(query[end : end + 2], "big")
        if ".".join(labels) != ONCE or qtype in answered:
            continue  # silence
        answered.add(qtype)
        answers = b""
        if qtype == 1:  # A: 127.0.0.1; any other type: no records
            answers = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01"
        header = query[:2] + b"\x81\x80\x00\x01" + (b"\x00\x01" if answers else b"\x00\x00")
        sock.sendto(header + b"\x00\x00\x00\x00" + query[12 : end + 4] + answers, peer)


class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the second request reuses the connection

    def do_GET(self) -> None:
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def main() -> None:
    cases, premise = json.loads(sys.argv[1]), float(sys.argv[2])
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dns.bind(("127.0.0.1", 53))
    threading.Thread(target=serve_dns, args=(dns,), daemon=True).start()
    results: dict[str, Any] = {}

    answered = threading.Event()

    def look_up() -> None:
        try:
            socket.getaddrinfo("premise.example.com", 443)
        except OSError:
            pass
        answered.set()

    threading.Thread(target=look_up, daemon=True).start()
    results["premise_answered"] = answered.wait(premise)

    import requests

    from azfed_helper._internal.dnsbound import bounded_session

    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    url = f"http://{ONCE}:{web.server_address[1]}/"
    statuses: list[Any] = []
    with bounded_session(requests.Session()) as session:
        for _ in range(2):
            try:
                statuses.append(session.get(url, timeout=(1, 5)).status_code)
            except requests.RequestException as exc:
                statuses.append(f"{type(exc).__name__}: {exc}")
    results["once"] = statuses

    for name, (args, env) in cases.items():
        done = subprocess.run(
            [sys.executable, "-m", "azfed_helper", *args],
            env=env,
            cwd="/",
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        results[name] = [done.returncode, done.stdout, done.stderr]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
