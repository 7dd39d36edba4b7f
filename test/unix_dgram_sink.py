# A Unix datagram socket that prints each datagram it receives, in hex, one a line: the reader
# side for lib/unix_dgram.test.ts, which Bun cannot be (it has no Unix datagram sockets).
# A datagram that brings a file descriptor (SCM_RIGHTS) is printed as "fd SEALS HEX": the file's
# seals (F_GET_SEALS) and its content.
# With --hold it reads nothing until a line arrives on stdin, so its queue fills up.
# usage: unix_dgram_sink.py PATH [--hold]
import fcntl, os, socket, sys

reader = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
reader.bind(sys.argv[1])
print("ready", flush=True)
if "--hold" in sys.argv:
    sys.stdin.readline()
while True:
    data, fds, _, _ = socket.recv_fds(reader, 1 << 17, 4)
    for fd in fds:
        seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)
        content = os.pread(fd, os.fstat(fd).st_size, 0)
        os.close(fd)
        print("fd", seals, content.hex(), flush=True)
    if not fds:
        print(data.hex(), flush=True)
