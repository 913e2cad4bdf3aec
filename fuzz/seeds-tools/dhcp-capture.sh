#!/bin/bash
# Captures real DHCP replies from dnsmasq for the dhcp_packet and dhcp_client seed corpora:
# two network namespaces joined by a veth pair, dnsmasq serving one side, a small Python client
# (DISCOVER, then REQUEST for the offer) on the other. Needs root, dnsmasq, iproute2, python3.
# Only the namespaces made here see any traffic.
set -euo pipefail
out=$(realpath "${1:-$(dirname "$0")/../seeds}")
ns_s=lifsea-fz-srv-$$ ns_c=lifsea-fz-cli-$$
cleanup() { ip netns pids "$ns_s" 2>/dev/null | xargs -r kill 2>/dev/null || true
            ip netns del "$ns_s" 2>/dev/null || true; ip netns del "$ns_c" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$ns_s"; ip netns add "$ns_c"
ip link add fzs type veth peer name fzc
ip link set fzs netns "$ns_s"; ip link set fzc netns "$ns_c"
ip link set fzc address 52:54:00:12:34:56 netns "$ns_c" 2>/dev/null || ip -n "$ns_c" link set fzc address 52:54:00:12:34:56
ip -n "$ns_s" addr add 10.77.0.1/24 dev fzs
ip -n "$ns_s" link set fzs up; ip -n "$ns_s" link set lo up
ip -n "$ns_c" link set fzc up; ip -n "$ns_c" link set lo up
ip netns exec "$ns_s" dnsmasq --no-daemon --conf-file=/dev/null --port=0 --interface=fzs \
    --bind-interfaces --dhcp-range=10.77.0.50,10.77.0.99,255.255.255.0,1h \
    --dhcp-option=option:router,10.77.0.1 --dhcp-option=option:dns-server,10.77.0.1,10.77.0.2 \
    --dhcp-option=option:domain-search,lab.example,example \
    --dhcp-option=option:domain-name,lab.example --dhcp-option=option:mtu,1400 \
    --dhcp-option=option:classless-static-route,10.88.0.0/16,10.77.0.1,0.0.0.0/0,10.77.0.1 \
    --dhcp-option=option:T1,600 --dhcp-option=option:T2,1200 \
    --dhcp-host=52:54:00:12:34:56,node1 --dhcp-leasefile=/dev/null \
    --pid-file= >/dev/null 2>&1 &
sleep 1
ip netns exec "$ns_c" python3 - "$out" <<'PY'
import os, socket, struct, sys
out = sys.argv[1]
mac = bytes.fromhex("525400123456")
def msg(kind, xid, extra=b""):
    h = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, bytes(4), bytes(4),
                    bytes(4), bytes(4), mac + bytes(10), bytes(64), bytes(128))
    opts = bytes([53, 1, kind]) + bytes([61, 7, 1]) + mac
    opts += bytes([55, 9, 1, 3, 6, 12, 15, 26, 28, 119, 121]) + extra + bytes([255])
    return h + bytes([99, 130, 83, 99]) + opts
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"fzc")
s.bind(("0.0.0.0", 68))
s.settimeout(5)
def ask(kind, xid, extra=b""):
    s.sendto(msg(kind, xid, extra), ("255.255.255.255", 67))
    return s.recvfrom(2048)[0]
offer = ask(1, 0x1234abcd)
yiaddr = offer[16:20]
server = None
i = 240
while i < len(offer) and offer[i] != 255:
    if offer[i] == 0: i += 1; continue
    if offer[i] == 54: server = offer[i + 2:i + 6]
    i += 2 + offer[i + 1]
ack = ask(3, 0x1234abcd, bytes([50, 4]) + yiaddr + bytes([54, 4]) + server)
nak = ask(3, 0x55667788, bytes([50, 4]) + bytes([10, 99, 0, 5]))
for name, data in [("offer", offer), ("ack", ack), ("nak", nak)]:
    open(os.path.join(out, "dhcp_packet", "dnsmasq-" + name), "wb").write(data)
# The client target: no lease file, then START, OFFER, ACK, TIMER (T1), ACK (renewal), RELEASE.
def pkt(kind, data): return bytes([kind]) + struct.pack("<H", len(data)) + data
seq = b"\0" + bytes([0]) + pkt(1, offer) + pkt(1, ack) + bytes([4]) + pkt(2, ack) + bytes([7])
open(os.path.join(out, "dhcp_client", "dnsmasq-bind-renew"), "wb").write(seq)
seq = b"\0" + bytes([0]) + pkt(1, offer) + pkt(1, nak) + bytes([4, 4]) + bytes([5, 6]) + pkt(1, ack)
open(os.path.join(out, "dhcp_client", "dnsmasq-nak"), "wb").write(seq)
print("captured offer %d, ack %d, nak %d bytes" % (len(offer), len(ack), len(nak)))
PY
