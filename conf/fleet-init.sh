#!/usr/bin/env bash
# fleet-init.sh: the etcd CA, TLS certificates and RBAC of a jit fleet.
#
# Usage:
#   fleet-init.sh certs DIR --member NAME=IP ... --host HOST ...
#       Makes what is missing in DIR (an existing CA, key or certificate is never replaced;
#       run again to add members or hosts; to renew one, remove its directory and run again):
#         DIR/ca.crt, DIR/ca.key               the fleet's CA (EC P-256)
#         DIR/members/NAME/server.{crt,key}    an etcd member's server and peer certificate
#                                              (SAN IP and DNS NAME)
#         DIR/hosts/HOST/{ca.crt,client.crt,client.key}
#                                              a host's agent: etcd user HOST (its CN)
#         DIR/admin/client.{crt,key}           the administrator: etcd user root
#       and prints the flags each etcd member needs.
#   fleet-init.sh rbac --endpoints URL[,URL...] DIR HOST...
#       With DIR's admin certificate: user root (no password) with role root; for each HOST
#       user HOST and role jit-host-HOST (read /jit/v1/, readwrite /jit/v1/HOST/); then turns
#       etcd's auth on. Safe to run again, with more hosts.
#   fleet-init.sh host-config DIR HOST --endpoints URL[,URL...]
#       Prints the [etcd] table of HOST's fleet policy, and which files to install.
#   fleet-init.sh -h
#
# Hosts and members are lower-case DNS names; no host may be named root (etcd's
# administrator) or like a member (a member's certificate is a client certificate too).
# Needs openssl (certs) and etcdctl 3.4 or later (rbac).
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() {
  echo "fleet-init.sh: $*" >&2
  exit 1
}

# Keys are made readable by their owner only; certificates are opened up one by one.
umask 077
shopt -s nullglob

CA_DAYS=3650
LEAF_DAYS=825
FLEET_DIR=/etc/jit/fleet

is_dns_name() {
  local label='[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?'
  [[ ${#1} -le 253 && $1 =~ ^$label(\.$label)*$ ]]
}

is_ip() {
  local o='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
  [[ $1 =~ ^$o\.$o\.$o\.$o$ ]] || [[ $1 == *:*:* && $1 =~ ^[0-9a-fA-F:.]+$ ]]
}

check_host() {
  is_dns_name "$1" || die "host '$1': a host name is a lower-case DNS name"
  [[ $1 != root ]] || die "host 'root': that is etcd's administrator"
}

# A TOML list of https endpoints; anything that could break out of a TOML string is refused.
endpoints_toml() {
  local list=() e out="" sep=""
  IFS=, read -ra list <<<"$1"
  [[ ${#list[@]} -gt 0 ]] || die "--endpoints: none given"
  for e in "${list[@]}"; do
    [[ $e =~ ^https://[][A-Za-z0-9.:-]+/?$ ]] || die "endpoint '$e': expected https://HOST:PORT"
    out+="$sep\"$e\""
    sep=", "
  done
  echo "[$out]"
}

new_key_and_csr() { # KEYFILE CN -> CSR on stdout
  openssl req -new -config /dev/null -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1" -subj "/CN=$2" 2>/dev/null
}

sign() { # CADIR OUT EXTENSIONS (CSR on stdin)
  openssl x509 -req -CA "$1/ca.crt" -CAkey "$1/ca.key" -sha256 -days "$LEAF_DAYS" \
    -set_serial "0x$(openssl rand -hex 16)" -extfile <(printf '%s\n' "$3") -out "$2" 2>/dev/null
  chmod 0644 "$2"
}

LEAF='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature'

# Each thing is made in a scratch directory inside DIR and renamed into place whole, so an
# interrupted run leaves nothing half made that a later run would take as done.
scratch=()
cleanup() { [[ ${#scratch[@]} -eq 0 ]] || rm -rf "${scratch[@]}"; }
trap cleanup EXIT
new_scratch() { # DIR -> $t
  t=$(mktemp -d "$1/.new.XXXXXX")
  scratch+=("$t")
}

cmd_certs() {
  local dir="" members=() hosts=()
  while [[ $# -gt 0 ]]; do
    case $1 in
      --member) [[ $# -ge 2 ]] || die "--member needs NAME=IP"; members+=("$2"); shift 2 ;;
      --host) [[ $# -ge 2 ]] || die "--host needs HOST"; hosts+=("$2"); shift 2 ;;
      -*) die "certs: unknown option $1" ;;
      *) [[ -z $dir ]] || die "certs: one DIR only"; dir=$1; shift ;;
    esac
  done
  [[ -n $dir ]] || die "certs: DIR is missing (see -h)"

  # Everything is checked before anything is made.
  local m name ip h names=()
  for m in "${members[@]}"; do
    [[ $m == *=* ]] || die "--member '$m': expected NAME=IP"
    name=${m%%=*} ip=${m#*=}
    is_dns_name "$name" || die "member '$name': a member name is a lower-case DNS name"
    [[ $name != root ]] || die "member 'root': that is etcd's administrator"
    is_ip "$ip" || die "member '$name': '$ip' is not an IP address"
    names+=("$name")
  done
  for h in "${hosts[@]}"; do check_host "$h"; done
  for h in "${hosts[@]}" "$dir"/hosts/*/; do
    h=$(basename "$h")
    for name in "${names[@]}" "$dir"/members/*/; do
      [[ $h != "$(basename "$name")" ]] || die "'$h' is both a host and a member"
    done
  done
  for m in "${members[@]}"; do
    name=${m%%=*} ip=${m#*=}
    local crt="$dir/members/$name/server.crt"
    if [[ -f $crt ]] && ! openssl x509 -in "$crt" -noout -ext subjectAltName | grep -qw "IP Address:$ip"; then
      die "member '$name' exists with another IP (remove $dir/members/$name to reissue it)"
    fi
  done
  if [[ -e $dir/ca.key || -e $dir/ca.crt ]] && ! [[ -f $dir/ca.key && -f $dir/ca.crt ]]; then
    die "$dir has one of ca.crt and ca.key without the other: refusing to replace either"
  fi

  mkdir -p "$dir/members" "$dir/hosts"
  if [[ ! -f $dir/ca.key ]]; then
    local t
    new_scratch "$dir"
    openssl req -x509 -new -config /dev/null -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -sha256 -days "$CA_DAYS" -subj "/CN=jit fleet etcd CA" -keyout "$t/ca.key" -out "$t/ca.crt" \
      -addext basicConstraints=critical,CA:TRUE,pathlen:0 \
      -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    chmod 0644 "$t/ca.crt"
    # The key lands first: a run that stops between the two renames is refused, not re-keyed.
    mv "$t/ca.key" "$dir/ca.key"
    mv "$t/ca.crt" "$dir/ca.crt"
    echo "made $dir/ca.crt"
  fi

  # issue PLACE CN EXTENSIONS BASENAME [with-ca]
  issue() {
    [[ ! -e $1 ]] || return 0
    local t
    new_scratch "$dir"
    new_key_and_csr "$t/$4.key" "$2" | sign "$dir" "$t/$4.crt" "$LEAF
$3"
    [[ -z ${5:-} ]] || install -m 0644 "$dir/ca.crt" "$t/ca.crt"
    mv -T "$t" "$1"
    echo "made $1"
  }
  for m in "${members[@]}"; do
    name=${m%%=*} ip=${m#*=}
    issue "$dir/members/$name" "$name" "extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:$ip,DNS:$name" server
  done
  issue "$dir/admin" root "extendedKeyUsage=clientAuth" client
  for h in "${hosts[@]}"; do
    issue "$dir/hosts/$h" "$h" "extendedKeyUsage=clientAuth" client with-ca
  done

  local abs
  abs=$(cd "$dir" && pwd)
  echo
  echo "etcd member flags (client and peer TLS; add --name, --listen-*, --advertise-*, --initial-cluster):"
  for m in "$abs"/members/*/; do
    m=${m%/}
    echo "$(basename "$m"): --client-cert-auth --trusted-ca-file=$abs/ca.crt" \
      "--cert-file=$m/server.crt --key-file=$m/server.key" \
      "--peer-client-cert-auth --peer-trusted-ca-file=$abs/ca.crt" \
      "--peer-cert-file=$m/server.crt --peer-key-file=$m/server.key"
  done
}

cmd_rbac() {
  local endpoints="" dir="" hosts=() h
  while [[ $# -gt 0 ]]; do
    case $1 in
      --endpoints) [[ $# -ge 2 ]] || die "--endpoints needs URL[,URL...]"; endpoints=$2; shift 2 ;;
      -*) die "rbac: unknown option $1" ;;
      *) if [[ -z $dir ]]; then dir=$1; else hosts+=("$1"); fi; shift ;;
    esac
  done
  [[ -n $endpoints ]] || die "rbac: --endpoints is missing"
  [[ -n $dir ]] || die "rbac: DIR is missing"
  [[ ${#hosts[@]} -gt 0 ]] || die "rbac: no HOST given"
  for h in "${hosts[@]}"; do check_host "$h"; done
  local f
  for f in ca.crt admin/client.crt admin/client.key; do
    [[ -f $dir/$f ]] || die "$dir/$f is missing (run certs first)"
  done

  # etcdctl refuses a flag also set in its environment, and a user or password from there
  # would override the certificate.
  unset "${!ETCDCTL_@}"
  ctl() {
    ETCDCTL_API=3 etcdctl --endpoints="$endpoints" --cacert="$dir/ca.crt" \
      --cert="$dir/admin/client.crt" --key="$dir/admin/client.key" "$@"
  }
  local users roles
  users=$(ctl user list)
  roles=$(ctl role list)
  # Its certificate (CN=root) is how the administrator is known: a password would only be
  # one more way in.
  grep -qx root <<<"$users" || ctl user add root --no-password >/dev/null
  ctl user grant-role root root >/dev/null
  for h in "${hosts[@]}"; do
    grep -qxF "$h" <<<"$users" || ctl user add "$h" --no-password >/dev/null
    grep -qxF "jit-host-$h" <<<"$roles" || ctl role add "jit-host-$h" >/dev/null
    ctl role grant-permission --prefix=true "jit-host-$h" read /jit/v1/ >/dev/null
    ctl role grant-permission --prefix=true "jit-host-$h" readwrite "/jit/v1/$h/" >/dev/null
    ctl user grant-role "$h" "jit-host-$h" >/dev/null
    echo "host $h: user $h, role jit-host-$h"
  done
  ctl auth enable >/dev/null
  echo "auth enabled"
}

cmd_host_config() {
  local endpoints="" dir="" host=""
  while [[ $# -gt 0 ]]; do
    case $1 in
      --endpoints) [[ $# -ge 2 ]] || die "--endpoints needs URL[,URL...]"; endpoints=$2; shift 2 ;;
      -*) die "host-config: unknown option $1" ;;
      *)
        if [[ -z $dir ]]; then dir=$1
        elif [[ -z $host ]]; then host=$1
        else die "host-config: one HOST only"; fi
        shift ;;
    esac
  done
  [[ -n $dir && -n $host ]] || die "host-config: DIR and HOST are needed"
  [[ -n $endpoints ]] || die "host-config: --endpoints is missing"
  check_host "$host"
  local from="$dir/hosts/$host"
  [[ -f $from/client.key ]] || die "$from is missing (run certs --host $host first)"
  from=$(cd "$from" && pwd)
  local list
  list=$(endpoints_toml "$endpoints")
  cat <<EOF
# Host $host: install $from/{ca.crt,client.crt,client.key} as
# $FLEET_DIR/{ca.crt,client.crt,client.key}, owned by jit-fleet, client.key mode 0600:
#   install -d -o jit-fleet -g jit-fleet -m 0700 $FLEET_DIR
#   install -o jit-fleet -g jit-fleet -m 0644 $from/ca.crt $from/client.crt $FLEET_DIR/
#   install -o jit-fleet -g jit-fleet -m 0600 $from/client.key $FLEET_DIR/
[etcd]
endpoints = $list
ca = "$FLEET_DIR/ca.crt"
cert = "$FLEET_DIR/client.crt"
key = "$FLEET_DIR/client.key"
EOF
}

for arg in "$@"; do
  [[ $arg != -h && $arg != --help ]] || { usage; exit 0; }
done
case ${1:-} in
  certs) shift; cmd_certs "$@" ;;
  rbac) shift; cmd_rbac "$@" ;;
  host-config) shift; cmd_host_config "$@" ;;
  *) usage >&2; exit 2 ;;
esac
