#!/usr/bin/env bash
# Makes docs/web.png, the picture of `slpc --web` in the README: two slps and one slpc on loopback,
# slpc following both with the live view on, a morning's messages sent to each, then the page opened
# in headless Chromium (through playwright-core, as the tests drive it) and photographed.
# Needs chromium (apt-get install -y chromium) besides what the tests need; CI does not run it.
# Run it from anywhere: bash docs/web.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-docs/web.png}")
bun=node_modules/.bin/bun
[ -x "$bun" ] || bun=bun
[ -x /usr/bin/chromium ] || { echo "web.sh: needs /usr/bin/chromium (apt-get install -y chromium)" >&2; exit 2; }
base=${WEB_SHOT_PORT:-27514}
web_port=$((base + 1000))

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
bash certs/make-certs.sh -d "$work" localhost client > /dev/null

# Two servers: a web server and a database, each with its slps.
for i in 0 1; do
  "$bun" slps.ts --udp "127.0.0.1:$((base + i))" --listen "127.0.0.1:$((base + 10 + i))" \
    --cert "$work/server.pem" --key "$work/server.key" --ca "$work/ca.pem" 2> "$work/slps$i.log" &
  pids+=($!)
done
for i in 0 1; do
  for _ in $(seq 50); do grep -q "serving clients" "$work/slps$i.log" && break; sleep 0.1; done
done
"$bun" slpc.ts --server "localhost:$((base + 10))" --server "localhost:$((base + 11))" --ca "$work/ca.pem" \
  --cert "$work/client.pem" --key "$work/client.key" --format json --web "127.0.0.1:$web_port" \
  > /dev/null 2> "$work/slpc.log" &
pids+=($!)
for _ in $(seq 100); do [ "$(grep -c "following server" "$work/slpc.log")" -ge 2 ] && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*?token=[^ ]*' "$work/slpc.log")

# A morning: logins and a brute force on the web server, sudo, the kernel, an app speaking RFC 5424,
# and on the database its own complaints.
"$bun" -e '
  const udp = await Bun.udpSocket({});
  const [web, db] = [Number(process.argv[1]), Number(process.argv[2])];
  for (const [port, message] of [
    [web, "<38>Nov 27 09:14:02 web1 sshd[20611]: Accepted publickey for alice from 198.51.100.23 port 50122 ssh2"],
    [web, "<36>Nov 27 09:14:07 web1 sshd[20644]: Failed password for invalid user admin from 203.0.113.9 port 41870 ssh2"],
    [web, "<35>Nov 27 09:14:09 web1 sshd[20644]: error: maximum authentication attempts exceeded for invalid user admin [preauth]"],
    [db, "<134>Nov 27 09:14:30 db1 postgres[3112]: LOG:  checkpoint starting: time"],
    [web, "<85>Nov 27 09:15:31 web1 sudo[20702]:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl reload nginx"],
    [web, "<30>Nov 27 09:15:31 web1 systemd[1]: Reloaded nginx.service - A high performance web server."],
    [db, "<131>Nov 27 09:15:38 db1 postgres[3190]: ERROR:  duplicate key value violates unique constraint \"orders_pkey\""],
    [web, "<3>Nov 27 09:15:40 web1 kernel: EXT4-fs error (device sda1): ext4_find_entry:1463: inode #2: comm nginx: reading directory lblock 0"],
    [web, "<165>1 2026-11-27T09:16:02.318Z web1 checkout 7781 ORDER [order@32473 id=\"A-10293\" total=\"84.50\" currency=\"EUR\"] order paid"],
    [web, "<191>1 2026-11-27T09:16:03.001Z web1 checkout 7781 CACHE - cache miss for cart:5521, reading it from the database"],
    [db, "<132>Nov 27 09:16:04 db1 postgres[3112]: WARNING:  there is no transaction in progress"],
    [web, "<78>Nov 27 09:17:01 web1 CRON[20811]: (root) CMD (cd / && run-parts --report /etc/cron.hourly)"],
  ]) {
    udp.send(message, port, "127.0.0.1");
    await Bun.sleep(20); // in this order across both servers
  }
  udp.close();
' "$base" "$((base + 1))"
sleep 0.5

# UTC, so the picture shows the times the messages carry.
TZ=UTC "$bun" -e '
  import { chromium } from "playwright-core";
  const [url, out] = process.argv.slice(1);
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--hide-scrollbars"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 330 } });
  await page.goto(url);
  await page.waitForFunction(() => document.querySelectorAll("#rows .row:not([hidden])").length >= 12);
  await page.mouse.move(0, 0);

  await page.screenshot({ path: out });
  await browser.close();
' "$url" "$out"
echo "web.sh: wrote $out"
