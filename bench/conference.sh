#!/usr/bin/env bash
# Conference mixing: officebox's CPU per participant of one meet-me conference, on
# loopback only.
#
# officebox runs from a copy of examples/demo.toml (every port moved up by PORT_OFFSET,
# its data dir in the scratch dir) with the conference extension 800 and room for the
# largest size asked. For each N in SIZES, a Python asyncio program (below) is N phones:
# each calls 800 as alice (INVITE, the 407 answered with her digest, 200, ACK) from its
# own SIP and RTP sockets, then sends a 440 Hz tone in PCMU every 20 ms and counts what
# comes back. Once all N are in, officebox's CPU time (utime+stime from /proc/PID/stat)
# over STEADY seconds gives its share of one core; divided by N, the cost of a
# participant. Every participant must get at least 95% of the frames it should (one
# every 20 ms) in that window. Then all hang up (BYE) and the next N starts.
#
# There is no peer beside it: the usual picks (Asterisk's ConfBridge, FreeSWITCH's
# mod_conference) are not installed here, and kamailio mixes no audio. The bar is the
# issue's: 50 participants in one conference under 25% of one core.
#
#     bench/conference.sh             # SIZES="10 50", STEADY=10
#
# Environment: SIZES, STEADY (seconds measured), PORT_OFFSET (default 3000),
# OFFICEBOX_BIN (a built binary; otherwise a release build), KEEP_WORK=1.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

sizes="${SIZES:-10 50}"
steady="${STEADY:-10}"
port_offset="${PORT_OFFSET:-3000}"
addr=127.0.0.1
clk_tck="$(getconf CLK_TCK)"
for tool in python3 awk; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 1; }
done
largest=0
for n in $sizes; do [ "$n" -gt "$largest" ] && largest="$n"; done

bench_start conference
officebox_binary
[ -n "$obx_src" ] || { echo "officebox: no binary" >&2; exit 1; }

dir="$work/officebox"
phone_demo "$dir" "$port_offset" 1000 "conference_extension = \"800\"
conference_size = $((largest + 1))"
phone_demo_start "$dir"

cat >"$work/phones.py" <<'EOF'
# N phones in one conference: python3 phones.py SIP_PORT DOMAIN N STEADY READY_FILE
# Prints "frames_min frames_expected" once the calls are over; writes READY_FILE when
# all N are in (and removes it to say the measured window is over: the script waits).
import asyncio, hashlib, math, os, random, re, socket, struct, sys, time

SIP_PORT, DOMAIN, N, STEADY, READY = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
BOX = ("127.0.0.1", SIP_PORT)
USER, PASSWORD, EXT = "alice", "demo-alice", "101"

def tone():
    return bytes(linear_to_ulaw(int(6000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(160))

def linear_to_ulaw(s):
    sign = 0x80 if s < 0 else 0
    s = min(abs(s), 32635) + 0x84
    exp = 7
    while exp > 0 and not (s & (0x4000 >> (7 - exp))):
        exp -= 1
    return ~(sign | (exp << 4) | ((s >> (exp + 3)) & 0x0F)) & 0xFF

class Phone:
    def __init__(self, i):
        self.i = i
        self.sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); self.sip.bind(("127.0.0.1", 0)); self.sip.setblocking(False)
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); self.rtp.bind(("127.0.0.1", 0)); self.rtp.setblocking(False)
        self.call_id = "%x@bench" % random.getrandbits(64)
        self.tag = "%x" % random.getrandbits(32)
        self.received = 0
        self.remote = None
        self.to = None
        self.cseq = 1

    def request(self, method, extra="", body="", to_tag=None):
        sip_port = self.sip.getsockname()[1]
        to = "<sip:800@%s>" % DOMAIN + (";tag=%s" % to_tag if to_tag else "")
        msg = ("%s sip:800@%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%x;rport\r\n"
               "Max-Forwards: 70\r\nFrom: <sip:%s@%s>;tag=%s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n"
               "Contact: <sip:%s@127.0.0.1:%d>\r\n%s" % (method, DOMAIN, sip_port, random.getrandbits(48),
               EXT, DOMAIN, self.tag, to, self.call_id, self.cseq, method, EXT, sip_port, extra))
        if body:
            msg += "Content-Type: application/sdp\r\n"
        msg += "Content-Length: %d\r\n\r\n%s" % (len(body), body)
        self.sip.sendto(msg.encode(), BOX)

    async def recv(self, want):
        loop = asyncio.get_running_loop()
        while True:
            data = await loop.sock_recv(self.sip, 65535)
            text = data.decode(errors="replace")
            first = text.split("\r\n", 1)[0]
            if not first.startswith("SIP/2.0"):
                continue
            code = int(first.split()[1])
            if code >= want:
                return code, text

    def sdp(self):
        port = self.rtp.getsockname()[1]
        return ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n" % port)

    async def join(self):
        self.request("INVITE", body=self.sdp())
        code, text = await self.recv(200)
        if code == 407:
            to_tag = re.search(r"^To:.*;tag=([^;\s]+)", text, re.M | re.I).group(1)
            self.request("ACK", to_tag=to_tag)
            ch = re.search(r"^Proxy-Authenticate: Digest (.*)$", text, re.M | re.I).group(1)
            realm = re.search(r'realm="([^"]*)"', ch).group(1)
            nonce = re.search(r'nonce="([^"]*)"', ch).group(1)
            algo = (re.search(r"algorithm=([A-Za-z0-9-]+)", ch) or [None, "MD5"])[1]
            h = hashlib.sha256 if algo.upper().startswith("SHA-256") else hashlib.md5
            uri = "sip:800@%s" % DOMAIN
            ha1 = h(("%s:%s:%s" % (USER, realm, PASSWORD)).encode()).hexdigest()
            ha2 = h(("INVITE:%s" % uri).encode()).hexdigest()
            qop = "auth" if "qop" in ch else None
            cnonce = "%x" % random.getrandbits(32)
            if qop:
                resp = h(("%s:%s:00000001:%s:auth:%s" % (ha1, nonce, cnonce, ha2)).encode()).hexdigest()
                auth = ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
                        'algorithm=%s, qop=auth, nc=00000001, cnonce="%s"' % (USER, realm, nonce, uri, resp, algo, cnonce))
            else:
                resp = h(("%s:%s:%s" % (ha1, nonce, ha2)).encode()).hexdigest()
                auth = 'Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s' % (USER, realm, nonce, uri, resp, algo)
            self.cseq += 1
            self.request("INVITE", extra="Proxy-Authorization: %s\r\n" % auth, body=self.sdp())
            code, text = await self.recv(200)
        if code != 200:
            raise SystemExit("phone %d: INVITE answered %d" % (self.i, code))
        self.to = re.search(r"^To:.*;tag=([^;\s]+)", text, re.M | re.I).group(1)
        m = re.search(r"^m=audio (\d+)", text, re.M)
        c = re.search(r"^c=IN IP4 (\S+)", text, re.M)
        self.remote = (c.group(1), int(m.group(1)))
        self.request("ACK", to_tag=self.to)

    async def talk(self, stop):
        seq, ts, ssrc, payload = random.getrandbits(16), random.getrandbits(32), random.getrandbits(32), tone()
        start = time.monotonic()
        n = 0
        while not stop.is_set():
            self.rtp.sendto(struct.pack("!BBHII", 0x80, 0, seq, ts, ssrc) + payload, self.remote)
            seq, ts, n = (seq + 1) & 0xFFFF, (ts + 160) & 0xFFFFFFFF, n + 1
            while True:
                try:
                    self.rtp.recvfrom(2048)
                    self.received += 1
                except BlockingIOError:
                    break
            await asyncio.sleep(max(0.0, start + n * 0.02 - time.monotonic()))

    async def hang_up(self):
        self.cseq += 1
        self.request("BYE", to_tag=self.to)
        try:
            await asyncio.wait_for(self.recv(200), 5)
        except asyncio.TimeoutError:
            pass

async def main():
    phones = [Phone(i) for i in range(N)]
    for p in phones:
        await p.join()
        await asyncio.sleep(0.02)
    stop = asyncio.Event()
    talking = [asyncio.create_task(p.talk(stop)) for p in phones]
    await asyncio.sleep(1.0)  # the join tones and the first frames
    before = [p.received for p in phones]
    open(READY, "w").close()
    await asyncio.sleep(STEADY)
    got = [p.received - b for p, b in zip(phones, before)]
    os.unlink(READY)
    stop.set()
    await asyncio.gather(*talking)
    for p in phones:
        await p.hang_up()
    print(min(got), int(STEADY / 0.02))

asyncio.run(main())
EOF

printf '%-6s %10s %14s %16s %10s\n' size "cpu %core" "per member %" "frames min/exp" result
for n in $sizes; do
    ready="$work/ready-$n"
    python3 "$work/phones.py" "$sip_port" "$domain" "$n" "$steady" "$ready" >"$work/phones-$n.out" 2>&1 &
    ppid=$!
    pids+=("$ppid")
    for _ in $(seq 600); do [ -e "$ready" ] && break; sleep 0.1; done
    [ -e "$ready" ] || { echo "size $n: the phones did not all join" >&2; cat "$work/phones-$n.out" >&2; exit 1; }
    t0="$(date +%s.%N)" c0="$(ticks "$obx_pid")"
    while [ -e "$ready" ]; do sleep 0.05; done
    t1="$(date +%s.%N)" c1="$(ticks "$obx_pid")"
    wait "$ppid" || { echo "size $n: the phones failed" >&2; cat "$work/phones-$n.out" >&2; exit 1; }
    read -r got expected <"$work/phones-$n.out"
    cpu="$(awk -v a="$c0" -v b="$c1" -v t0="$t0" -v t1="$t1" -v hz="$clk_tck" \
        'BEGIN { printf "%.1f", (b - a) / hz / (t1 - t0) * 100 }')"
    per="$(awk -v c="$cpu" -v n="$n" 'BEGIN { printf "%.2f", c / n }')"
    ok=PASS
    awk -v g="$got" -v e="$expected" 'BEGIN { exit !(g >= 0.95 * e) }' || ok="FAIL (frames lost)"
    if [ "$n" -ge 50 ]; then
        awk -v c="$cpu" 'BEGIN { exit !(c < 25) }' || ok="FAIL (over 25% of a core)"
    fi
    printf '%-6s %10s %14s %16s %10s\n' "$n" "$cpu" "$per" "$got/$expected" "$ok"
    sleep 1
done
echo "bar: 50 participants in one conference under 25% of one core"
