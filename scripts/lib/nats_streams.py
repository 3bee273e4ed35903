"""Delete the JetStream streams of one Herald prefix (`<PREFIX>_COMMANDS`, `<PREFIX>_EVENTS`, ...).

Usage: python3 nats_streams.py nats://host:port prefix

Speaks the plain NATS protocol over one socket, so it needs nothing besides Python: it asks
`$JS.API.STREAM.NAMES` for every stream name and `$JS.API.STREAM.DELETE.<name>` for those that
start with the prefix. Servers with credentials are not supported (the scripts' local ones have
none).
"""

import json
import socket
import sys
from urllib.parse import urlparse

INBOX = "_INBOX.herald_streams"


class Connection:
    def __init__(self, url):
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port or 4222), timeout=10)
        self.buffer = b""
        self.read_line()  # INFO
        self.send(b'CONNECT {"verbose":false,"pedantic":false,"protocol":1}\r\n')
        self.send(f"SUB {INBOX} 1\r\n".encode())

    def send(self, data):
        self.sock.sendall(data)

    def read_line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("NATS closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode()

    def read_exact(self, size):
        while len(self.buffer) < size + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("NATS closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size + 2 :]
        return data

    def request(self, subject, payload):
        body = json.dumps(payload).encode()
        self.send(f"PUB {subject} {INBOX} {len(body)}\r\n".encode() + body + b"\r\n")
        while True:
            line = self.read_line()
            if line.startswith("PING"):
                self.send(b"PONG\r\n")
            elif line.startswith("MSG "):
                size = int(line.split()[-1])
                return json.loads(self.read_exact(size))
            elif line.startswith("-ERR"):
                raise ConnectionError(line)


def main():
    url, prefix = sys.argv[1], sys.argv[2]
    upper = prefix.upper() + "_"
    connection = Connection(url)
    names = connection.request("$JS.API.STREAM.NAMES", {"offset": 0}).get("streams") or []
    for name in names:
        if name.startswith(upper):
            connection.request(f"$JS.API.STREAM.DELETE.{name}", {})
            print(f"deleted stream {name}", file=sys.stderr)


if __name__ == "__main__":
    main()
