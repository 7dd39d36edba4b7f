# A Unix datagram socket that prints each datagram it receives, in hex, one a line: the reader
# side for lib/unix_dgram.test.ts, which Bun cannot be (it has no Unix datagram sockets).
# With --hold it reads nothing until a line arrives on stdin, so its queue fills up.
# usage: unix_dgram_sink.py PATH [--hold]
import socket, sys

reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
reader.bind(sys.argv[1])
print("ready", flush=True)
if "--hold" in sys.argv:
    sys.stdin.readline()
while True:
    print(reader.recv(1 << 17).hex(), flush=True)
