#!/usr/bin/env bash
# Makes a private CA, a server certificate and client certificates for slp, with the openssl CLI.
#
#   bash certs/make-certs.sh [-d DIR] [-i NAME] SERVER_HOST [CLIENT_NAME ...]
#
# Writes into DIR (default: the folder this script is in):
#   ca.pem, ca.key            the CA; kept and reused if already there, so adding a client later
#                             does not invalidate the certificates issued before
#   server.pem, server.key    for SERVER_HOST (subjectAltName DNS or IP), used by slps
#   NAME.pem, NAME.key        one pair per client name (default: "client"), used by slpc
# and prints the --issuer value that matches the CA that issued the clients.
# With -i NAME (or --intermediate NAME) the clients come from an intermediate CA under ca.pem,
# ca-NAME.pem and ca-NAME.key, made on first use and reused after; each client's NAME.pem holds
# its certificate and then the intermediate's, so slps --ca stays ca.pem.
set -euo pipefail

dir=$(cd "$(dirname "$0")" && pwd)
intermediate=""
while :; do
  case "${1:-}" in
    -d) dir=${2:?-d needs a folder}; shift 2;;
    -i|--intermediate) intermediate=${2:?$1 needs a name}; shift 2;;
    *) break;;
  esac
done
host=${1:-}
if [ -z "$host" ] || [ "$host" = "-h" ] || [ "$host" = "--help" ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
shift
clients=("$@")
[ ${#clients[@]} -gt 0 ] || clients=(client)
plain_name() { case "$1" in server|ca|ca-*|*/*|.*|"") return 1;; esac; }
for name in "${clients[@]}"; do
  plain_name "$name" || { echo "make-certs: client name '$name' is reserved or not a plain name" >&2; exit 2; }
done
if [ -n "$intermediate" ]; then
  case "$intermediate" in
    */*|.*) echo "make-certs: intermediate name '$intermediate' is not a plain name" >&2; exit 2;;
  esac
fi

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

# issue NAME SUBJECT EXTENSIONS CA DAYS: a key and a certificate signed by CA (ca or ca-NAME)
issue() {
  openssl req "${ec[@]}" -keyout "$dir/$1.key" -out "$tmp/$1.csr" -subj "$2" 2>/dev/null
  printf '%s\n' "$3" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA "$dir/$4.pem" -CAkey "$dir/$4.key" -CAcreateserial \
    -CAserial "$tmp/serial" -days "$5" -extfile "$tmp/$1.ext" -out "$dir/$1.pem" 2>/dev/null
  chmod 644 "$dir/$1.pem"
}

issuer=ca
if [ -n "$intermediate" ]; then
  issuer="ca-$intermediate"
  if [ ! -f "$dir/$issuer.pem" ] || [ ! -f "$dir/$issuer.key" ]; then
    issue "$issuer" "/O=slp/CN=slp $intermediate CA" "basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign" ca 1825
    echo "made the intermediate CA: $dir/$issuer.pem"
  fi
fi

if [[ "$host" =~ ^[0-9.]+$ || "$host" == *:* ]]; then san="IP:$host"; else san="DNS:$host"; fi
issue server "/O=slp/CN=$host" "subjectAltName=$san
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature" ca 825
echo "made $dir/server.pem and $dir/server.key"

for name in "${clients[@]}"; do
  issue "$name" "/O=slp/CN=$name" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature" "$issuer" 825
  # The client presents the intermediate with its own certificate: slps trusts only the root.
  [ "$issuer" = ca ] || cat "$dir/$issuer.pem" >> "$dir/$name.pem"
  echo "made $dir/$name.pem and $dir/$name.key"
done

subject=$(openssl x509 -in "$dir/$issuer.pem" -noout -subject -nameopt compat | sed 's/^subject=//')
echo "issuer of the client certificates (slps --issuer): $subject"
