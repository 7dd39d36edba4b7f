#!/usr/bin/env bash
# Makes a private CA, a server certificate and client certificates for slp, with the openssl CLI.
#
#   bash certs/make-certs.sh [-d DIR] SERVER_HOST [CLIENT_NAME ...]
#
# Writes into DIR (default: the folder this script is in):
#   ca.pem, ca.key            the CA; kept and reused if already there, so adding a client later
#                             does not invalidate the certificates issued before
#   server.pem, server.key    for SERVER_HOST (subjectAltName DNS or IP), used by slps
#   NAME.pem, NAME.key        one pair per client name (default: "client"), used by slpc
# and prints the --issuer value that matches the CA.
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = "-d" ]; then dir=${2:?-d needs a folder}; shift 2; fi
host=${1:-}
if [ -z "$host" ] || [ "$host" = "-h" ] || [ "$host" = "--help" ]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
shift
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(client)

mkdir -p "$dir"
umask 077
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ ! -f "$dir/ca.pem" ] || [ ! -f "$dir/ca.key" ]; then
  openssl req -x509 "${ec[@]}" -keyout "$dir/ca.key" -out "$dir/ca.pem" -days 3650 \
    -subj "/O=slp/CN=slp private CA" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
  chmod 644 "$dir/ca.pem"
  echo "made the CA: $dir/ca.pem"
fi

# issue NAME SUBJECT EXTENSIONS: a key and a certificate signed by the CA, valid 825 days
issue() {
  openssl req "${ec[@]}" -keyout "$dir/$1.key" -out "$tmp/$1.csr" -subj "$2" 2>/dev/null
  printf '%s\n' "$3" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -CAserial "$tmp/serial" -days 825 -extfile "$tmp/$1.ext" -out "$dir/$1.pem" 2>/dev/null
  chmod 644 "$dir/$1.pem"
  echo "made $dir/$1.pem and $dir/$1.key"
}

if [[ "$host" =~ ^[0-9.]+$ || "$host" == *:* ]]; then san="IP:$host"; else san="DNS:$host"; fi
issue server "/O=slp/CN=$host" "subjectAltName=$san
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature"

for name in "${clients[@]}"; do
  case "$name" in server|ca|*/*|.*|"") echo "make-certs: client name '$name' is reserved or not a plain name" >&2; exit 2;; esac
  issue "$name" "/O=slp/CN=$name" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
done

echo "issuer of the client certificates (slps --issuer): $(openssl x509 -in "$dir/ca.pem" -noout -subject -nameopt compat | sed 's/^subject=//')"
