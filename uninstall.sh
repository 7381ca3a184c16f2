#!/usr/bin/env bash
# Removes what install.sh put in place and restores /etc/pam.d/sudo.
# Keeps /etc/jit and /var/lib/jitd (the policy and the audit trail) unless --purge is given.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "uninstall.sh: run as root" >&2
  exit 1
fi
purge=no
[ "${1:-}" = "--purge" ] && purge=yes

if [ "$(ps -p 1 -o comm=)" = "systemd" ] && [ -f /etc/systemd/system/jitd.service ]; then
  systemctl disable --now jitd.service || true
  rm -f /etc/systemd/system/jitd.service
  systemctl daemon-reload
elif [ -f /run/jitd.pid ]; then
  kill "$(cat /run/jitd.pid)" 2>/dev/null || true
  rm -f /run/jitd.pid
fi

if grep -q pam_jit.so /etc/pam.d/sudo; then
  tmp="$(mktemp /etc/pam.d/.sudo.jit.XXXXXX)"
  grep -v 'pam_jit\.so' /etc/pam.d/sudo > "$tmp"
  chmod 0644 "$tmp" && mv "$tmp" /etc/pam.d/sudo
  rm -f /etc/pam.d/sudo.jit-backup
  echo "uninstall.sh: removed pam_jit from /etc/pam.d/sudo"
fi
# Ephemeral rules: remove every file jitd owns (the shards jit-s00..jit-s0f).
find /etc/sudoers.d -maxdepth 1 -type f -regextype posix-extended -regex '.*/jit-s[0-9a-f]{2}' -delete
secdir="$(pkg-config --variable=libdir pam 2>/dev/null || echo /usr/lib/x86_64-linux-gnu)/security"
rm -f /usr/local/sbin/jitd /usr/local/bin/jitctl "$secdir/pam_jit.so" /etc/dbus-1/system.d/org.jit.Jitd.conf
if [ "$purge" = yes ]; then
  rm -rf /etc/jit /var/lib/jitd
  for g in jit-users jit-approvers; do getent group "$g" >/dev/null && groupdel "$g"; done
fi
echo "uninstall.sh: done"
