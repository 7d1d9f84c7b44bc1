"""Opens N keep-alive connections to 127.0.0.1:PORT in a burst, sends one
/v1/score request on each and reads its answer, then, with every
connection still open, prints how many of ctrd's client sockets each of
its epoll instances watches (from /proc/PID/fdinfo: one "tfd:" line per
watched fd) as JSON: {"answered": n, "per_epoll": [..]}. libmicrohttpd
gives each of its threads one epoll instance, so that is how the
connections are spread over the threads.

usage: accept_spread.py PORT PID N"""
import json
import os
import socket
import sys

port, pid, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = json.dumps({"examples": [{}]}).encode()
req = (b"POST /v1/score HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
       b"Content-Length: %d\r\n\r\n" % len(body)) + body
socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
answered = 0
for s in socks:
    s.sendall(req)
for s in socks:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    answered += data.startswith(b"HTTP/1.1 200")

# ctrd's socket fds (the listening one too), then how many of them each epoll
# instance watches ("tfd: N" names a watched fd).
fd_dir = "/proc/%d/fd" % pid
socket_fds = set()
epolls = []
for fd in os.listdir(fd_dir):
    try:
        target = os.readlink(os.path.join(fd_dir, fd))
    except OSError:
        continue
    if target == "anon_inode:[eventpoll]":
        epolls.append(fd)
    elif target.startswith("socket:"):
        socket_fds.add(int(fd))
per_epoll = []
for ep in epolls:
    try:
        info = open("/proc/%d/fdinfo/%s" % (pid, ep)).read()
    except OSError:
        continue
    watched = {int(line.split()[1]) for line in info.splitlines() if line.startswith("tfd:")}
    per_epoll.append(len(watched & socket_fds))
print(json.dumps({"answered": answered, "per_epoll": sorted(per_epoll, reverse=True)}))
for s in socks:
    s.close()
