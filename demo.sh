#!/usr/bin/env bash
# The whole relay on this machine, on loopback: throwaway certificates, slps, and slpc printing
# what arrives. It sends a few messages itself, then keeps running until Ctrl-C so that you can
# send your own with logger.
set -euo pipefail
cd "$(dirname "$0")"
bun=node_modules/.bin/bun
[ -x "$bun" ] || bun=bun
udp_port=${DEMO_UDP_PORT:-5514}
tls_port=${DEMO_TLS_PORT:-6514}

certs=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$certs"' EXIT
bash certs/make-certs.sh -d "$certs" localhost demo-client > /dev/null

"$bun" slps.ts --udp "127.0.0.1:$udp_port" --listen "127.0.0.1:$tls_port" \
  --cert "$certs/server.pem" --key "$certs/server.key" --ca "$certs/ca.pem" &
sleep 0.5
"$bun" slpc.ts --server "localhost:$tls_port" --ca "$certs/ca.pem" \
  --cert "$certs/demo-client.pem" --key "$certs/demo-client.key" --stdout --replay &
sleep 1

"$bun" -e '
  const udp = await Bun.udpSocket({});
  const now = () => new Date().toISOString();
  for (const message of [
    `<13>1 ${now()} demo-host demo - - - hello from the server side`,
    `<86>1 ${now()} demo-host sshd 4242 - - Failed password for root from 192.0.2.7 port 22`,
    `<14>1 ${now()} demo-host app - - - a message\nwith a newline arrives whole`,
  ]) udp.send(message, Number(process.argv[1]), "127.0.0.1");
  udp.close();
' "$udp_port"
sleep 0.5
echo
echo "demo: running. In another terminal try:  logger -n 127.0.0.1 -P $udp_port -d hi"
echo "demo: Ctrl-C stops it."
wait
