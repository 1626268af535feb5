"""Run by test_network_failures inside a network and mount namespace of its own, whose
/etc/resolv.conf names 127.0.0.1: a DNS server there that answers ``once.example.com`` (A:
127.0.0.1) and ``many.example.com`` (A: six loopback addresses whose listeners never accept)
once per query type and then never again, and nothing else ever; then the checks, printed as
one JSON object.

    python stingy_dns.py CASES_JSON PREMISE_SECONDS

- ``premise_answered``: whether a bare lookup of another name ended within PREMISE_SECONDS
  (it must not: the test is only meaningful if an unbounded lookup outlasts our bounds);
- ``once``: the statuses of two requests through ``dnsbound.bounded_session`` to an HTTP server
  named ``once.example.com``: they must connect to the address the one answered lookup gave;
- ``many``: how a request to ``many.example.com`` with a 1 s connect timeout ended, and how long
  it took: every address drops connections, and all of them together get that one second;
- one ``[exit status, stdout, stderr]`` per CLI case (``{name: [args, env]}``).
"""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading
import time
from typing import Any

ONCE = "once.example.com"
MANY = "many.example.com"
SILENT = [f"127.0.0.{n}" for n in range(2, 8)]
ADDRESSES = {ONCE: ["127.0.0.1"], MANY: SILENT}
SILENT_PORT = 8080


def serve_dns(sock: socket.socket) -> None:
    answered: set[tuple[str, int]] = set()
    while True:
        query, peer = sock.recvfrom(512)
        end = query.index(b"\0", 12) + 1  # the question's name ends with the root label
        labels, at = [], 12
        while query[at]:
            labels.append(query[at + 1 : at + 1 + query[at]].decode().lower())
            at += 1 + query[at]
        name, qtype = ".".join(labels), int.from_bytes(query[end : end + 2], "big")
        if name not in ADDRESSES or (name, qtype) in answered:
            continue  # silence
        answered.add((name, qtype))
        found = ADDRESSES[name] if qtype == 1 else []  # A records; any other type: none
        answers = b"".join(
            b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + socket.inet_aton(address)
            for address in found
        )
        header = query[:2] + b"\x81\x80\x00\x01" + len(found).to_bytes(2, "big")
        sock.sendto(header + b"\x00\x00\x00\x00" + query[12 : end + 4] + answers, peer)


def silent_listeners() -> list[socket.socket]:
    """A listener on each SILENT address whose accept queue is full (never accepted), so the
    kernel drops further connection attempts: they time out, as to a host that is down."""
    kept = []
    for address in SILENT:
        listener = socket.socket()
        listener.bind((address, SILENT_PORT))
        listener.listen(0)
        kept.append(listener)
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            try:
                filler.connect((address, SILENT_PORT))
            except BlockingIOError:
                pass
            kept.append(filler)
    return kept


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

    kept = silent_listeners()
    started = time.monotonic()
    with bounded_session(requests.Session()) as session:
        try:
            session.get(f"http://{MANY}:{SILENT_PORT}/", timeout=(1, 5))
            ended = "answered"
        except requests.RequestException as exc:
            ended = type(exc).__name__
    results["many"] = [ended, time.monotonic() - started]
    for sock in kept:
        sock.close()

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
