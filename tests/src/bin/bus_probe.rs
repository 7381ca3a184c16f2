//! A tiny D-Bus client for negative tests, run as an unprivileged test user:
//! `bus_probe own ADDRESS NAME` tries to own a name; `bus_probe pam-check ADDRESS USER`
//! calls jitd's root-only PAM interface (`pam-all ADDRESS USER`: every method of it);
//! `bus_probe vanish ADDRESS ID` sends
//! `User1.Revoke(ID)` and exits without waiting for the answer (polkit's CVE-2021-3560:
//! a caller gone before the service asks who it was). Exit 0: it worked; 3: refused; 1:
//! other error.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(cmd), Some(addr), Some(arg)) = (args.get(1), args.get(2), args.get(3)) else {
        eprintln!("usage: bus_probe own|pam-check ADDRESS NAME|USER");
        return ExitCode::from(2);
    };
    let result: Result<String, String> = zbus::block_on(async {
        let conn = zbus::connection::Builder::address(addr.as_str())
            .method_timeout(std::time::Duration::from_secs(5))
            .build()
            .await
            .map_err(|e| format!("connect: {e}"))?;
        match cmd.as_str() {
            "own" => conn
                .request_name(arg.as_str())
                .await
                .map(|()| "owned".to_string())
                .map_err(|e| e.to_string()),
            "pam-check" => {
                let p = jit_proto::pam1(&conn).await.map_err(|e| e.to_string())?;
                p.check(arg, false)
                    .await
                    .map(|c| format!("{c:?}"))
                    .map_err(|e| format!("{e:?}"))
            }
            "pam-all" => {
                // Every method of the PAM interface: each must be refused (the caller is
                // not root). Answered ones are listed, and make this an error.
                let p = jit_proto::pam1(&conn).await.map_err(|e| e.to_string())?;
                let origin = jit_proto::PamOrigin {
                    service: "sudo".into(),
                    tty: String::new(),
                    rhost: String::new(),
                };
                let outcomes: Vec<(&str, Result<(), String>)> = vec![
                    (
                        "Check",
                        p.check(arg, false)
                            .await
                            .map(drop)
                            .map_err(|e| format!("{e:?}")),
                    ),
                    (
                        "Roles",
                        p.roles(arg).await.map(drop).map_err(|e| format!("{e:?}")),
                    ),
                    (
                        "Request",
                        p.request(&jit_proto::PamRequest {
                            user: arg.clone(),
                            role: "ident".into(),
                            duration_secs: 60,
                            reason: "T-1 probe".into(),
                            origin: origin.clone(),
                        })
                        .await
                        .map(drop)
                        .map_err(|e| format!("{e:?}")),
                    ),
                    (
                        "Wait",
                        p.wait(arg, 1, 1)
                            .await
                            .map(drop)
                            .map_err(|e| format!("{e:?}")),
                    ),
                    (
                        "Pending",
                        p.pending(arg).await.map(drop).map_err(|e| format!("{e:?}")),
                    ),
                    (
                        "CheckReason",
                        p.check_reason("ident", "T-1 probe")
                            .await
                            .map_err(|e| format!("{e:?}")),
                    ),
                    (
                        "OpenSession",
                        p.open_session(&jit_proto::SessionOpen {
                            user: arg.clone(),
                            target: "root".into(),
                            ssh: false,
                            pid: std::process::id(),
                            origin,
                        })
                        .await
                        .map(drop)
                        .map_err(|e| format!("{e:?}")),
                    ),
                ];
                let answered: Vec<&str> = outcomes
                    .iter()
                    .filter(|(_, r)| r.is_ok())
                    .map(|(m, _)| *m)
                    .collect();
                let refused = outcomes
                    .iter()
                    .filter(|(_, r)| {
                        r.as_ref().is_err_and(|e| {
                            e.contains("AccessDenied") || e.contains("NotAuthorized")
                        })
                    })
                    .count();
                if answered.is_empty() && refused == outcomes.len() {
                    Err(format!("NotAuthorized: all {refused} PAM methods refused"))
                } else {
                    Ok(format!(
                        "answered: {answered:?}; refused {refused} of {}",
                        outcomes.len()
                    ))
                }
            }
            "vanish" => {
                let id: u64 = arg.parse().map_err(|e| format!("id: {e}"))?;
                let msg = zbus::Message::method_call("/org/jit/Jitd", "Revoke")
                    .destination("org.jit.Jitd")
                    .interface("org.jit.Jitd.User1")
                    .build(&(id, "gone before the answer"))
                    .map_err(|e| e.to_string())?;
                conn.send(&msg).await.map_err(|e| e.to_string())?;
                // Gone at once: the connection closes as the process exits.
                std::process::exit(0)
            }
            other => Err(format!("unknown command {other}")),
        }
    });
    match result {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{e}");
            if e.contains("AccessDenied") || e.contains("NotAuthorized") {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
