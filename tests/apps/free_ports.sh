# Sourced by the process tests (sh or bash): free_ports N prints N loopback ports that are free
# now, on one line, chosen while all are held so that they differ (the kernel often hands out
# neighbours one after another).
free_ports() {
  /usr/bin/python3 -c 'import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))' "$1"
}
