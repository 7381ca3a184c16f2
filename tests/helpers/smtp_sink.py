#!/usr/bin/python3
"""A local SMTP receiver for the mail notifier test (aiosmtpd): listens on 127.0.0.1,
writes its port to --port-file once listening, and saves each message it is given as one
file in --out (the envelope in X-Envelope-* headers, then the message as received)."""
import argparse
import os
import socket
import threading
import time

from aiosmtpd.controller import Controller

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--out", required=True)
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)


class Save:
    count = 0

    async def handle_DATA(self, server, session, envelope):
        Save.count += 1
        path = os.path.join(args.out, f"{Save.count:04d}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(f"X-Envelope-From: {envelope.mail_from}\r\n".encode())
            f.write(f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


for _ in range(20):
    port = free_port()
    controller = Controller(Save(), hostname="127.0.0.1", port=port)
    try:
        controller.start()
        break
    except Exception:
        time.sleep(0.1)
else:
    raise SystemExit("no free port")
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(port))
os.rename(args.port_file + ".tmp", args.port_file)
threading.Event().wait()
