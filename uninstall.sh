#!/usr/bin/env bash
# Removes what install.sh put in place (the files listed in
# /usr/local/share/jit/installed-files) and takes pam_jit's lines out of /etc/pam.d.
# Keeps /etc/jit, /var/lib/jitd and /var/log/jitd.log (the policy, the audit trail and the
# daemon's log) unless --purge is given.
#
# Order matters: first every active grant is revoked (its rule removed, its sessions
# ended: no root shell outlives the product), then the bus loses the means to start jitd
# (activation file, bus policy), then every jitd is stopped and waited for, so none can be
# started again behind our back and none is left running a deleted binary.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "uninstall.sh: run as root" >&2
  exit 1
fi
purge=no
case "${1:-}" in
  "") ;;
  --purge) purge=yes ;;
  -h|--help)
    sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
    echo "usage: uninstall.sh [--purge]"
    exit 0 ;;
  *) echo "uninstall.sh: unknown argument '$1' (usage: uninstall.sh [--purge])" >&2; exit 2 ;;
esac
manifest=/usr/local/share/jit/installed-files
jitctl=/usr/local/bin/jitctl

# The pid of whatever owns org.jit.Jitd on the system bus (empty if nothing does).
bus_owner() {
  { dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.GetConnectionUnixProcessID string:org.jit.Jitd 2>/dev/null \
    | awk '/uint32/ {print $2}'; } || true
}
# Every running jitd: the bus's owner, the pid file's, the state lock's, and any process
# running an installed jitd binary (deduplicated).
jitd_pids() {
  for pid in $(bus_owner) $(cat /run/jitd.pid /var/lib/jitd/jitd.lock 2>/dev/null || true) \
      $(pgrep -x jitd 2>/dev/null || true); do
    # Only this mount namespace's (a container's host may run its own jitd).
    [ "$(readlink /proc/"$pid"/ns/mnt 2>/dev/null)" = "$(readlink /proc/self/ns/mnt)" ] || continue
    case "$(readlink /proc/"$pid"/exe 2>/dev/null || true)" in
      /usr/local/sbin/jitd|"/usr/local/sbin/jitd (deleted)") echo "$pid" ;;
    esac
  done | sort -u
}

# Active grants end now, with their sessions, while jitd and jitctl are still here.
if [ -x "$jitctl" ] && [ -n "$(bus_owner)" ]; then
  # root sees every request; the active ones read "request 17: ...: active until ...".
  for id in $("$jitctl" list 2>/dev/null \
      | awk '$1 == "request" && / active until / { id = $2; sub(":$", "", id); print id }' \
      || true); do
    "$jitctl" revoke "$id" --reason "jit is being uninstalled" >/dev/null 2>&1 || true
  done
fi

# PAM next, while jitctl is still there: exactly the lines `setup pam --enable` added.
if [ -x "$jitctl" ]; then
  "$jitctl" setup pam --disable
fi

# The bus may no longer start jitd or hand it its name.
rm -f /usr/local/share/dbus-1/system-services/org.jit.Jitd.service \
  /etc/dbus-1/system.d/org.jit.Jitd.conf
if [ "$(ps -p 1 -o comm=)" = "systemd" ]; then
  systemctl reload dbus 2>/dev/null || true
elif [ -S /run/dbus/system_bus_socket ]; then
  dbus-send --system --type=method_call --dest=org.freedesktop.DBus / \
    org.freedesktop.DBus.ReloadConfig 2>/dev/null || true
fi

# Stop jitd: the unit under systemd; then, whatever runs (started by install.sh or by bus
# activation), by pid, until none is left.
if [ "$(ps -p 1 -o comm=)" = "systemd" ] && [ -f /etc/systemd/system/jitd.service ]; then
  systemctl disable --now jitd.service || true
fi
for _ in 1 2 3; do
  pids="$(jitd_pids)"
  [ -n "$pids" ] || break
  for pid in $pids; do kill "$pid" 2>/dev/null || true; done
  for pid in $pids; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
done
if [ -n "$(jitd_pids)" ]; then
  echo "uninstall.sh: jitd (pid $(jitd_pids | tr '\n' ' ')) is still running" >&2
fi
# The notifier agent: the unit, then whatever runs the installed binary.
if [ "$(ps -p 1 -o comm=)" = "systemd" ] && [ -f /etc/systemd/system/jit-notifyd.service ]; then
  systemctl disable --now jit-notifyd.service || true
fi
if [ "$(ps -p 1 -o comm=)" = "systemd" ] && [ -f /etc/systemd/system/jit-fleetd.service ]; then
  systemctl disable --now jit-fleetd.service || true
fi
for pid in $(pgrep -x jit-notifyd 2>/dev/null || true) $(pgrep -x jit-fleetd 2>/dev/null || true); do
  [ "$(readlink /proc/"$pid"/ns/mnt 2>/dev/null)" = "$(readlink /proc/self/ns/mnt)" ] || continue
  case "$(readlink /proc/"$pid"/exe 2>/dev/null || true)" in
    /usr/local/sbin/jit-notifyd|"/usr/local/sbin/jit-notifyd (deleted)"|/usr/local/sbin/jit-fleetd|"/usr/local/sbin/jit-fleetd (deleted)")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$pid" 2>/dev/null || true ;;
  esac
done
rm -f /run/jitd.pid /run/jitd/pam.socket
rmdir /run/jitd 2>/dev/null || true

# Ephemeral rules: remove every file jitd owns (the shards jit-s00..jit-s0f).
find /etc/sudoers.d -maxdepth 1 -type f -regextype posix-extended -regex '.*/jit-s[0-9a-f]{2}' -delete
if [ -f "$manifest" ]; then
  while IFS= read -r f; do rm -f -- "$f"; done < "$manifest"
  rm -f "$manifest"
  rmdir --ignore-fail-on-non-empty /usr/local/share/jit /usr/local/share/doc/jit/examples \
    /usr/local/share/doc/jit /usr/local/libexec/jit 2>/dev/null || true
fi
if [ "$(ps -p 1 -o comm=)" = "systemd" ]; then
  systemctl daemon-reload
fi
if [ "$purge" = yes ]; then
  rm -rf /etc/jit /var/lib/jitd
  rm -f /var/log/jitd.log /var/log/jit-notifyd.log /var/log/jit-fleetd.log
  if getent passwd jit-notify >/dev/null; then
    # A notifier program may still run (in a process group of its own): it goes first.
    pkill -KILL -u jit-notify 2>/dev/null || true
    for _ in $(seq 1 50); do pgrep -u jit-notify >/dev/null || break; sleep 0.1; done
    userdel jit-notify || echo "uninstall.sh: could not remove the user jit-notify" >&2
  fi
  if getent passwd jit-fleet >/dev/null; then
    pkill -KILL -u jit-fleet 2>/dev/null || true
    for _ in $(seq 1 50); do pgrep -u jit-fleet >/dev/null || break; sleep 0.1; done
    userdel jit-fleet || echo "uninstall.sh: could not remove the user jit-fleet" >&2
  fi
  for g in jit-users jit-approvers jit-notify jit-fleet; do
    if getent group "$g" >/dev/null; then groupdel "$g"; fi
  done
fi
echo "uninstall.sh: done"
