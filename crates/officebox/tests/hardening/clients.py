"""Clients that behave as an attacker or a careless crowd would, for tests/hardening.rs.

Each subcommand prints what happened on stdout, one "key value..." line per fact, so that
the Rust test decides what is right. Connections can come from a chosen source address (--source), so
that several "clients" on one machine are told apart by the box.

    guesses  --proto pop3|smtp|admin ...   N logins released at the same instant
    staged   ...                           SMTP AUTH LOGIN: N usernames first, then passwords
    hold     --port P --count N            N idle connections, kept until stdin closes
    session  --proto smtp|pop3 ...         one ordinary session; how long it took
    timing   ...                           POP3 login times, wrong password vs no such user
    bad-digests ...                        SIP REGISTERs with wrong digests, not waiting
"""

import argparse
import base64
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(args, port=None, tls=False):
    s = socket.create_connection(
        (args.host, port or args.port), timeout=args.timeout, source_address=(args.source, 0)
    )
    if tls:
        s = tls_context().wrap_socket(s)
    return s


class Lines:
    """A line-oriented conversation on a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode(errors="replace").rstrip("\r")

    def reply(self):
        """An SMTP reply (the last line of a multi-line one)."""
        while True:
            line = self.line()
            if len(line) < 4 or line[3] != "-":
                return line

    def send(self, text):
        self.sock.sendall(text.encode() + b"\r\n")


def b64(text):
    return base64.b64encode(text.encode()).decode()


# ------------------------------------------------------------------ one login of each kind


def pop3_login(args, user, password, ready=None):
    with connect(args, tls=True) as s:
        c = Lines(s)
        c.line()
        c.send(f"USER {user}")
        c.line()
        if ready:
            ready.wait()
        c.send(f"PASS {password}")
        answer = c.line()
        c.send("QUIT")
        return answer


def smtp_login(args, user, password, ready=None):
    with connect(args, tls=True) as s:
        c = Lines(s)
        c.reply()
        c.send("EHLO attacker.example")
        c.reply()
        if ready:
            ready.wait()
        c.send("AUTH PLAIN " + b64(f"\0{user}\0{password}"))
        answer = c.reply()
        c.send("QUIT")
        return answer


def admin_login(args, user, password, ready=None):
    """The admin pages' login form: its token first, then the POST."""
    with connect(args) as s:
        s.sendall(f"GET /login HTTP/1.1\r\nHost: {args.host}\r\nConnection: close\r\n\r\n".encode())
        page = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            page += chunk
    text = page.decode(errors="replace")
    cookie = text.split("officebox_login=", 1)[1].split(";", 1)[0]
    token = text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    body = urllib.parse.urlencode({"csrf": token, "user": user, "password": password})
    with connect(args) as s:
        request = (
            f"POST /login HTTP/1.1\r\nHost: {args.host}\r\nConnection: close\r\n"
            f"Cookie: officebox_login={cookie}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}"
        )
        if ready:
            ready.wait()
        s.sendall(request.encode())
        status = s.recv(4096).decode(errors="replace").split("\r\n", 1)[0]
    return status


LOGINS = {"pop3": pop3_login, "smtp": smtp_login, "admin": admin_login}


def verdict(proto, answer):
    """right, wrong (the password was checked and refused), limited, or other."""
    if proto == "pop3":
        if answer.startswith("+OK"):
            return "right"
        if "too many failed" in answer:
            return "limited"
        if "invalid user name or password" in answer:
            return "wrong"
    if proto == "smtp":
        if answer.startswith("235"):
            return "right"
        if answer.startswith("454 4.7.0"):
            return "limited"
        if answer.startswith("535"):
            return "wrong"
    if proto == "admin":
        code = answer.split(" ")[1] if " " in answer else ""
        if code == "303":
            return "right"
        if code == "429":
            return "limited"
        if code == "401":
            return "wrong"
    return "other: " + answer


def in_parallel(n, work):
    """Runs work(i, ready) in n threads; `ready` releases them all at one instant."""
    ready = threading.Barrier(n)
    results = [None] * n

    def run(i):
        try:
            results[i] = work(i, ready)
        except Exception as e:  # noqa: BLE001 - every failure is a result here
            results[i] = f"error: {e!r}"
            try:
                ready.abort()
            except threading.BrokenBarrierError:
                pass

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def guesses(args):
    login = LOGINS[args.proto]
    answers = in_parallel(args.count, lambda i, ready: login(args, args.user, args.password, ready))
    counts = {}
    for a in answers:
        v = verdict(args.proto, a)
        counts[v] = counts.get(v, 0) + 1
    if args.right:
        counts["after"] = verdict(args.proto, login(args, args.user, args.right))
    return counts


def staged(args):
    """SMTP AUTH LOGIN with the limit checked before the password: every connection gives
    its user name first; then the wrong passwords go, one connection after another, and
    last the right one."""
    conns = []
    for _ in range(args.count):
        s = connect(args, tls=True)
        c = Lines(s)
        c.reply()
        c.send("EHLO attacker.example")
        c.reply()
        c.send("AUTH LOGIN")
        c.reply()
        c.send(b64(args.user))
        c.reply()
        conns.append((s, c))
    counts = {}
    for i, (s, c) in enumerate(conns):
        last = i == len(conns) - 1
        c.send(b64(args.right if last else args.password))
        v = verdict("smtp", c.reply())
        key = "last-" + v if last else v
        counts[key] = counts.get(key, 0) + 1
        s.close()
    return counts


def hold(args):
    """Opens N connections and keeps them idle; says how many the box kept open (the
    refused ones are closed by the box at once) and then waits for stdin to close."""
    socks = []
    for _ in range(args.count):
        try:
            socks.append(connect(args))
        except OSError:
            pass
    time.sleep(1.0)
    kept = 0
    for s in socks:
        s.setblocking(False)
        try:
            data = s.recv(4096)
            # A greeting means a session; a refusal is a greeting and a close.
            closed = data == b"" or data.startswith((b"421", b"-ERR", b"* BYE"))
            if closed:
                continue
            kept += 1
        except BlockingIOError:
            kept += 1
        except OSError:
            pass
    print(f"opened {len(socks)}\nkept {kept}", flush=True)
    sys.stdin.read()
    return None


def session(args):
    start = time.monotonic()
    with connect(args) as s:
        c = Lines(s)
        if args.proto == "smtp":
            greeting = c.reply()
            c.send("EHLO ok.example")
            ehlo = c.reply()
            c.send("QUIT")
            ok = greeting.startswith("220") and ehlo.startswith("250")
        else:
            greeting = c.line()
            c.send("QUIT")
            ok = greeting.startswith("+OK")
    return {"ok": ok, "seconds": time.monotonic() - start, "greeting": greeting}


def timing(args):
    """POP3 logins alternating a real user with a wrong password and a user that does
    not exist, each from a source address of its own (so no limit is reached); the time
    from PASS to the answer, in milliseconds."""
    base = args.source.rsplit(".", 1)
    times = {"real": [], "nobody": []}
    for i in range(args.count):
        for kind, user in (("real", args.user), ("nobody", "nobody-here")):
            args.source = f"{base[0]}.{int(base[1]) + len(times['real']) + len(times['nobody'])}"
            with connect(args, tls=True) as s:
                c = Lines(s)
                c.line()
                c.send(f"USER {user}")
                c.line()
                start = time.monotonic()
                c.send(f"PASS {args.password}")
                answer = c.line()
                times[kind].append((time.monotonic() - start) * 1000)
                assert "invalid" in answer, answer
    return times


def bad_digests(args):
    """N REGISTERs for --user's extension with a made-up digest, sent without waiting."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((args.source, 0))
    local = f"{args.source}:{s.getsockname()[1]}"
    for i in range(args.count):
        s.sendto(
            (
                f"REGISTER sip:office.test SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {local};branch=z9hG4bKbad{i}\r\n"
                f"From: <sip:{args.user}@office.test>;tag=bad{i}\r\n"
                f"To: <sip:{args.user}@office.test>\r\n"
                f"Call-ID: bad-digest-{i}\r\nCSeq: 1 REGISTER\r\n"
                f"Contact: <sip:{args.user}@{local}>\r\n"
                f'Authorization: Digest username="{args.user}", realm="office.test", nonce="0", '
                f'uri="sip:office.test", response="{"0" * 32}"\r\n'
                f"Content-Length: 0\r\n\r\n"
            ).encode(),
            (args.host, args.port),
        )
    return {"sent": args.count}


def main():
    p = argparse.ArgumentParser()
    p.add_argument(
        "command", choices=["guesses", "staged", "hold", "session", "timing", "bad-digests"]
    )
    p.add_argument("--proto", default="smtp")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--source", default="127.0.0.1")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--user", default="alice")
    p.add_argument("--password", default="wrong")
    p.add_argument("--right", default=None)
    p.add_argument("--timeout", type=float, default=30)
    args = p.parse_args()
    result = globals()[args.command.replace("-", "_")](args)
    for key, value in (result or {}).items():
        values = value if isinstance(value, list) else [value]
        print(key, *values, flush=True)
    sys.stdout.flush()
    # Everything is said: leave without the interpreter's finalisation, which once
    # aborted ("double free or corruption") tearing down what 32 threads' TLS and
    # sockets left behind, after the results were out. The results are what is tested.
    os._exit(0)


if __name__ == "__main__":
    main()
