#!/usr/bin/env python3
"""A tiny webhook receiver for the petstore example: it checks the Standard Webhooks signature
Herald puts on every delivery and prints what arrived.

    python3 examples/petstore/webhook_receiver.py .herald/webhook-secrets/warehouse

It listens on 127.0.0.1:9000, where apps/petstore/tasks.yaml sends `notify_low_stock`.
"""
import base64
import hashlib
import hmac
import http.server
import json
import sys
import time

SECRET = open(sys.argv[1]).read().strip()
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))
TOLERANCE_SECS = 300


def verified(headers, body):
    """The signature is HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>"."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECS:
        return False
    signed = f"{msg_id}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    given = [s.split(",", 1)[1] for s in headers["webhook-signature"].split() if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, g) for g in given)


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        ok = verified(self.headers, body)
        event = json.loads(body)
        print(("verified" if ok else "REJECTED"), self.headers["webhook-id"], event["type"],
              event["document_id"], json.dumps(event["data"]), flush=True)
        self.send_response(204 if ok else 401)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", 9000), Receiver).serve_forever()
