#!/usr/bin/env bash
# Removes what install.sh put in place (the files listed in
# /usr/local/share/jit/installed-files) and takes pam_jit's lines out of /etc/pam.d.
# Keeps /etc/jit and /var/lib/jitd (the policy and the audit trail) unless --purge is given.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "uninstall.sh: run as root" >&2
  exit 1
fi
purge=no
[ "${1:-}" = "--purge" ] && purge=yes
manifest=/usr/local/share/jit/installed-files

# PAM first, while jitctl is still there: exactly the lines `setup pam --enable` added.
if [ -x /usr/local/bin/jitctl ]; then
  /usr/local/bin/jitctl setup pam --disable
fi

# Stop jitd: the unit under systemd; otherwise whichever process owns org.jit.Jitd on the
# system bus (started by install.sh or by bus activation), by the pid the bus reports, the
# pid file and the state lock name.
if [ "$(ps -p 1 -o comm=)" = "systemd" ] && [ -f /etc/systemd/system/jitd.service ]; then
  systemctl disable --now jitd.service || true
else
  owner="$(dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.GetConnectionUnixProcessID string:org.jit.Jitd 2>/dev/null \
    | awk '/uint32/ {print $2}')" || true
  pidfile="$(cat /run/jitd.pid /var/lib/jitd/jitd.lock 2>/dev/null)" || true
  for pid in $owner $pidfile; do
    if [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "jitd" ]; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
  done
  rm -f /run/jitd.pid
fi

# Ephemeral rules: remove every file jitd owns (the shards jit-s00..jit-s0f).
find /etc/sudoers.d -maxdepth 1 -type f -regextype posix-extended -regex '.*/jit-s[0-9a-f]{2}' -delete
if [ -f "$manifest" ]; then
  while IFS= read -r f; do rm -f -- "$f"; done < "$manifest"
  rm -f "$manifest"
  rmdir --ignore-fail-on-non-empty /usr/local/share/jit /usr/local/share/doc/jit/examples \
    /usr/local/share/doc/jit 2>/dev/null || true
fi
if [ "$(ps -p 1 -o comm=)" = "systemd" ]; then
  systemctl daemon-reload
  systemctl reload dbus 2>/dev/null || true
elif [ -S /run/dbus/system_bus_socket ]; then
  dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig 2>/dev/null || true
fi
if [ "$purge" = yes ]; then
  rm -rf /etc/jit /var/lib/jitd
  for g in jit-users jit-approvers; do getent group "$g" >/dev/null && groupdel "$g"; done
fi
echo "uninstall.sh: done"
