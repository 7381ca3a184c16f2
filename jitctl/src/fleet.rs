//! jitctl's fleet verbs: `request ROLE --hosts ...`, `approve ID` (signed with the
//! approver's own SSH key through ssh-agent, by `ssh-keygen -Y sign`), `show ID`,
//! `list --fleet`, `revoke ID` and `release ID`. A fleet request's id names the host that
//! took it (`db1-3fa29c01d2`); a local request's id is a number.

use super::{Failure, Out, esc, exit, format_duration, format_rfc3339, print_json};
use jit_proto::User1Proxy;
use jit_proto::fleet::{APPROVAL_NAMESPACE, Approval, Canonical, FleetView, Signed};
use std::io::Write;
use std::process::{Command, Stdio};

/// What an ID on the command line names.
pub enum Target {
    Local(u64),
    Fleet(String),
}

impl Target {
    pub fn parse(id: &str) -> Result<Target, Failure> {
        if let Ok(n) = id.parse::<u64>() {
            return Ok(Target::Local(n));
        }
        if jit_proto::fleet::plain(id) {
            return Ok(Target::Fleet(id.to_string()));
        }
        Err(Failure::new(
            exit::USAGE,
            format!(
                "'{}' is neither a request number nor a fleet request id",
                esc(id)
            ),
        ))
    }
}

fn view(json: &str) -> Result<FleetView, Failure> {
    serde_json::from_str(json)
        .map_err(|e| Failure::new(exit::ERROR, format!("jitd's answer could not be read: {e}")))
}

/// `jitctl request ROLE --hosts ...`: made and signed by this host's jitd, then published
/// by the fleet agent; waits (briefly) to say it reached etcd.
pub async fn request(
    p: &User1Proxy<'_>,
    role: &str,
    hosts: &[String],
    secs: u64,
    reason: &str,
    json: bool,
) -> Out {
    let id = p.fleet_request(role, hosts, secs, reason).await?;
    let v = until_published(p, &id).await?;
    if json {
        print_json(&v)?;
    } else {
        let r = &v.request.record;
        out!(
            "fleet request {}: {} on {} for {}, {} approval(s) needed",
            r.id,
            r.role,
            r.hosts.join(", "),
            format_duration(r.duration_secs),
            v.approvals_required
        );
    }
    if !v.published {
        return Err(not_yet_published(&format!("fleet request {id}")));
    }
    if !json {
        out!("published to the fleet; approvers: jitctl approve {id} (on any host)");
    }
    Ok(())
}

/// A short pause between polls (jitctl's calls are blocking-on-async; a thread sleep is
/// enough here).
fn tokio_free_sleep(d: std::time::Duration) {
    std::thread::sleep(d);
}

/// `jitctl show ID` for a fleet request.
pub async fn show(p: &User1Proxy<'_>, id: &str, json: bool) -> Out {
    let v = view(&p.fleet_show(id).await?)?;
    if json {
        return print_json(&v);
    }
    let r = &v.request.record;
    out!("fleet request {}", esc(&r.id));
    out!("  user:       {}", esc(&r.user));
    out!("  role:       {}", esc(&r.role));
    out!("  hosts:      {}", esc(&r.hosts.join(", ")));
    out!("  duration:   {}", format_duration(r.duration_secs));
    out!("  reason:     {}", esc(&r.reason));
    out!(
        "  made:       {} on {}",
        format_rfc3339(r.created_at),
        esc(&r.host)
    );
    out!(
        "  signature:  {}",
        if v.signed {
            "host key verifies"
        } else {
            "DOES NOT VERIFY (no host here will enforce it)"
        }
    );
    out!(
        "  approvals:  {} of {}{}",
        v.approved_by.len(),
        v.approvals_required,
        if v.approved_by.is_empty() {
            String::new()
        } else {
            format!(" ({})", esc(&v.approved_by.join(", ")))
        }
    );
    if !v.ended_by.is_empty() {
        out!("  ended by:   {}", esc(&v.ended_by.join(", ")));
    }
    if !v.published {
        out!("  published:  not yet (waiting in this host's outbox)");
    }
    for h in &r.hosts {
        match v.ack_of(h) {
            Some(a) => out!(
                "  {:<20} {}{}{}",
                esc(h),
                esc(&a.outcome),
                if a.not_after > 0 && a.outcome != "ended" {
                    format!(" until {}", format_rfc3339(a.not_after))
                } else {
                    String::new()
                },
                if a.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", esc(&a.reason))
                }
            ),
            None => out!("  {:<20} (no answer yet)", esc(h)),
        }
    }
    Ok(())
}

/// Fleet request `id` once this host's agent has put into etcd what was made here for it
/// (the request, an approval, an end), or as it stands after 15 s.
async fn until_published(p: &User1Proxy<'_>, id: &str) -> Result<FleetView, Failure> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let v = view(&p.fleet_show(id).await?)?;
        if (v.published && v.queued == 0) || std::time::Instant::now() >= deadline {
            return Ok(v);
        }
        tokio_free_sleep(std::time::Duration::from_millis(200));
    }
}

/// Says so when `what` (made here just now) is still in this host's outbox.
fn not_yet_published(what: &str) -> Failure {
    Failure::new(
        exit::ERROR,
        format!(
            "{what} is queued on this host but not yet in etcd: the fleet agent (jit-fleetd) has not published it; it will when it reaches etcd again"
        ),
    )
}

/// `jitctl list --fleet`.
pub async fn list(p: &User1Proxy<'_>, json: bool) -> Out {
    let all: Vec<FleetView> = serde_json::from_str(&p.fleet_list().await?)
        .map_err(|e| Failure::new(exit::ERROR, format!("jitd's answer could not be read: {e}")))?;
    if json {
        return print_json(&all);
    }
    if all.is_empty() {
        out!("no fleet requests");
        return Ok(());
    }
    out!(
        "{:<22} {:<12} {:<14} {:<9} {:<10} HOSTS (applied/named)",
        "ID",
        "USER",
        "ROLE",
        "DURATION",
        "APPROVALS"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    for v in &all {
        let r = &v.request.record;
        let applied = r
            .hosts
            .iter()
            .filter(|h| {
                v.ack_of(h)
                    .is_some_and(|a| a.outcome == "applied" || a.outcome == "unchanged")
            })
            .count();
        let state = if !v.signed {
            "DOES NOT VERIFY".to_string()
        } else if !v.ended_by.is_empty() {
            "ended".to_string()
        } else if !v.open
            && v.approved_by.len() < usize::try_from(v.approvals_required).unwrap_or(0)
        {
            "lapsed".to_string()
        } else if v.acks.iter().any(|a| a.not_after > 0)
            && v.acks.iter().all(|a| a.not_after <= now)
        {
            // Applied, and over everywhere it said when it ends.
            "expired".to_string()
        } else {
            format!("{}/{}", applied, r.hosts.len())
        };
        out!(
            "{:<22} {:<12} {:<14} {:<9} {:<10} {}",
            esc(&r.id),
            esc(&r.user),
            esc(&r.role),
            format_duration(r.duration_secs),
            format!("{}/{}", v.approved_by.len(), v.approvals_required),
            state
        );
    }
    Ok(())
}

/// `jitctl revoke ID` / `release ID` for a fleet request: ends it on every host.
pub async fn end(p: &User1Proxy<'_>, id: &str, reason: &str, json: bool) -> Out {
    p.fleet_end(id, reason).await?;
    let v = until_published(p, id).await?;
    if json {
        return print_json(&v);
    }
    if v.queued > 0 {
        return Err(not_yet_published(&format!(
            "the end of fleet request {} (it has ended here)",
            esc(id)
        )));
    }
    out!(
        "fleet request {}: ended here; the end goes to every host through the fleet",
        esc(id)
    );
    Ok(())
}

/// `jitctl approve ID` for a fleet request: the approval is signed by the approver's own
/// key, held by ssh-agent, so every host can check it was really them.
pub async fn approve(p: &User1Proxy<'_>, id: &str, json: bool) -> Out {
    let v = view(&p.fleet_show(id).await?)?;
    let r = &v.request.record;
    if v.your_keys.is_empty() {
        return Err(Failure::new(
            exit::REFUSED,
            format!(
                "you are not an approver of fleet role '{}' in the fleet policy (or this is your own request)",
                esc(&r.role)
            ),
        )
        .named("not_authorized"));
    }
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .ok_or_else(|| Failure::new(exit::ERROR, "who you are could not be read"))?;
    if !json {
        eprintln!(
            "jitctl: approving fleet request {}: {} wants {} on {} for {} because: {} (made on {})",
            esc(&r.id),
            esc(&r.user),
            esc(&r.role),
            esc(&r.hosts.join(", ")),
            format_duration(r.duration_secs),
            esc(&r.reason),
            esc(&r.host)
        );
    }
    let key = agent_key(&v.your_keys, &me)?;
    let record = Approval {
        request_id: r.id.clone(),
        // Computed here from the record itself: what the approver signs is what they saw.
        request_digest: r.digest(),
        approver: me,
        approved_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    };
    let signature = sign_with_agent(&key, &record.canonical())?;
    let signed = Signed { record, signature };
    let text =
        serde_json::to_string(&signed).map_err(|e| Failure::new(exit::ERROR, e.to_string()))?;
    p.fleet_approve(id, &text).await?;
    let v = until_published(p, id).await?;
    if json {
        return print_json(&v);
    }
    if v.queued > 0 {
        return Err(not_yet_published(&format!(
            "your approval of fleet request {}",
            esc(id)
        )));
    }
    let shown: Vec<&str> = key.split_whitespace().take(1).collect();
    out!(
        "approved fleet request {} (signed with your {} key through ssh-agent); {} of {} approval(s)",
        esc(id),
        shown.join(""),
        v.approved_by.len().max(1),
        v.approvals_required
    );
    Ok(())
}

/// The key in the user's ssh-agent that the fleet policy lists for them.
fn agent_key(listed: &[String], me: &str) -> Result<String, Failure> {
    if std::env::var_os("SSH_AUTH_SOCK").is_none_or(|s| s.is_empty()) {
        return Err(Failure::new(
            exit::ERROR,
            "no ssh-agent (SSH_AUTH_SOCK is not set): a fleet approval is signed with your SSH key through ssh-agent (`ssh -A`, or `eval $(ssh-agent); ssh-add`)",
        )
        .named("no_agent"));
    }
    let out = Command::new("ssh-add")
        .arg("-L")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::new(exit::ERROR, format!("running ssh-add: {e}")))?;
    // 1: an agent with no keys (said below); anything else: no agent to ask.
    if !out.status.success() && out.status.code() != Some(1) {
        return Err(Failure::new(
            exit::ERROR,
            format!(
                "cannot use your ssh-agent (SSH_AUTH_SOCK={}): {}",
                esc(&std::env::var("SSH_AUTH_SOCK").unwrap_or_default()),
                esc(String::from_utf8_lossy(&out.stderr).trim())
            ),
        )
        .named("no_agent"));
    }
    let held = String::from_utf8_lossy(&out.stdout);
    let body = |line: &str| -> Option<(String, String)> {
        let mut w = line.split_whitespace();
        Some((w.next()?.to_string(), w.next()?.to_string()))
    };
    let wanted: Vec<(String, String)> = listed.iter().filter_map(|l| body(l)).collect();
    held.lines()
        .find(|l| body(l).is_some_and(|b| wanted.contains(&b)))
        .map(str::to_string)
        .ok_or_else(|| {
            Failure::new(
                exit::REFUSED,
                format!(
                    "none of the keys in your ssh-agent is one the fleet policy lists for {me} (it lists {} key(s): {})",
                    listed.len(),
                    listed
                        .iter()
                        .map(|l| esc(&l.split_whitespace().take(3).collect::<Vec<_>>().join(" ")))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            )
            .named("no_key")
        })
}

/// An SSHSIG signature (namespace `jit-approval`) of `message` by the agent's `key`,
/// through `ssh-keygen -Y sign` given the public key (it then asks the agent).
fn sign_with_agent(key: &str, message: &[u8]) -> Result<String, Failure> {
    let fail = |m: String| Failure::new(exit::ERROR, m);
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|d| std::path::Path::new(d).is_dir())
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    let dir = nix::unistd::mkdtemp(&base.join("jitctl-sign-XXXXXX"))
        .map_err(|e| fail(format!("a private directory for the key: {e}")))?;
    let pubfile = dir.join("key.pub");
    let signed = (|| {
        std::fs::write(&pubfile, format!("{key}\n"))
            .map_err(|e| fail(format!("writing {}: {e}", pubfile.display())))?;
        let mut child = Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", APPROVAL_NAMESPACE, "-f"])
            .arg(&pubfile)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("running ssh-keygen: {e}")))?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(message)
                .map_err(|e| fail(format!("ssh-keygen: {e}")))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| fail(format!("ssh-keygen: {e}")))?;
        let sig = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() || !sig.contains("BEGIN SSH SIGNATURE") {
            return Err(fail(format!(
                "ssh-agent did not sign the approval: {}",
                esc(String::from_utf8_lossy(&out.stderr).trim())
            )));
        }
        Ok(sig)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    signed
}
