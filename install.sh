#!/usr/bin/env bash
# Installs the JIT access system on this host and starts jitd with the example policy.
#
# What it changes (and uninstall.sh undoes):
#   - apt packages it needs: sudo dbus libpam0g-dev pkg-config (if missing)
#   - /usr/local/sbin/jitd, /usr/local/bin/jitctl, <pam libdir>/security/pam_jit.so
#   - /etc/jit/jit.toml (the example policy; an existing one is never overwritten)
#   - system groups jit-users (may request) and jit-approvers (may approve), if missing
#   - /etc/dbus-1/system.d/org.jit.Jitd.conf (bus policy)
#   - /etc/pam.d/sudo: two pam_jit lines (backup in /etc/pam.d/sudo.jit-backup)
#   - /var/lib/jitd (state, 0700); /etc/systemd/system/jitd.service when systemd runs
# Without systemd as PID 1 it starts the system bus if needed and runs jitd directly
# (pid in /run/jitd.pid, log in /var/log/jitd.log).
set -euo pipefail
cd "$(dirname "$0")"

# sudo's secure_path leaves out rustup's directory: look for cargo there as well.
command -v cargo >/dev/null || PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/root/.cargo/bin:$PATH"
if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo ./install.sh)" >&2
  exit 1
fi

need=()
for pkg in sudo dbus libpam0g-dev pkg-config; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "install.sh: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# JIT_BIN_DIR: install already-built binaries from there (the tests use this) instead of
# building a release.
bindir="${JIT_BIN_DIR:-}"
if [ -z "$bindir" ]; then
  echo "install.sh: building (cargo build --release)"
  cargo build --release --workspace --quiet
  bindir=target/release
fi

secdir="$(pkg-config --variable=libdir pam)/security"
install -d -m 0755 "$secdir" /usr/local/sbin /usr/local/bin /etc/jit /etc/dbus-1/system.d
install -m 0755 "$bindir/jitd" /usr/local/sbin/jitd
install -m 0755 "$bindir/jitctl" /usr/local/bin/jitctl
install -m 0644 "$bindir/libpam_jit.so" "$secdir/pam_jit.so"
install -m 0644 conf/dbus/org.jit.Jitd.conf /etc/dbus-1/system.d/org.jit.Jitd.conf
for g in jit-users jit-approvers; do
  getent group "$g" >/dev/null || groupadd --system "$g"
done
if [ ! -e /etc/jit/jit.toml ]; then
  install -m 0644 conf/jit.toml /etc/jit/jit.toml
  echo "install.sh: example policy installed as /etc/jit/jit.toml"
else
  echo "install.sh: keeping the existing /etc/jit/jit.toml"
fi
/usr/local/sbin/jitd --check-config --config /etc/jit/jit.toml

# PAM: real authentication first, then pam_jit. No require_grant: static sudoers rules keep
# working, so installing this cannot lock admins out (see README, "zero standing privilege").
if ! grep -q pam_jit.so /etc/pam.d/sudo; then
  cp -p /etc/pam.d/sudo /etc/pam.d/sudo.jit-backup
  tmp="$(mktemp /etc/pam.d/.sudo.jit.XXXXXX)"
  awk '
    { print }
    /^@include common-auth/    { print "auth     optional pam_jit.so mode=sudo timeout=5 wait=120   # jit" }
    /^@include common-account/ { print "account  required pam_jit.so mode=sudo timeout=5            # jit" }
    /^@include common-session/ { print "session  optional pam_jit.so mode=sudo timeout=5            # jit" }
  ' /etc/pam.d/sudo > "$tmp"
  grep -q "^auth .*pam_jit.so" "$tmp" || { rm -f "$tmp"; echo "install.sh: /etc/pam.d/sudo has no '@include common-auth'; add the lines from conf/pam/sudo by hand" >&2; exit 1; }
  chmod 0644 "$tmp" && mv "$tmp" /etc/pam.d/sudo
  echo "install.sh: added pam_jit to /etc/pam.d/sudo (backup: /etc/pam.d/sudo.jit-backup)"
fi

install -d -m 0700 /var/lib/jitd

if [ "$(ps -p 1 -o comm=)" = "systemd" ]; then
  install -m 0644 systemd/jitd.service /etc/systemd/system/jitd.service
  systemctl daemon-reload
  systemctl reload dbus 2>/dev/null || true
  systemctl enable --now jitd.service
else
  if [ ! -S /run/dbus/system_bus_socket ]; then
    mkdir -p /run/dbus
    if command -v service >/dev/null && service dbus start </dev/null >/dev/null 2>&1; then :; else
      dbus-daemon --system --fork </dev/null >/dev/null 2>&1
    fi
  else
    dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig || true
  fi
  if [ -f /run/jitd.pid ] && kill -0 "$(cat /run/jitd.pid)" 2>/dev/null; then
    kill "$(cat /run/jitd.pid)"; sleep 0.5
  fi
  nohup /usr/local/sbin/jitd >>/var/log/jitd.log 2>&1 </dev/null &
  echo $! > /run/jitd.pid
fi

for _ in $(seq 1 50); do
  if /usr/local/bin/jitctl status >/dev/null 2>&1; then
    /usr/local/bin/jitctl status
    echo "install.sh: done. Add users to jit-users (request) and jit-approvers (approve)."
    echo "install.sh: undo everything with ./uninstall.sh"
    exit 0
  fi
  sleep 0.1
done
echo "install.sh: jitd did not come up; see /var/log/jitd.log" >&2
exit 1
