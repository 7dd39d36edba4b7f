# Sends the ICMP "port unreachable" a host sends back for a UDP datagram from 127.0.0.1:SPORT to
# 127.0.0.1:DPORT, at a moment of the test's choosing: the way a refusal looks that comes later
# than slpc waits for one (a daemon across a slow link), or that nobody's datagram caused.
# Needs a raw socket (root, or CAP_NET_RAW); exits 3 without one.
# usage: icmp_unreachable.py SPORT DPORT
import socket, struct, sys


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


sport, dport = int(sys.argv[1]), int(sys.argv[2])
loopback = socket.inet_aton("127.0.0.1")
# The datagram's IP header and the first 8 bytes of its UDP header, as ICMP quotes them.
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0x4000, 64, socket.IPPROTO_UDP, 0, loopback, loopback)
ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
udp = struct.pack("!HHHH", sport, dport, 8, 0)
icmp = struct.pack("!BBHI", 3, 3, 0, 0) + ip + udp  # type 3, code 3: port unreachable
icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
try:
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
except PermissionError:
    sys.exit(3)
raw.sendto(icmp, ("127.0.0.1", 0))
