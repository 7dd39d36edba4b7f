# A TLS client that completes the handshake, asks to start live, and then never reads again: the
# way a half-dead or overloaded client looks to the server. Bun's own sockets always read, so
# this one is Python.
# usage: stalled_client.py PORT CA CERT KEY
import socket, ssl, sys, time

port, ca, cert, key = sys.argv[1:5]
context = ssl.create_default_context(cafile=ca)
context.load_cert_chain(cert, key)
raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small, so the server feels it at once
raw.connect(("127.0.0.1", int(port)))
connection = context.wrap_socket(raw, server_hostname="localhost")

# The server speaks first: read its hello, a control frame "!LEN JSON", then answer with resume.
received = b""
while b" " not in received:
    received += connection.recv(1)
length = int(received[1:received.index(b" ")])
while len(received) < received.index(b" ") + 1 + length:
    received += connection.recv(1)
resume = b'{"type":"resume","version":1}'
connection.sendall(b"!%d %s" % (len(resume), resume))
print("handshake done", flush=True)
time.sleep(600)
