# The called phone of bench/sip.sh part 2 (b) and bench/vpn.sh's cross-site calls: one
# extension answering many concurrent calls, and their audio.
#
#   python3 rtp_phone.py SIP_PORT RTP_PORT ECHO_PORT STATS [PCAP] [PTIME_MS]
#
# Environment: PHONE_ADDR, the address it serves on (default 127.0.0.1); ECHO_ADDR, the
# echo socket's (default PHONE_ADDR); ECHO_NETNS, a network namespace (ip netns) the echo
# socket lives in instead of this one, for a caller in another network.
#
# A SIP UAS on PHONE_ADDR:SIP_PORT (register_contact.xml registers it for an extension)
# answers every INVITE (180, then 200 with PCMA on RTP_PORT, sent again until the ACK).
# From the ACK to the BYE a call sends G.711 A-law RTP every PTIME ms (default 30; the
# payloads of PCAP, sipp's g711a.pcap, looped) to where the INVITE's SDP said: the
# server's relay port for this leg. The caller's SDP names ECHO_ADDR:ECHO_PORT, where a
# child process (the other core) sends every packet straight back. So each packet
# crosses the relay twice and comes back to RTP_PORT from the relay port it was sent to,
# which says whose it is. On the BYE a call stops sending, waits DRAIN s for packets
# still on their way, answers 200 and adds its sent and received counts to the totals.
# SIGUSR1 writes the totals since the last SIGUSR1 (one line of key=value) to STATS and
# starts new ones. Standard library only; one asyncio loop, no per-packet timers:
# packets due are sent from a heap every 2 ms, and a packet more than 500 ms late (this
# process starved of CPU) is skipped and counted as such, never sent in a burst.

import asyncio
import ctypes
import heapq
import mmap
import os
import random
import signal
import socket
import struct
import sys
import time

signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # until the loop takes it
SIP_PORT, RTP_PORT, ECHO_PORT = (int(a) for a in sys.argv[1:4])
STATS = sys.argv[4]
PCAP = sys.argv[5] if len(sys.argv) > 5 else ""
PTIME = (int(sys.argv[6]) if len(sys.argv) > 6 else 30) / 1000
SAMPLES = int(8000 * PTIME)
ADDR = os.environ.get("PHONE_ADDR", "127.0.0.1")
ECHO_ADDR = os.environ.get("ECHO_ADDR", ADDR)
ECHO_NETNS = os.environ.get("ECHO_NETNS", "")
CLONE_NEWNET = 0x40000000
DRAIN = 0.3
T1, T2, TIMER_B = 0.5, 4.0, 32.0


def payloads():
    """The RTP payloads of PCAP (Ethernet, IPv4, UDP, RTP) of PTIME, or A-law silence."""
    out = []
    try:
        with open(PCAP, "rb") as f:
            d = f.read()
        e = "<" if d[:4] == b"\xd4\xc3\xb2\xa1" else ">"
        off = 24
        while off + 16 <= len(d):
            incl = struct.unpack(e + "I", d[off + 8 : off + 12])[0]
            pkt = d[off + 16 : off + 16 + incl]
            off += 16 + incl
            rtp = pkt[14 + (pkt[14] & 15) * 4 + 8 :]
            if len(rtp) == 12 + SAMPLES:
                out.append(bytes(rtp[12:]))
    except (OSError, IndexError, struct.error):
        pass
    return out or [b"\xd5" * SAMPLES]


PAYLOADS = payloads()
ANSWER = ("v=0\r\no=phone 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
          "m=audio %d RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=ptime:%d\r\n"
          % (ADDR, ADDR, RTP_PORT, round(PTIME * 1000)))
COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact"}


class Call:
    __slots__ = ("cid", "tag", "ok", "bye_ok", "dest", "ssrc", "seq", "ts", "sent",
                 "recv", "state")

    def __init__(self, cid, dest):
        self.cid, self.dest = cid, dest
        self.tag = "%016x" % random.getrandbits(64)
        self.ok = self.bye_ok = b""
        self.ssrc, self.seq, self.ts = (random.getrandbits(n) for n in (32, 16, 32))
        self.sent = self.recv = 0
        self.state = "answered"  # then talking (ACK), draining (BYE), done (200 sent)


def fresh_stats():
    return dict(answered=0, ended=0, sent=0, received=0, echoed=0, unmatched=0,
                lossy_calls=0, worst_call_loss_pct=0.0, max_talking=0, max_late_ms=0.0,
                skipped=0, send_errors=0)


stats = fresh_stats()


def parse(data):
    head, _, body = data.decode("latin-1").partition("\r\n\r\n")
    lines = head.split("\r\n")
    hdrs = []
    for line in lines[1:]:
        if line:
            name = line.split(":", 1)[0].strip().lower()
            hdrs.append((COMPACT.get(name, name), line))
    return lines[0], hdrs, body


def header(hdrs, name):
    return next((line.split(":", 1)[1].strip() for n, line in hdrs if n == name), "")


def response(code, reason, hdrs, tag, body=""):
    out = ["SIP/2.0 %d %s" % (code, reason)]
    for n, line in hdrs:
        if n in ("via", "from", "call-id", "cseq", "record-route"):
            out.append(line)
        elif n == "to":
            out.append(line if ";tag=" in line else line + ";tag=" + tag)
    if body:
        out += ["Contact: <sip:102@%s:%d>" % (ADDR, SIP_PORT), "Content-Type: application/sdp"]
    out.append("Content-Length: %d" % len(body))
    return ("\r\n".join(out) + "\r\n\r\n" + body).encode("latin-1")


def sdp_dest(body):
    ip = port = None
    for line in body.splitlines():
        if line.startswith("c=IN IP4 "):
            ip = line[9:].split("/")[0].strip()
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    return (ip, port) if ip and port else None


def udp_socket(port, addr=ADDR):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # SO_RCVBUFFORCE / SO_SNDBUFFORCE (root may pass net.core.rmem_max): 64 MB queues, so
    # that a load generator short of CPU for a moment does not drop what it measures.
    for force, opt in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):
        try:
            s.setsockopt(socket.SOL_SOCKET, force, 32 << 20)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, opt, 32 << 20)
    s.bind((addr, port))
    return s


def echo(counter):
    """The caller's side, in a child process: every packet back where it came from."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: ends with the phone
    except (OSError, AttributeError):
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if ECHO_NETNS:
        with open("/run/netns/" + ECHO_NETNS, "rb") as ns:
            if libc.setns(ns.fileno(), CLONE_NEWNET) != 0:
                sys.exit("rtp_phone: setns %s: %s" % (ECHO_NETNS, os.strerror(ctypes.get_errno())))
    sock = udp_socket(ECHO_PORT, ECHO_ADDR)
    buf = bytearray(2048)
    view = memoryview(buf)
    n = 0
    while True:
        size, src = sock.recvfrom_into(buf)
        try:
            sock.sendto(view[:size], src)
            n += 1
            struct.pack_into("Q", counter, 0, n)
        except OSError:
            pass


def main():
    sip, rtp = udp_socket(SIP_PORT), udp_socket(RTP_PORT)
    echoed = mmap.mmap(-1, 8)
    child = os.fork()
    if child == 0:
        sip.close()
        rtp.close()
        echo(echoed)
    sip.setblocking(False)
    rtp.setblocking(False)
    loop = asyncio.new_event_loop()
    calls = {}    # Call-ID -> Call
    by_port = {}  # the relay port a call's audio comes back from -> Call
    heap = []     # (due, n, Call): each talking call's next packet
    talking = [0, 0]  # now, and a counter for the heap

    def send_sip(b, to):
        try:
            sip.sendto(b, to)
        except OSError:
            pass

    def resend_ok(c, to, interval, until):
        if c.state == "answered" and loop.time() < until:
            send_sip(c.ok, to)
            loop.call_later(interval, resend_ok, c, to, min(interval * 2, T2), until)

    def finish(c, to):
        c.state = "done"
        by_port.pop(c.dest[1], None)
        stats["ended"] += 1
        stats["sent"] += c.sent
        stats["received"] += c.recv
        if c.recv < c.sent:
            stats["lossy_calls"] += 1
            loss = 100.0 * (c.sent - c.recv) / c.sent
            stats["worst_call_loss_pct"] = max(stats["worst_call_loss_pct"], loss)
        send_sip(c.bye_ok, to)
        loop.call_later(TIMER_B, calls.pop, c.cid, None)

    def on_sip():
        while True:
            try:
                data, src = sip.recvfrom(65535)
            except BlockingIOError:
                return
            try:
                start, hdrs, body = parse(data)
            except (UnicodeError, IndexError):
                continue
            if not start or start.startswith("SIP/2.0"):
                continue  # keep-alives; this phone sends no requests
            method = start.split(" ", 1)[0]
            cid = header(hdrs, "call-id")
            c = calls.get(cid)
            if method == "INVITE":
                if c is None:
                    dest = sdp_dest(body)
                    if dest is None:
                        send_sip(response(488, "Not Acceptable Here", hdrs, "x"), src)
                        continue
                    c = calls[cid] = Call(cid, dest)
                    by_port[dest[1]] = c
                    stats["answered"] += 1
                    send_sip(response(180, "Ringing", hdrs, c.tag), src)
                    c.ok = response(200, "OK", hdrs, c.tag, ANSWER)
                    loop.call_later(T1, resend_ok, c, src, 2 * T1, loop.time() + TIMER_B)
                if c.state == "answered":
                    send_sip(c.ok, src)
            elif method == "ACK":
                if c is not None and c.state == "answered":
                    c.state = "talking"
                    talking[0] += 1
                    talking[1] += 1
                    stats["max_talking"] = max(stats["max_talking"], talking[0])
                    heapq.heappush(heap, (time.monotonic(), talking[1], c))
            elif method == "BYE" and c is not None:
                if not c.bye_ok:
                    c.bye_ok = response(200, "OK", hdrs, c.tag)
                    if c.state == "talking":
                        talking[0] -= 1
                    c.state = "draining"
                    loop.call_later(DRAIN, finish, c, src)
                elif c.state == "done":
                    send_sip(c.bye_ok, src)
            elif method == "BYE":
                send_sip(response(481, "Call/Transaction Does Not Exist", hdrs, "x"), src)
            else:
                send_sip(response(200, "OK", hdrs, c.tag if c else "x"), src)

    def on_rtp():
        while True:
            try:
                _, src = rtp.recvfrom(2048)
            except BlockingIOError:
                return
            c = by_port.get(src[1])
            if c is not None:
                c.recv += 1
            else:
                stats["unmatched"] += 1

    async def sender():
        n = len(PAYLOADS)
        while True:
            now = time.monotonic()
            budget = 5000  # packets; then the sockets get their turn
            while heap and heap[0][0] <= now and budget:
                budget -= 1
                due, k, c = heapq.heappop(heap)
                if c.state != "talking":
                    continue
                late = (now - due) * 1000
                if late > stats["max_late_ms"]:
                    stats["max_late_ms"] = late
                if late > 500:
                    skip = int(late / 1000 / PTIME)
                    stats["skipped"] += skip
                    heapq.heappush(heap, (due + skip * PTIME, k, c))
                    continue
                hdr = struct.pack("!BBHII", 0x80, 8 | (0x80 if c.sent == 0 else 0),
                                  c.seq, c.ts, c.ssrc)
                try:
                    rtp.sendto(hdr + PAYLOADS[c.sent % n], c.dest)
                except OSError:
                    stats["send_errors"] += 1
                c.sent += 1
                c.seq = (c.seq + 1) & 0xFFFF
                c.ts = (c.ts + SAMPLES) & 0xFFFFFFFF
                heapq.heappush(heap, (due + PTIME, k, c))
            await asyncio.sleep(0.002 if budget else 0)

    def dump():
        global stats
        total = struct.unpack("Q", echoed[:8])[0]
        stats["echoed"] = total - dump.echoed
        dump.echoed = total
        line = " ".join("%s=%s" % (k, "%.3f" % v if isinstance(v, float) else v)
                        for k, v in stats.items())
        with open(STATS + ".tmp", "w") as f:
            f.write(line + " talking_now=%d\n" % talking[0])
        os.replace(STATS + ".tmp", STATS)
        stats = fresh_stats()
        stats["max_talking"] = talking[0]

    dump.echoed = 0
    loop.add_reader(sip.fileno(), on_sip)
    loop.add_reader(rtp.fileno(), on_rtp)
    loop.add_signal_handler(signal.SIGUSR1, dump)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.add_signal_handler(signal.SIGINT, loop.stop)
    loop.create_task(sender())
    try:
        loop.run_forever()
    finally:
        os.kill(child, signal.SIGTERM)
        os.waitpid(child, 0)


main()
