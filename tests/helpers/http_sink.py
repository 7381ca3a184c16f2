#!/usr/bin/python3
"""A local HTTP receiver for the notifier tests: listens on 127.0.0.1 (a port of the
kernel's choosing, written to --port-file once listening), appends each request as one JSON
line {method, path, headers, body} to --out, and answers 500 to the first --fail requests,
404 to paths holding --reject, 204 to the rest."""
import argparse
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--out", required=True)
ap.add_argument("--fail", type=int, default=0)
ap.add_argument("--reject", default=None, help="answer 404 to paths holding this")
args = ap.parse_args()
state = {"failed": 0}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode(errors="replace")
        fail = state["failed"] < args.fail
        reject = args.reject is not None and args.reject in self.path
        answer = 404 if reject else 500 if fail else 204
        with open(args.out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"method": "POST", "path": self.path,
                                "headers": dict(self.headers), "body": body,
                                "answered": answer}) + "\n")
        if reject:
            self.send_response(404, "no such ticket")
        elif fail:
            state["failed"] += 1
            self.send_response(500, "refused by the test")
        else:
            self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


server = HTTPServer(("127.0.0.1", 0), Handler)
tmp = args.port_file + ".tmp"
with open(tmp, "w") as f:
    f.write(str(server.server_address[1]))
os.rename(tmp, args.port_file)
server.serve_forever()
