#!/usr/bin/env bash
# Makes docs/pretty.png, the picture of `slpc --stdout` on a terminal in the README: slps and slpc
# on loopback, slpc in a tmux pane of COLUMNS x ROWS, a handful of varied messages, then the pane
# with its colours (tmux capture-pane -e) turned into HTML and photographed by headless Chromium.
# Needs tmux and chromium (apt-get install -y tmux chromium) besides what the tests need; CI does
# not run it. Run it from anywhere: bash docs/pretty.sh [OUT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-docs/pretty.png}")
bun=node_modules/.bin/bun
[ -x "$bun" ] || bun=bun
chromium=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
for tool in tmux "$chromium"; do
  [ -n "$tool" ] && command -v "$tool" > /dev/null || { echo "pretty.sh: needs tmux and chromium" >&2; exit 2; }
done
udp_port=${PRETTY_UDP_PORT:-25514}
tls_port=${PRETTY_TLS_PORT:-26514}
columns=110
rows=24
session=slp-pretty-$$

work=$(mktemp -d)
cleanup() {
  tmux kill-session -t "$session" 2> /dev/null || true
  [ -z "${slps:-}" ] || kill "$slps" 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
bash certs/make-certs.sh -d "$work" localhost pretty > /dev/null

"$bun" slps.ts --udp "127.0.0.1:$udp_port" --listen "127.0.0.1:$tls_port" \
  --cert "$work/server.pem" --key "$work/server.key" --ca "$work/ca.pem" 2> "$work/slps.log" &
slps=$!
for _ in $(seq 50); do grep -q "serving clients" "$work/slps.log" && break; sleep 0.1; done

# UTC, so the picture shows the times the messages carry; stderr aside, so the pane holds only messages.
tmux new-session -d -s "$session" -x "$columns" -y "$rows" \
  "TZ=UTC $bun slpc.ts --server localhost:$tls_port --ca $work/ca.pem --cert $work/pretty.pem \
   --key $work/pretty.key --stdout 2> $work/slpc.log; sleep 60"
for _ in $(seq 100); do grep -q "starts at #" "$work/slps.log" && break; sleep 0.1; done

# A morning on a web server: logins, a brute force, sudo, the kernel, an app speaking RFC 5424.
"$bun" -e '
  const udp = await Bun.udpSocket({});
  for (const message of [
    "<38>Nov 27 09:14:02 web1 sshd[20611]: Accepted publickey for alice from 198.51.100.23 port 50122 ssh2",
    "<36>Nov 27 09:14:07 web1 sshd[20644]: Failed password for invalid user admin from 203.0.113.9 port 41870 ssh2",
    "<35>Nov 27 09:14:09 web1 sshd[20644]: error: maximum authentication attempts exceeded for invalid user admin from 203.0.113.9 port 41870 ssh2 [preauth]",
    "<85>Nov 27 09:15:31 web1 sudo[20702]:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl reload nginx",
    "<30>Nov 27 09:15:31 web1 systemd[1]: Reloaded nginx.service - A high performance web server.",
    "<3>Nov 27 09:15:40 web1 kernel: EXT4-fs error (device sda1): ext4_find_entry:1463: inode #2: comm nginx: reading directory lblock 0",
    "<165>1 2026-11-27T09:16:02.318Z web1 checkout 7781 ORDER [order@32473 id=\"A-10293\" total=\"84.50\" currency=\"EUR\"] order paid",
    "<191>1 2026-11-27T09:16:03.001Z web1 checkout 7781 CACHE - cache miss for cart:5521, reading it from the database",
    "<78>Nov 27 09:17:01 web1 CRON[20811]: (root) CMD (cd / && run-parts --report /etc/cron.hourly)",
  ]) udp.send(message, Number(process.argv[1]), "127.0.0.1");
  udp.close();
' "$udp_port"
sleep 1
# The lines with text only: the rest of the pane is empty.
tmux capture-pane -e -p -t "$session" | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' > "$work/pane.ans"

# The capture's SGR codes (tmux writes only the ones it needs) as HTML spans on a dark terminal.
python3 - "$work/pane.ans" "$work/pane.html" "$columns" << 'EOF'
import html, re, sys

source, target, columns = sys.argv[1], sys.argv[2], int(sys.argv[3])
colours = {31: "#f0605a", 33: "#e5c07b", 32: "#98c379", 34: "#61afef", 35: "#c678dd", 36: "#56b6c2", 37: "#dcdfe4"}
lines = open(source, encoding="utf-8").read().rstrip("\n").split("\n")
state, body = {"fg": None, "dim": False, "bold": False}, []
for line in lines:
    parts = re.split(r"\x1b\[([\d;]*)m", line)
    row = html.escape(parts[0])
    for index in range(1, len(parts), 2):
        for code in [int(c) if c else 0 for c in parts[index].split(";")]:
            if code == 0: state = {"fg": None, "dim": False, "bold": False}
            elif code == 1: state["bold"] = True
            elif code == 2: state["dim"] = True
            elif code == 22: state["dim"] = state["bold"] = False
            elif code == 39: state["fg"] = None
            elif 30 <= code <= 37 or 90 <= code <= 97: state["fg"] = colours.get(code % 60, "#dcdfe4")
        style = ";".join(filter(None, [state["fg"] and f"color:{state['fg']}",
                                       state["dim"] and "opacity:.55", state["bold"] and "font-weight:bold"]))
        text = html.escape(parts[index + 1])
        row += f'<span style="{style}">{text}</span>' if style and text else text
    body.append(row)
page = f"""<!doctype html><meta charset="utf-8"><style>
html, body {{ margin: 0; background: #1d1f23; }}
pre {{ margin: 0; padding: 14px 16px; color: #c8ccd4; width: {columns}ch;
       font: 14px/19px "DejaVu Sans Mono", monospace; }}
</style><pre>{chr(10).join(body)}</pre>"""
open(target, "w", encoding="utf-8").write(page)
EOF
lines=$(grep -c '' "$work/pane.ans")
width=$((columns * 85 / 10 + 40))
height=$((lines * 19 + 28))
"$chromium" --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
  --window-size="$width,$height" --screenshot="$out" "file://$work/pane.html" 2> /dev/null
echo "pretty.sh: wrote $out (${width}x${height})"
