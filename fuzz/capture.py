#!/usr/bin/env python3
"""A recording TCP proxy: clients connect to LISTEN, bytes are forwarded to BROKER, and every
request frame a client sends (without its 4-byte size prefix) is written to OUT_DIR, named by
its SHA-1. Used by fuzz/seeds.sh to capture seed inputs from real client traffic.

    capture.py LISTEN_PORT BROKER_HOST:PORT OUT_DIR
"""
import hashlib
import os
import socket
import struct
import sys
import threading

listen_port = int(sys.argv[1])
broker_host, broker_port = sys.argv[2].rsplit(":", 1)
out_dir = sys.argv[3]
os.makedirs(out_dir, exist_ok=True)


def pump(src, dst, record):
    buf = b""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
            if record:
                buf += data
                while len(buf) >= 4:
                    (n,) = struct.unpack(">i", buf[:4])
                    if n < 0 or len(buf) < 4 + n:
                        break
                    frame = buf[4 : 4 + n]
                    buf = buf[4 + n :]
                    if n <= 256 * 1024:
                        name = hashlib.sha1(frame).hexdigest()
                        with open(os.path.join(out_dir, name), "wb") as f:
                            f.write(frame)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(client):
    upstream = socket.create_connection((broker_host, int(broker_port)))
    threading.Thread(target=pump, args=(client, upstream, True), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client, False), daemon=True).start()


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", listen_port))
srv.listen(64)
while True:
    c, _ = srv.accept()
    serve(c)
