# Runs a command with its stdout on a terminal of COLUMNS columns (a pseudo-terminal in raw mode,
# so bytes pass unchanged) and copies what it prints to this stdout: how format.test.ts sees
# what slpc does when a person runs it. stderr and the environment pass through. The command
# dies with this process, so a test that kills it leaves nothing behind.
# usage: on_terminal.py COLUMNS COMMAND...
import ctypes, fcntl, os, signal, struct, subprocess, sys, termios, tty

PR_SET_PDEATHSIG = 1
columns, command = int(sys.argv[1]), sys.argv[2:]
leader, follower = os.openpty()
tty.setraw(follower)
fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
libc = ctypes.CDLL(None, use_errno=True)
child = subprocess.Popen(
    command, stdin=subprocess.DEVNULL, stdout=follower, preexec_fn=lambda: libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
)
os.close(follower)
signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
while True:
    try:
        data = os.read(leader, 1 << 16)
    except OSError:  # EIO: the command closed the terminal
        break
    if not data:
        break
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()
sys.exit(child.wait())
