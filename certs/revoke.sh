#!/usr/bin/env bash
# Revokes client certificates made by make-certs.sh and writes the CRL for slps --crl.
#
#   bash certs/revoke.sh [-d DIR] [NAME ...]
#
# Each NAME is a client (DIR/NAME.pem). Without names it only writes a fresh CRL, which is also
# how to renew one before it runs out: a CRL is valid for 365 days, and slps refuses every
# client certificate once its CRL has expired. Writes DIR/crl.pem (and keeps the list of revoked
# certificates in DIR/index.txt). After it: send slps SIGHUP (systemctl reload slps).
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = "-d" ]; then dir=${2:?-d needs a folder}; shift 2; fi
case "${1:-}" in -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2;; esac
[ -f "$dir/ca.pem" ] && [ -f "$dir/ca.key" ] || { echo "revoke: no CA in $dir (make-certs.sh makes one)" >&2; exit 2; }

touch "$dir/index.txt"
[ -f "$dir/crlnumber" ] || echo 1000 > "$dir/crlnumber"
config=$(mktemp)
trap 'rm -f "$config"' EXIT
cat > "$config" <<CONFIG
[ ca ]
default_ca = slp
[ slp ]
database = $dir/index.txt
crlnumber = $dir/crlnumber
default_md = sha256
default_crl_days = 365
CONFIG

for name in "$@"; do
  [ -f "$dir/$name.pem" ] || { echo "revoke: no certificate $dir/$name.pem" >&2; exit 2; }
  serial=$(openssl x509 -in "$dir/$name.pem" -noout -serial | sed 's/^serial=//')
  if grep -q "	$serial	" "$dir/index.txt"; then
    echo "$name (serial $serial) was already revoked"
  else
    openssl ca -config "$config" -keyfile "$dir/ca.key" -cert "$dir/ca.pem" -revoke "$dir/$name.pem" 2>/dev/null
    echo "revoked $name (serial $serial)"
  fi
done

openssl ca -config "$config" -keyfile "$dir/ca.key" -cert "$dir/ca.pem" -gencrl -out "$dir/crl.pem" 2>/dev/null
chmod 644 "$dir/crl.pem"
echo "wrote $dir/crl.pem ($(grep -c '^R' "$dir/index.txt" || true) revoked, valid until $(openssl crl -in "$dir/crl.pem" -noout -nextupdate | sed 's/^nextUpdate=//')); now send slps SIGHUP"
