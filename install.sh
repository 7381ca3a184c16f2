#!/usr/bin/env bash
# Installs the JIT access system on this host and starts jitd with the example policy.
#
# What it changes (uninstall.sh undoes all of it; the list of installed files is kept in
# /usr/local/share/jit/installed-files):
#   - apt packages it needs: sudo dbus libpam0g-dev pkg-config (if missing)
#   - /usr/local/sbin/jitd, /usr/local/bin/jitctl, <pam libdir>/security/pam_jit.so and
#     pam_jit_bus.so (its bus client, loaded only when jitd's PAM socket is absent)
#   - man pages jitd(8) jitctl(1) pam_jit(8) jit.toml(5) under /usr/local/share/man,
#     bash and zsh completions, examples in /usr/local/share/doc/jit/examples
#   - /etc/jit/jit.toml (the example policy; an existing one is never overwritten)
#   - system groups jit-users (may request) and jit-approvers (may approve), if missing;
#     system users jit-notify and jit-fleet (the notifier and fleet agents)
#   - /usr/local/sbin/jit-fleetd and jit-fleet-init (conf/fleet-init.sh),
#     /etc/systemd/system/jit-fleetd.service; this host's fleet key in /var/lib/jitd (the
#     agent is started only where /etc/jit/fleet.toml exists)
#   - /etc/dbus-1/system.d/org.jit.Jitd.conf (bus policy),
#     /usr/local/share/dbus-1/system-services/org.jit.Jitd.service (bus activation)
#   - /etc/systemd/system/jitd.service (the hardened unit)
#   - /etc/pam.d/sudo and /etc/pam.d/sudo-i (the service of sudo -i): three marked pam_jit
#     lines each (`jitctl setup pam --enable`), last, once jitd runs
# With systemd as PID 1 it enables and starts jitd.service. Without it, it starts the system
# bus if needed and runs jitd directly (it writes /run/jitd.pid and logs to
# /var/log/jitd.log); after that the bus starts jitd again on the first request if it is
# not running. Run again, it stops the running jitd first: there is only ever one.
set -euo pipefail
cd "$(dirname "$0")"

# sudo's secure_path leaves out rustup's directory: look for cargo there as well.
command -v cargo >/dev/null || PATH="${CARGO_HOME:-$HOME/.cargo}/bin:/root/.cargo/bin:$PATH"
if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (sudo ./install.sh)" >&2
  exit 1
fi

need=()
# protobuf-compiler: the fleet agent's etcd client is generated from etcd's .proto files.
for pkg in sudo dbus libpam0g-dev pkg-config protobuf-compiler; do
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
dist="$(mktemp -d)"
trap 'rm -rf "$dist"' EXIT
"$bindir/xtask" dist "$dist" >/dev/null

secdir="$(pkg-config --variable=libdir pam)/security"
share=/usr/local/share
manifest=$share/jit/installed-files
install -d -m 0755 "$secdir" /usr/local/sbin /usr/local/bin /usr/local/libexec/jit /etc/jit \
  /etc/dbus-1/system.d \
  /etc/systemd/system $share/jit $share/dbus-1/system-services $share/doc/jit/examples \
  $share/man/man1 $share/man/man5 $share/man/man8 \
  $share/bash-completion/completions $share/zsh/site-functions
: > "$manifest.new"
put() { # put MODE SOURCE DEST: install one file and record it
  install -m "$1" "$2" "$3"
  echo "$3" >> "$manifest.new"
}
put 0755 "$bindir/jitd" /usr/local/sbin/jitd
put 0755 "$bindir/jitctl" /usr/local/bin/jitctl
put 0755 "$bindir/jit-notifyd" /usr/local/sbin/jit-notifyd
put 0644 "$bindir/libpam_jit.so" "$secdir/pam_jit.so"
# pam_jit's bus client, loaded by pam_jit from its own directory only when jitd's PAM socket
# is absent (it must be root's, and nobody else's to write).
put 0644 "$bindir/libpam_jit_bus.so" "$secdir/pam_jit_bus.so"
# The notifier programs [[notifier]] entries may name (see jit.toml(5)).
for n in conf/notifiers/jit-notify-*; do
  put 0755 "$n" "/usr/local/libexec/jit/$(basename "$n")"
done
put 0644 conf/dbus/org.jit.Jitd.conf /etc/dbus-1/system.d/org.jit.Jitd.conf
sed 's|^Exec=/usr/sbin/jitd |Exec=/usr/local/sbin/jitd |' conf/dbus/org.jit.Jitd.service > "$dist/org.jit.Jitd.service"
put 0644 "$dist/org.jit.Jitd.service" $share/dbus-1/system-services/org.jit.Jitd.service
sed 's|/usr/sbin/jitd|/usr/local/sbin/jitd|g' systemd/jitd.service > "$dist/jitd.service"
put 0644 "$dist/jitd.service" /etc/systemd/system/jitd.service
sed 's|/usr/sbin/jit-notifyd|/usr/local/sbin/jit-notifyd|g' systemd/jit-notifyd.service \
  > "$dist/jit-notifyd.service"
put 0644 "$dist/jit-notifyd.service" /etc/systemd/system/jit-notifyd.service
put 0755 "$bindir/jit-fleetd" /usr/local/sbin/jit-fleetd
sed 's|/usr/sbin/jit-fleetd|/usr/local/sbin/jit-fleetd|g' systemd/jit-fleetd.service \
  > "$dist/jit-fleetd.service"
put 0644 "$dist/jit-fleetd.service" /etc/systemd/system/jit-fleetd.service
put 0755 conf/fleet-init.sh /usr/local/sbin/jit-fleet-init
# The pages name the Debian package's paths; here they are under /usr/local and /etc.
sed -i -e 's|/usr/share/doc/jit-access/examples|/usr/local/share/doc/jit/examples|g' \
  -e 's|/usr/share/dbus-1/system.d/org.jit.Jitd.conf|/etc/dbus-1/system.d/org.jit.Jitd.conf|g' \
  -e 's|/usr/sbin/jitd|/usr/local/sbin/jitd|g' \
  -e 's|/usr/libexec/jit/|/usr/local/libexec/jit/|g' "$dist"/man/man*/*
for page in "$dist"/man/man*/*; do
  sec="$(basename "$(dirname "$page")")"
  put 0644 "$page" "$share/man/$sec/$(basename "$page")"
done
put 0644 "$dist/completions/bash/jitctl" $share/bash-completion/completions/jitctl
put 0644 "$dist/completions/zsh/_jitctl" $share/zsh/site-functions/_jitctl
for ex in conf/jit.toml conf/jit-advanced.toml systemd/jitd-groups.conf systemd/jitd-accounts.conf; do
  put 0644 "$ex" "$share/doc/jit/examples/$(basename "$ex")"
done
mv "$manifest.new" "$manifest"

for g in jit-users jit-approvers; do
  getent group "$g" >/dev/null || groupadd --system "$g"
done
# The notifier agent's user: runs [[notifier]] programs, never root.
getent passwd jit-notify >/dev/null || useradd --system --user-group --no-create-home \
  --home-dir /nonexistent --shell /usr/sbin/nologin jit-notify
# The fleet agent's user: talks to etcd, never root (used only where /etc/jit/fleet.toml is).
getent passwd jit-fleet >/dev/null || useradd --system --user-group --no-create-home \
  --home-dir /nonexistent --shell /usr/sbin/nologin jit-fleet
if [ ! -e /etc/jit/jit.toml ]; then
  install -m 0644 conf/jit.toml /etc/jit/jit.toml
  echo "install.sh: example policy installed as /etc/jit/jit.toml"
else
  echo "install.sh: keeping the existing /etc/jit/jit.toml"
fi
/usr/local/sbin/jitd --check-config --config /etc/jit/jit.toml

install -d -m 0700 /var/lib/jitd
# This host's fleet key (made once, kept): what the fleet policy lists for this host.
fleet_key="$(/usr/local/sbin/jitd --fleet-keygen)"

# The pid of whatever owns org.jit.Jitd on the system bus (empty if nothing does).
bus_owner() {
  { dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.GetConnectionUnixProcessID string:org.jit.Jitd 2>/dev/null \
    | awk '/uint32/ {print $2}'; } || true
}
# Every running jitd: the bus's owner, the pid file's, the state lock's, and any process
# running an installed jitd binary, even a deleted one (deduplicated).
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
systemd_up() { [ "$(ps -p 1 -o comm=)" = "systemd" ]; }
# start_clean LOG COMMAND...: COMMAND in the background, in a session of its own, with an
# empty environment but PATH, and no file of this shell's open but stdin (/dev/null) and
# stdout and stderr (LOG).
start_clean() {
  local log="$1"
  shift
  (
    for fd in /proc/$BASHPID/fd/*; do
      fd="${fd##*/}"
      [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null
    done
    exec setsid env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"
  ) </dev/null >>"$log" 2>&1 &
}
bus_answers() {
  dbus-send --system --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.GetId >/dev/null 2>&1
}

if [ "$(ps -p 1 -o comm=)" = "systemd" ]; then
  systemctl daemon-reload
  systemctl reload dbus 2>/dev/null || true
  systemctl enable --now jitd.service
else
  # A system bus that answers, not merely a socket file: a dbus-daemon that died leaves its
  # socket and pid file behind, and jitd cannot start on them.
  if ! bus_answers; then
    pid="$(cat /run/dbus/pid 2>/dev/null || true)"
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      rm -f /run/dbus/pid /run/dbus/system_bus_socket
    fi
    mkdir -p /run/dbus
    if command -v service >/dev/null && service dbus start </dev/null >/dev/null 2>&1; then :; else
      dbus-daemon --system --fork </dev/null >/dev/null 2>&1 || true
    fi
    for _ in $(seq 1 100); do bus_answers && break; sleep 0.1; done
    if ! bus_answers; then
      echo "install.sh: the system bus does not answer (/run/dbus/system_bus_socket); start" \
        "dbus and run install.sh again. PAM is unchanged." >&2
      exit 1
    fi
  else
    dbus-send --system --type=method_call --dest=org.freedesktop.DBus / org.freedesktop.DBus.ReloadConfig || true
  fi
  # Exactly one jitd: stop whichever runs (started by an earlier install.sh or by the bus)
  # and wait until it has gone, then start the new binary. A jitd the bus starts meanwhile
  # (a user's sudo or jitctl) runs the new binary too, with the same arguments; then ours
  # refuses to start beside it (jitd holds a lock on its state directory and never takes
  # its bus name from another), and that one serves.
  for pid in $(jitd_pids); do kill "$pid" 2>/dev/null || true; done
  for pid in $(jitd_pids); do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null && [ "$(readlink /proc/"$pid"/exe)" != /usr/local/sbin/jitd ]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  # jitd writes /run/jitd.pid itself once it owns its bus name, and logs to
  # /var/log/jitd.log (as the bus activation file has it start jitd too).
  start_clean /dev/null /usr/local/sbin/jitd --pid-file /run/jitd.pid \
    --log-file /var/log/jitd.log
fi

# Wait until jitd owns its name (without systemd: and the pid file names it, which jitd
# writes once it owns the name) before anything calls it.
up=no
for _ in $(seq 1 100); do
  owner="$(bus_owner)"
  if [ -n "$owner" ] && { systemd_up || [ "$(cat /run/jitd.pid 2>/dev/null)" = "$owner" ]; }; then
    up=yes
    break
  fi
  sleep 0.1
done
if [ "$up" = no ]; then
  echo "install.sh: jitd did not come up (PAM is unchanged); see /var/log/jitd.log (or" \
    "journalctl -u jitd):" >&2
  tail -n 5 /var/log/jitd.log >&2 2>/dev/null || true
  exit 1
fi
if [ "$(jitd_pids | wc -l)" -ne 1 ]; then
  echo "install.sh: more than one jitd runs: $(jitd_pids | tr '\n' ' ')" >&2
  exit 1
fi
# The notifier agent, once jitd serves (exactly one; it connects again on its own when jitd
# restarts).
notifyd_pids() {
  for pid in $(pgrep -x jit-notifyd 2>/dev/null || true); do
    [ "$(readlink /proc/"$pid"/ns/mnt 2>/dev/null)" = "$(readlink /proc/self/ns/mnt)" ] || continue
    case "$(readlink /proc/"$pid"/exe 2>/dev/null || true)" in
      /usr/local/sbin/jit-notifyd|"/usr/local/sbin/jit-notifyd (deleted)") echo "$pid" ;;
    esac
  done
}
if systemd_up; then
  systemctl enable jit-notifyd.service
  systemctl restart jit-notifyd.service
else
  for pid in $(notifyd_pids); do kill "$pid" 2>/dev/null || true; done
  for pid in $(notifyd_pids); do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  touch /var/log/jit-notifyd.log
  chmod 0640 /var/log/jit-notifyd.log
  # A clean start: no environment or open files of this shell's (see README, "Running jitd
  # without systemd", for starting it again by hand).
  start_clean /var/log/jit-notifyd.log runuser -u jit-notify -- /usr/local/sbin/jit-notifyd
fi
# The fleet agent, where this host is in a fleet (/etc/jit/fleet.toml, named by
# [settings] fleet in jit.toml): exactly one.
fleetd_pids() {
  for pid in $(pgrep -x jit-fleetd 2>/dev/null || true); do
    [ "$(readlink /proc/"$pid"/ns/mnt 2>/dev/null)" = "$(readlink /proc/self/ns/mnt)" ] || continue
    case "$(readlink /proc/"$pid"/exe 2>/dev/null || true)" in
      /usr/local/sbin/jit-fleetd|"/usr/local/sbin/jit-fleetd (deleted)") echo "$pid" ;;
    esac
  done
}
if [ -e /etc/jit/fleet.toml ]; then
  if systemd_up; then
    systemctl enable jit-fleetd.service
    systemctl restart jit-fleetd.service
  else
    for pid in $(fleetd_pids); do kill "$pid" 2>/dev/null || true; done
    for pid in $(fleetd_pids); do
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    done
    touch /var/log/jit-fleetd.log
    chmod 0640 /var/log/jit-fleetd.log
    start_clean /var/log/jit-fleetd.log runuser -u jit-fleet -- /usr/local/sbin/jit-fleetd \
      --fleet /etc/jit/fleet.toml
  fi
fi
# PAM last, once jitd serves: real authentication first, then pam_jit. No require_grant:
# static sudoers rules keep working, so installing this cannot lock admins out (see README,
# "zero standing privilege").
/usr/local/bin/jitctl setup pam --enable
/usr/local/bin/jitctl status
echo "install.sh: done. Add users to jit-users (request) and jit-approvers (approve)."
echo "install.sh: this host's fleet key (list it in a fleet policy to join a fleet; see"
echo "  README, Fleets): $fleet_key"
echo "install.sh: man jitctl, man jit.toml; undo everything with ./uninstall.sh"
