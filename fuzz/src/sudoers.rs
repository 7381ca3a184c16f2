//! The sudoers renderer: any rule made of accepted names renders a shard that sudo's own
//! parser accepts (`visudo -c`) and reads back as exactly what was meant (`cvtsudoers -f
//! json`: the user, the run-as users, the commands, the end, the tags, the I/O log
//! directory), and nothing else.

use arbitrary::{Arbitrary, Unstructured};
use jitd::names::{Command, RoleName, UserName};
use jitd::sudoers::{Rule, render, render_shard, shard_of, sudoers_time};
use serde_json::Value;
use std::io::Write;
use std::process::Command as Process;

/// A name as the fuzzer gives it: one of a few that pass the grammar at its edges, or any
/// string (so that rules which pass it are found often, and everything else is tried too).
#[derive(Arbitrary, Debug)]
enum Name {
    Pick(u8),
    Raw(String),
}

const USERS: &[&str] = &[
    "alice",
    "_",
    "a-",
    "x_1",
    "root",
    "all",
    "defaults",
    "include",
    "runas_alias",
    "nobody",
    "abcdefghijklmnopqrstuvwxyz012345",
];
const COMMANDS: &[&str] = &[
    "/usr/bin/id",
    "/usr/bin/systemctl restart nginx",
    "/a/b c d",
    "/x/+ -- /@",
    "/usr/bin/printf a.b_c+d-e/f@g",
    "/opt/app-1.2/bin/run ALL",
    "/bin/ls -la /var/log",
    "/u/v",
    "/usr/bin/env -i",
    "/bin/sh -c id",
];
const DIRS: &[&str] = &["/var/log/sudo-io/jit", "/v", "/a.b/c-d_e", "/x/y/z"];

impl Name {
    fn get(self, from: &[&str]) -> String {
        match self {
            Name::Pick(i) => from[usize::from(i) % from.len()].to_string(),
            Name::Raw(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct RawRule {
    grant_id: u64,
    user: Name,
    role: Name,
    run_as: Vec<Name>,
    commands: Vec<Name>,
    not_after: i64,
    reauth: bool,
    iolog_dir: Option<Name>,
}

/// The rule, when every name in it is accepted (the only rules jitd can build).
fn rule(raw: RawRule, grant_id: u64) -> Option<Rule> {
    Some(Rule {
        grant_id,
        user: UserName::new(raw.user.get(USERS)).ok()?,
        role: RoleName::new(raw.role.get(&["db-admin", "web"])).ok()?,
        run_as: raw
            .run_as
            .into_iter()
            .map(|n| UserName::new(n.get(USERS)))
            .collect::<Result<_, _>>()
            .ok()?,
        commands: raw
            .commands
            .into_iter()
            .map(|n| Command::new(n.get(COMMANDS)))
            .collect::<Result<_, _>>()
            .ok()?,
        not_after: raw.not_after,
        reauth: raw.reauth,
        iolog_dir: raw.iolog_dir.map(|n| n.get(DIRS)),
    })
}

/// Whether the real programs check each rendering (slow: two processes per input).
pub fn with_sudo() -> bool {
    std::env::var_os("JIT_FUZZ_SUDO").is_some_and(|v| v == "1")
}

pub fn fuzz(data: &[u8]) {
    fuzz_with(data, with_sudo());
}

pub fn fuzz_with(data: &[u8], sudo: bool) {
    let mut u = Unstructured::new(data);
    let Ok(first) = RawRule::arbitrary(&mut u) else {
        return;
    };
    let second = RawRule::arbitrary(&mut u).ok();
    let id = first.grant_id;
    let Some(first) = rule(first, id) else {
        return;
    };
    // A second rule in the same shard (another grant), sharing or not the command list.
    let second = second.and_then(|r| rule(r, id.wrapping_add(256)));
    let single = render(&first);
    let complete = !first.run_as.is_empty() && !first.commands.is_empty() && first.not_after > 0;
    let dir_ok = first
        .iolog_dir
        .as_deref()
        .is_none_or(|d| jitd::names::validate_dir_path("iolog_dir", d).is_ok());
    assert_eq!(
        single.is_ok(),
        complete && dir_ok,
        "render accepted or refused the wrong rule: {first:?} -> {single:?}"
    );
    let Ok(single) = single else {
        return;
    };
    // One comment line, an optional Defaults line, one rule line: nothing can add a line.
    let lines: Vec<&str> = single.lines().collect();
    assert_eq!(
        lines.len(),
        2 + usize::from(first.iolog_dir.is_some()),
        "{single:?}"
    );
    let mut rules = vec![first];
    if let Some(mut s) = second {
        // The I/O log directory is the policy's, the same for every rule.
        s.iolog_dir = s.iolog_dir.and(rules[0].iolog_dir.clone());
        if shard_of(s.grant_id) == shard_of(id) && render(&s).is_ok() {
            rules.push(s);
        }
    }
    let shard = render_shard(shard_of(id), &rules).expect("a shard of valid rules renders");
    if sudo {
        check_with_sudo(&shard, &rules);
    }
}

/// Renderings checked by visudo and cvtsudoers in this process (reported every 1,000).
static CHECKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// visudo accepts the shard and cvtsudoers reads back exactly the rules.
pub fn check_with_sudo(shard: &str, rules: &[Rule]) {
    let n = CHECKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    if n.is_multiple_of(1000) {
        eprintln!("sudoers: {n} renderings checked by visudo and cvtsudoers");
    }
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(shard.as_bytes()).expect("written");
    let path = file
        .path()
        .to_str()
        .expect("a UTF-8 temporary path")
        .to_string();
    let visudo = Process::new("visudo")
        .args(["-c", "-q", "-f", &path])
        .output()
        .expect("visudo runs");
    assert!(
        visudo.status.success(),
        "visudo refused:\n{shard}\n{}{}",
        String::from_utf8_lossy(&visudo.stdout),
        String::from_utf8_lossy(&visudo.stderr)
    );
    let out = Process::new("cvtsudoers")
        .args(["-f", "json", &path])
        .output()
        .expect("cvtsudoers runs");
    assert!(out.status.success(), "cvtsudoers refused:\n{shard}");
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("cvtsudoers JSON");
    let expected = expected_json(rules);
    let actual = normalised(&parsed);
    assert_eq!(
        actual, expected,
        "sudo reads the shard differently:\n{shard}"
    );
}

/// What each rule means, as (user, run-as users, commands, options, I/O log directory).
type Meaning = Vec<(String, Vec<String>, Vec<String>, Vec<Value>, Option<String>)>;

fn expected_json(rules: &[Rule]) -> Meaning {
    rules
        .iter()
        .map(|r| {
            let mut options = vec![
                serde_json::json!({ "notafter": sudoers_time(r.not_after - 1) }),
                serde_json::json!({ "authenticate": r.reauth }),
            ];
            if r.iolog_dir.is_some() {
                options.push(serde_json::json!({ "log_input": true }));
                options.push(serde_json::json!({ "log_output": true }));
            }
            (
                r.user.to_string(),
                r.run_as.iter().map(ToString::to_string).collect(),
                r.commands.iter().map(ToString::to_string).collect(),
                options,
                // A Defaults line binds the user, whichever of their rules brought it.
                rules
                    .iter()
                    .find(|o| o.user == r.user && o.iolog_dir.is_some())
                    .and_then(|o| o.iolog_dir.as_ref())
                    .map(|d| format!("{d}/{}", r.user)),
            )
        })
        .collect()
}

/// cvtsudoers' JSON as the same tuples: aliases expanded, each Defaults line given to the
/// user it binds. Anything unexpected (another kind of entry, a second host, a negation)
/// fails the comparison.
fn normalised(v: &Value) -> Meaning {
    let aliases = v.get("Command_Aliases").cloned().unwrap_or(Value::Null);
    let mut iolog: Vec<(String, String)> = Vec::new();
    for d in v
        .get("Defaults")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let user = d["Binding"][0]["username"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        assert_eq!(d["Binding"].as_array().map(Vec::len), Some(1), "{d}");
        assert_eq!(d["Options"].as_array().map(Vec::len), Some(1), "{d}");
        let dir = d["Options"][0]["iolog_dir"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        iolog.push((user, dir));
    }
    let specs = v
        .get("User_Specs")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    specs
        .iter()
        .map(|s| {
            let users = s["User_List"].as_array().cloned().unwrap_or_default();
            assert_eq!(users.len(), 1, "{s}");
            assert_eq!(
                s["Host_List"],
                serde_json::json!([{ "hostname": "ALL" }]),
                "{s}"
            );
            let cmnds = s["Cmnd_Specs"].as_array().cloned().unwrap_or_default();
            assert_eq!(cmnds.len(), 1, "{s}");
            let c = &cmnds[0];
            let user = users[0]["username"].as_str().unwrap_or("?").to_string();
            let run_as = c["runasusers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["username"].as_str().unwrap_or("?").to_string())
                .collect();
            let mut commands = Vec::new();
            for cmd in c["Commands"].as_array().into_iter().flatten() {
                assert!(cmd.get("negated").is_none(), "{cmd}");
                if let Some(name) = cmd.get("cmndalias").and_then(Value::as_str) {
                    for a in aliases[name].as_array().into_iter().flatten() {
                        commands.push(a["command"].as_str().unwrap_or("?").to_string());
                    }
                } else {
                    commands.push(cmd["command"].as_str().unwrap_or("?").to_string());
                }
            }
            let options = c["Options"].as_array().cloned().unwrap_or_default();
            let dir = iolog
                .iter()
                .find(|(u, _)| *u == user)
                .map(|(_, d)| d.clone());
            (user, run_as, commands, options, dir)
        })
        .collect()
}
