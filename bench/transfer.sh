#!/usr/bin/env bash
# Blind transfers through officebox's B2BUA beside plain call setups, on loopback only.
#
# officebox runs from a copy of examples/demo.toml (every port moved up by PORT_OFFSET,
# its data dir in the scratch dir) with a third user, carol (103). A Python asyncio
# program (below) is three phones, each on its own SIP socket and registered with its
# digest: alice calls, bob (102) answers and at once transfers the caller to 103 (REFER,
# then the NOTIFYs, then his BYE once told 200 OK), carol (103) answers. One transfer:
# alice's INVITE (407, again with digest), 200, ACK; bob's REFER, 202, two NOTIFYs;
# the box's INVITE to carol, 200, ACK; bob's BYE; alice's BYE and the box's to carol.
# One plain call: alice calls 103 directly, carol answers, alice hangs up. Both kinds
# stay up 0.3 s (the time a transfer takes here), so only the work differs.
#
# Each kind runs COUNT times, CONCURRENT at once, in ROUNDS rounds taken in turn (plain,
# transfer, plain, ...: on a two-core machine one run's CPU time varies by a quarter, and
# drifts), and officebox's CPU time (utime+stime from /proc/PID/stat) over each kind's
# runs gives its CPU per transfer and per plain call; the ratio is what a transfer costs
# in plain call setups. The bar (issue 17): within 2x. Each run's phones unregister at
# its end (a binding left behind would be rung, and CANCELled for 32 s, by the next).
# No peer: kamailio is a proxy and does not carry out REFER for its phones.
#
#     bench/transfer.sh                 # COUNT=2000 CONCURRENT=50 ROUNDS=3
#
# Environment: COUNT, CONCURRENT, ROUNDS, PORT_OFFSET (default 4000), OFFICEBOX_BIN (a
# built binary; otherwise a release build), KEEP_WORK=1.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

count="${COUNT:-2000}"
concurrent="${CONCURRENT:-50}"
rounds="${ROUNDS:-3}"
port_offset="${PORT_OFFSET:-4000}"
addr=127.0.0.1
clk_tck="$(getconf CLK_TCK)"
command -v python3 >/dev/null || { echo "missing: python3" >&2; exit 1; }

bench_start transfer
officebox_binary
[ -n "$obx_src" ] || { echo "officebox: no binary" >&2; exit 1; }

dir="$work/officebox"
phone_demo "$dir" "$port_offset" 10000 'music_on_hold = "off"'
echo carol-secret | "$obx_src" user add carol --name "Carol Example" --extension 103 \
    --password-stdin --config "$dir/officebox.toml" >/dev/null
phone_demo_start "$dir"

cat >"$work/phones.py" <<'EOF'
# python3 phones.py SIP_PORT DOMAIN KIND COUNT CONCURRENT: KIND transfer or plain.
# Prints "done seconds" when all are over; writes "go" on stdout's first line once the
# phones are registered (the script starts measuring there).
import asyncio, hashlib, random, re, socket, sys, time

SIP_PORT, DOMAIN, KIND, COUNT, CONC = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
BOX = ("127.0.0.1", SIP_PORT)
SDP = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
       "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")

def rid():
    return "%x" % random.getrandbits(60)

def header(text, name):
    m = re.search(r"^%s:[ \t]*(.*)$" % name, text, re.M | re.I)
    return m.group(1).strip() if m else ""

def digest(text, user, password, method, uri, kind):
    ch = header(text, kind)
    realm = re.search(r'realm="([^"]*)"', ch).group(1)
    nonce = re.search(r'nonce="([^"]*)"', ch).group(1)
    algo = (re.search(r"algorithm=([A-Za-z0-9-]+)", ch) or [None, "MD5"])[1]
    h = hashlib.sha256 if algo.upper().startswith("SHA-256") else hashlib.md5
    ha1 = h(("%s:%s:%s" % (user, realm, password)).encode()).hexdigest()
    ha2 = h(("%s:%s" % (method, uri)).encode()).hexdigest()
    cnonce = rid()
    if "qop" in ch:
        r = h(("%s:%s:00000001:%s:auth:%s" % (ha1, nonce, cnonce, ha2)).encode()).hexdigest()
        return ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
                'algorithm=%s, qop=auth, nc=00000001, cnonce="%s"' % (user, realm, nonce, uri, r, algo, cnonce))
    r = h(("%s:%s:%s" % (ha1, nonce, ha2)).encode()).hexdigest()
    return 'Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", algorithm=%s' % (user, realm, nonce, uri, r, algo)

class Phone(asyncio.DatagramProtocol):
    """One phone's SIP socket: requests to `on_request`, responses to whoever waits for
    that Call-ID and CSeq."""
    def __init__(self, ext, login, password):
        self.ext, self.login, self.password = ext, login, password
        self.waiting = {}
        self.on_request = None

    def connection_made(self, t):
        self.t = t
        self.port = t.get_extra_info("sockname")[1]

    def datagram_received(self, data, addr):
        text = data.decode(errors="replace")
        first = text.split("\r\n", 1)[0]
        if first.startswith("SIP/2.0"):
            cseq = header(text, "CSeq")
            key = (header(text, "Call-ID"), cseq)
            code = int(first.split()[1])
            if code >= 200 and key in self.waiting:
                self.waiting.pop(key).set_result(text)
        elif self.on_request:
            self.on_request(text)

    def send(self, text):
        self.t.sendto(text.encode(), BOX)

    async def request(self, method, uri, call_id, cseq, from_, to, extra="", body=""):
        fut = asyncio.get_running_loop().create_future()
        self.waiting[(call_id, "%d %s" % (cseq, method))] = fut
        msg = ("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%s;rport\r\n"
               "Max-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n"
               "Contact: <sip:%s@127.0.0.1:%d>\r\n%s" % (method, uri, self.port, rid(), from_, to,
               call_id, cseq, method, self.ext, self.port, extra))
        if body:
            msg += "Content-Type: application/sdp\r\n"
        msg += "Content-Length: %d\r\n\r\n%s" % (len(body), body)
        self.send(msg)
        if method == "ACK":
            self.waiting.pop((call_id, "%d %s" % (cseq, method)), None)
            return None
        return await asyncio.wait_for(fut, 10)

    def answer(self, req, code, reason, tag="", extra="", body=""):
        via = "\r\n".join("Via: " + v for v in re.findall(r"^Via:[ \t]*(.*)$", req, re.M | re.I))
        to = header(req, "To")
        if tag and ";tag=" not in to:
            to += ";tag=" + tag
        msg = ("SIP/2.0 %d %s\r\n%s\r\nFrom: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %s\r\n"
               "Contact: <sip:%s@127.0.0.1:%d>\r\n%s" % (code, reason, via, header(req, "From"), to,
               header(req, "Call-ID"), header(req, "CSeq"), self.ext, self.port, extra))
        if body:
            msg += "Content-Type: application/sdp\r\n"
        msg += "Content-Length: %d\r\n\r\n%s" % (len(body), body)
        self.send(msg)

    async def register(self, expires=3600):
        """REGISTER this socket's Contact (expires 0: removes it, as a phone switched off
        does; a binding left behind would be rung, and CANCELled, by the next run)."""
        cid, me = rid(), "<sip:%s@%s>" % (self.ext, DOMAIN)
        frm = me + ";tag=" + rid()
        r = await self.request("REGISTER", "sip:" + DOMAIN, cid, 1, frm, me, "Expires: %d\r\n" % expires)
        auth = digest(r, self.login, self.password, "REGISTER", "sip:" + DOMAIN, "WWW-Authenticate")
        r = await self.request("REGISTER", "sip:" + DOMAIN, cid, 2, frm, me,
                               "Expires: %d\r\nAuthorization: %s\r\n" % (expires, auth))
        assert r.startswith("SIP/2.0 200"), r

def dialog_request(phone, req, method, cseq, tag, extra=""):
    """A request from the UAS side of the dialog `req` (an INVITE it answered)."""
    uri = re.search(r"<([^>]+)>", header(req, "Contact")).group(1)
    to = header(req, "To")
    return phone.request(method, uri, header(req, "Call-ID"), cseq, to + ";tag=" + tag,
                         header(req, "From"), extra)

async def main():
    loop = asyncio.get_running_loop()
    phones = {}
    for ext, login, pw in (("101", "alice", "demo-alice"), ("102", "bob", "demo-bob"), ("103", "carol", "carol-secret")):
        _, p = await loop.create_datagram_endpoint(lambda e=ext, l=login, w=pw: Phone(e, l, w), local_addr=("127.0.0.1", 0))
        phones[ext] = p
    alice, bob, carol = phones["101"], phones["102"], phones["103"]
    for p in phones.values():
        await p.register()
    def carol_request(req):
        method = req.split(" ", 1)[0]
        if method == "INVITE":
            carol.answer(req, 200, "OK", rid(), body=SDP % 9)
        elif method in ("BYE", "CANCEL"):
            carol.answer(req, 200, "OK")
    carol.on_request = carol_request

    def bob_request(req):
        method = req.split(" ", 1)[0]
        if method == "INVITE":
            tag = rid()
            bob.answer(req, 200, "OK", tag, body=SDP % 9)
            bob.dialogs[header(req, "Call-ID")] = (req, tag)
        elif method == "ACK":
            d = bob.dialogs.get(header(req, "Call-ID"))
            if d:
                asyncio.ensure_future(bob_transfer(*d))
        elif method == "NOTIFY":
            bob.answer(req, 200, "OK")
            if "SIP/2.0 200" in req.split("\r\n\r\n", 1)[-1]:
                d = bob.dialogs.pop(header(req, "Call-ID"), None)
                if d:
                    asyncio.ensure_future(dialog_request(bob, d[0], "BYE", 3, d[1]))
        elif method == "BYE":
            bob.answer(req, 200, "OK")
            bob.dialogs.pop(header(req, "Call-ID"), None)
    bob.dialogs = {}
    bob.on_request = bob_request

    async def bob_transfer(req, tag):
        await dialog_request(bob, req, "REFER", 2, tag, "Refer-To: <sip:103@%s>\r\n" % DOMAIN)

    async def call(target, settle):
        cid, frm = rid(), "<sip:101@%s>;tag=%s" % (DOMAIN, rid())
        uri, to = "sip:%s@%s" % (target, DOMAIN), "<sip:%s@%s>" % (target, DOMAIN)
        r = await alice.request("INVITE", uri, cid, 1, frm, to, body=SDP % 9)
        totag = header(r, "To")
        await alice.request("ACK", uri, cid, 1, frm, totag)
        auth = digest(r, "alice", "demo-alice", "INVITE", uri, "Proxy-Authenticate")
        r = await alice.request("INVITE", uri, cid, 2, frm, to,
                                "Proxy-Authorization: %s\r\n" % auth, SDP % 9)
        assert r.startswith("SIP/2.0 200"), r.split("\r\n", 1)[0]
        totag = header(r, "To")
        ruri = re.search(r"<([^>]+)>", header(r, "Contact")).group(1)
        await alice.request("ACK", ruri, cid, 2, frm, totag)
        await asyncio.sleep(settle)
        await alice.request("BYE", ruri, cid, 3, frm, totag)

    # Both kinds stay up as long (the transfer needs the time): only the work differs.
    target, settle = ("102", 0.3) if KIND == "transfer" else ("103", 0.3)
    sem = asyncio.Semaphore(CONC)
    failed = 0
    async def one():
        nonlocal failed
        async with sem:
            try:
                await call(target, settle)
            except Exception:
                failed += 1
    print("go", flush=True)
    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(COUNT)))
    elapsed = time.monotonic() - t0
    for p in phones.values():
        await p.register(0)
    print("done %.3f %d" % (elapsed, failed), flush=True)

asyncio.run(main())
EOF

# run KIND: prints "calls/s cpu_ms_per_call failed"
run() {
    local kind="$1" out="$work/$1.out" c0 c1 line
    python3 "$work/phones.py" "$sip_port" "$domain" "$kind" "$count" "$concurrent" >"$out" 2>&1 &
    local ppid=$!
    pids+=("$ppid")
    for _ in $(seq 100); do grep -q '^go' "$out" && break; sleep 0.1; done
    grep -q '^go' "$out" || { cat "$out" >&2; exit 1; }
    c0="$(ticks "$obx_pid")"
    wait "$ppid" || { cat "$out" >&2; exit 1; }
    c1="$(ticks "$obx_pid")"
    line="$(grep '^done' "$out")"
    # seconds, CPU ticks, calls failed
    awk -v l="$line" -v a="$c0" -v b="$c1" 'BEGIN { split(l, f, " "); print f[2], b - a, f[3] }'
}

declare -A secs ticks_used failed
for kind in plain transfer; do secs[$kind]=0; ticks_used[$kind]=0; failed[$kind]=0; done
for r in $(seq "$rounds"); do
    for kind in plain transfer; do
        read -r s t f <<<"$(run "$kind")"
        secs[$kind]="$(awk -v a="${secs[$kind]}" -v b="$s" 'BEGIN { print a + b }')"
        ticks_used[$kind]=$((ticks_used[$kind] + t))
        failed[$kind]=$((failed[$kind] + f))
        printf 'round %d %-9s %6.0f per s %8.3f cpu ms each\n' "$r" "$kind" \
            "$(awk -v n="$count" -v s="$s" 'BEGIN { print n / s }')" \
            "$(awk -v t="$t" -v hz="$clk_tck" -v n="$count" 'BEGIN { print t / hz / n * 1000 }')"
        sleep 2
    done
done
total=$((count * rounds))
each() { awk -v t="${ticks_used[$1]}" -v hz="$clk_tck" -v n="$total" 'BEGIN { printf "%.3f", t / hz / n * 1000 }'; }
rate() { awk -v s="${secs[$1]}" -v n="$total" 'BEGIN { printf "%.0f", n / s }'; }
plain_cpu="$(each plain)"
xfer_cpu="$(each transfer)"
printf '%-10s %10s %14s %8s\n' kind "per s" "cpu ms each" failed
printf '%-10s %10s %14s %8s\n' plain "$(rate plain)" "$plain_cpu" "${failed[plain]}"
printf '%-10s %10s %14s %8s\n' transfer "$(rate transfer)" "$xfer_cpu" "${failed[transfer]}"
r="$(ratio "$xfer_cpu" "$plain_cpu")"
verdict=PASS
awk -v r="$r" 'BEGIN { exit !(r != "n/a" && r <= 2) }' || verdict=FAIL
[ "${failed[transfer]}" = 0 ] && [ "${failed[plain]}" = 0 ] || verdict="FAIL (calls failed)"
echo "a transfer costs $r plain call setups over $rounds rounds of $count each (bar: 2): $verdict"
