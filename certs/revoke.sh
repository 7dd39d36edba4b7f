#!/usr/bin/env bash
# Revokes certificates made by make-certs.sh and writes the CRLs for slps --crl.
#
#   bash certs/revoke.sh [-d DIR] [NAME ...]
#
# Each NAME is a client (DIR/NAME.pem), or an intermediate CA (ca-NAME, made by make-certs.sh -i),
# which refuses every client under it. Each is revoked by the CA that issued it. Without names it
# only writes fresh CRLs, which is also how to renew them before they run out: a CRL is valid for
# 365 days, and slps refuses every client certificate once its CRL has expired. Writes DIR/crl.pem,
# one file with a CRL from the root and one from each intermediate (OpenSSL checks every CA in a
# client's chain, so slps needs them all), and keeps the revoked certificates in DIR/index.txt
# (DIR/ca-NAME.index.txt for an intermediate). After it: send slps SIGHUP (systemctl reload slps).
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = "-d" ]; then dir=${2:?-d needs a folder}; shift 2; fi
case "${1:-}" in -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 2;; esac
[ -f "$dir/ca.pem" ] && [ -f "$dir/ca.key" ] || { echo "revoke: no CA in $dir (make-certs.sh makes one)" >&2; exit 2; }

# The root, then each intermediate with its key: every CA that may have issued a certificate.
cas=(ca)
for pem in "$dir"/ca-*.pem; do
  name=$(basename "$pem" .pem)
  [ -f "$dir/$name.key" ] && cas+=("$name")
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# config CA: an openssl ca configuration with CA's own database (index.txt and crlnumber for the root)
config() {
  local base=$dir/$1.
  [ "$1" = ca ] && base=$dir/
  touch "${base}index.txt"
  [ -f "${base}crlnumber" ] || echo 1000 > "${base}crlnumber"
  cat > "$tmp/$1.cnf" <<CONFIG
[ ca ]
default_ca = slp
[ slp ]
database = ${base}index.txt
crlnumber = ${base}crlnumber
default_md = sha256
default_crl_days = 365
CONFIG
  echo "$tmp/$1.cnf"
}

subject() { openssl x509 -in "$1" -noout -subject -nameopt compat | sed 's/^subject=//'; }

for name in "$@"; do
  [ -f "$dir/$name.pem" ] || { echo "revoke: no certificate $dir/$name.pem" >&2; exit 2; }
  serial=$(openssl x509 -in "$dir/$name.pem" -noout -serial | sed 's/^serial=//')
  issuer=$(openssl x509 -in "$dir/$name.pem" -noout -issuer -nameopt compat | sed 's/^issuer=//')
  ca=""
  for candidate in "${cas[@]}"; do
    if [ "$(subject "$dir/$candidate.pem")" = "$issuer" ]; then ca=$candidate; break; fi
  done
  [ -n "$ca" ] || { echo "revoke: $name was issued by $issuer, which is no CA in $dir" >&2; exit 2; }
  cnf=$(config "$ca")
  if grep -q "	$serial	" "$(sed -n 's/^database = //p' "$cnf")"; then
    echo "$name (serial $serial) was already revoked"
  else
    openssl ca -config "$cnf" -keyfile "$dir/$ca.key" -cert "$dir/$ca.pem" -revoke "$dir/$name.pem" 2>/dev/null
    echo "revoked $name (serial $serial)"
  fi
done

: > "$tmp/crl.pem"
for ca in "${cas[@]}"; do
  cnf=$(config "$ca")
  openssl ca -config "$cnf" -keyfile "$dir/$ca.key" -cert "$dir/$ca.pem" -gencrl -out "$tmp/$ca.crl" 2>/dev/null
  cat "$tmp/$ca.crl" >> "$tmp/crl.pem"
  database=$(sed -n 's/^database = //p' "$cnf")
  until=$(openssl crl -in "$tmp/$ca.crl" -noout -nextupdate | sed 's/^nextUpdate=//')
  echo "CRL from $(subject "$dir/$ca.pem"): $(grep -c '^R' "$database" || true) revoked, valid until $until"
done
mv "$tmp/crl.pem" "$dir/crl.pem"
chmod 644 "$dir/crl.pem"
echo "wrote $dir/crl.pem (${#cas[@]} CRLs); now send slps SIGHUP"
