//! A caller that tries to take every waiting slot: `bus_flood ADDRESS ID N SECS` makes N
//! concurrent `User1.Wait(ID, SECS)` calls over one connection, as whoever runs it, and
//! prints one line per answer as it comes (`refused: ...` or `answered: STATE`).
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let parsed = (
        args.get(1),
        args.get(2).and_then(|a| a.parse::<u64>().ok()),
        args.get(3).and_then(|a| a.parse::<usize>().ok()),
        args.get(4).and_then(|a| a.parse::<u32>().ok()),
    );
    let (Some(addr), Some(id), Some(n), Some(secs)) = parsed else {
        eprintln!("usage: bus_flood ADDRESS ID N SECS");
        return ExitCode::from(2);
    };
    let conn = zbus::block_on(
        zbus::connection::Builder::address(addr.as_str())
            .method_timeout(Duration::from_secs(u64::from(secs) + 30))
            .build(),
    );
    let conn = match conn {
        Ok(c) => c,
        Err(e) => {
            eprintln!("connect: {e}");
            return ExitCode::from(1);
        }
    };
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let conn = conn.clone();
            std::thread::spawn(move || {
                let answer = zbus::block_on(async {
                    let p = jit_proto::user1(&conn).await.map_err(|e| e.to_string())?;
                    p.wait(id, secs).await.map_err(|e| format!("{e:?}"))
                });
                let line = match answer {
                    Ok(r) => format!("answered: {}", r.state),
                    Err(e) => format!("refused: {e}"),
                };
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    ExitCode::SUCCESS
}
