//! Lesson 3, watching a socket change hands: `strace -f` on a
//! `handoff-socket` master and its workers while three requests come in;
//! each connection goes accept4 → sendmsg with SCM_RIGHTS → the worker's
//! recvmsg → its Ack → the master's recvmsg → the master's close, and the
//! worker closes its own fd once it has answered. The frames are decoded by
//! `cluster::channel::Message`, the channel's own decoder: the lesson names
//! every kind the channel has, as the channel names it.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use cluster::channel::Message;
use cluster::channel::frame::FRAME_LEN;
use cluster::cli::UsageError;

use super::{Lab, Verdict, WORKERS};

/// Requests, each on a connection of its own.
const REQUESTS: usize = 3;
/// The system calls traced.
const SYSCALLS: &str = "accept4,sendmsg,recvmsg,close";
/// How long a request may take to be answered.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Lesson 3 needs `strace -f`: one line and exit 2 without it (before
/// anything is built).
pub fn check_strace() -> anyhow::Result<()> {
    let Some(strace) = crate::system::which("strace") else {
        return Err(UsageError(
            "lesson 3 needs strace, which is not installed: apt-get install strace".into(),
        )
        .into());
    };
    let traced = std::process::Command::new(strace)
        .args(["-f", "-o", "/dev/null", "true"])
        .output();
    match traced {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => Err(UsageError(format!(
            "lesson 3 needs strace -f, which cannot trace here ({}); in a container, allow ptrace (docker run --cap-add SYS_PTRACE)",
            String::from_utf8_lossy(&output.stderr).trim().replace('\n', " ")
        ))
        .into()),
        Err(err) => Err(UsageError(format!("lesson 3 needs strace -f, which cannot run here ({err})")).into()),
    }
}

/// Runs the lesson.
pub fn run(lab: &Lab) -> anyhow::Result<Verdict> {
    println!(
        "lesson 3: watching a socket change hands: strace -f -e trace={SYSCALLS} on a handoff-socket master"
    );
    println!("  and its {WORKERS} workers, {REQUESTS} requests with Connection: close");
    let trace = lab.path("trace");
    let wrap: Vec<String> = [
        "strace",
        "-f",
        "-ttt",
        "-e",
        &format!("trace={SYSCALLS}"),
        "-e",
        "signal=none",
        "-o",
        &trace.to_string_lossy(),
    ]
    .iter()
    .map(|word| (*word).to_owned())
    .collect();
    let mode = cluster::Mode::Handoff(cluster::Pass::Socket);
    let mut server =
        lab.launcher
            .start(crate::server::Serve::Cluster(mode), WORKERS, &[], &wrap)?;
    let master = server.master();
    let workers = server.workers();
    // From here on: only what the requests cause (and the master's pings).
    let mark = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64());
    for i in 1..=REQUESTS {
        // A request by hand: one connection, one answer.
        let mut stream = TcpStream::connect(("127.0.0.1", server.port())).context("connect")?;
        stream.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: lesson\r\nConnection: close\r\n\r\n")?;
        let mut reply = String::new();
        if stream.read_to_string(&mut reply).is_err() {
            bail!("request {i} got no complete answer within {ANSWER_TIMEOUT:?}");
        }
        println!(
            "  request {i}: {}",
            reply
                .trim_end_matches('\n')
                .rsplit('\n')
                .next()
                .unwrap_or("")
        );
    }
    server.stop()?;
    let text =
        std::fs::read_to_string(&trace).with_context(|| format!("read {}", trace.display()))?;
    Ok(judge(&text, mark, master, &workers))
}

/// A successful system call of the trace.
struct Call {
    /// When it began (strace's timestamp is the entry's).
    at: f64,
    /// Who made it.
    pid: u32,
    /// The call.
    name: String,
    /// Its first argument, an fd.
    fd: i64,
    /// The rest of its arguments.
    args: String,
    /// What it returned.
    ret: i64,
    /// The whole line, as strace wrote it (pieces joined).
    text: String,
}

/// What happened to one connection, step by step.
#[derive(Default)]
struct Connection {
    /// The steps seen, in order.
    steps: Vec<&'static str>,
    /// Its handoff number.
    seq: Option<u64>,
    /// The worker that received it.
    worker: Option<u32>,
    /// Its fd in that worker.
    worker_fd: Option<i64>,
}

/// The calls of the trace after `mark`, in the order they began.
fn calls(text: &str, mark: f64) -> Vec<Call> {
    // strace -f writes a call another process interrupts in two pieces:
    // `PID T name(args <unfinished ...>` and later `PID T <... name resumed>rest`.
    let mut calls = Vec::new();
    let mut pending: HashMap<u32, (f64, String)> = HashMap::new();
    for line in text.lines() {
        // `PID +T text`: the pid is padded with spaces.
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some((at, rest)) = rest.trim_start().split_once(' ') else {
            continue;
        };
        let (Ok(pid), Ok(mut at)) = (pid.parse::<u32>(), at.parse::<f64>()) else {
            continue;
        };
        let mut text = rest.to_owned();
        if let Some(head) = text.strip_suffix("<unfinished ...>") {
            pending.insert(pid, (at, head.trim_end().to_owned()));
            continue;
        }
        if let Some(resumed) = text.strip_prefix("<... ") {
            let Some((_, after)) = resumed.split_once(" resumed>") else {
                continue;
            };
            let (began, head) = pending.remove(&pid).unwrap_or((at, String::new()));
            at = began;
            let glue = if head.ends_with(',') { " " } else { "" };
            text = format!("{head}{glue}{after}");
        }
        if let Some(call) = parse_call(&text, at, pid) {
            if call.at >= mark && call.ret >= 0 {
                calls.push(call);
            }
        }
    }
    // A receiver's recvmsg begins after its sender's sendmsg began,
    // whichever of the two strace finished printing first.
    calls.sort_by(|a, b| a.at.total_cmp(&b.at));
    calls
}

/// `name(fd, args) = ret`, as strace writes a call (the return value
/// aligned with spaces).
fn parse_call(text: &str, at: f64, pid: u32) -> Option<Call> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let inner = &text[open + 1..];
    let digits = inner.bytes().take_while(u8::is_ascii_digit).count();
    let fd = inner[..digits].parse().ok()?;
    // The last `) = N`: the arguments end at that parenthesis.
    let (close, ret) = text.rmatch_indices(" = ").find_map(|(at, _)| {
        let before = text[..at].trim_end();
        let ret: i64 = text[at + 3..].split_whitespace().next()?.parse().ok()?;
        before.ends_with(')').then(|| (before.len() - 1, ret))
    })?;
    let args = text.get(open + 1 + digits..close)?.to_owned();
    Some(Call {
        at,
        pid,
        name: name.to_owned(),
        fd,
        args,
        ret,
        text: text.to_owned(),
    })
}

/// The bytes of a C string literal as strace escapes them (`\4\0`,
/// `\x1f`, `\n`).
fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' || i + 1 == bytes.len() {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let c = bytes[i + 1];
        i += 2;
        match c {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'v' => out.push(0x0b),
            b'f' => out.push(0x0c),
            b'a' => out.push(0x07),
            b'b' => out.push(0x08),
            b'x' => {
                let hex: String = text[i..]
                    .chars()
                    .take_while(char::is_ascii_hexdigit)
                    .take(2)
                    .collect();
                i += hex.len();
                out.push(u8::from_str_radix(&hex, 16).unwrap_or(0));
            }
            b'0'..=b'7' => {
                let mut value = u32::from(c - b'0');
                let mut taken = 0;
                while taken < 2 && i < bytes.len() && (b'0'..=b'7').contains(&bytes[i]) {
                    value = value * 8 + u32::from(bytes[i] - b'0');
                    i += 1;
                    taken += 1;
                }
                out.push(value as u8);
            }
            other => out.push(other),
        }
    }
    out
}

/// The frame a sendmsg or recvmsg carried, decoded by the channel's own
/// decoder, and the fds of its SCM_RIGHTS control message.
fn frame(args: &str) -> (Option<Message>, Vec<i64>) {
    let data = args.split_once("iov_base=\"").map(|(_, rest)| {
        let mut end = 0;
        let bytes = rest.as_bytes();
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        unescape(&rest[..end.min(rest.len())])
    });
    let message = data
        .filter(|raw| raw.len() >= FRAME_LEN)
        .and_then(|raw| Message::decode(&raw[..FRAME_LEN]).ok());
    let fds = args
        .split_once("SCM_RIGHTS, cmsg_data=[")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| {
            list.split(',')
                .filter_map(|fd| fd.trim().parse().ok())
                .collect()
        })
        .unwrap_or_default();
    (message, fds)
}

/// A frame kind as the channel names it (`Connection`, `Connections`,
/// `Ack`, …): the variant of `Message`.
fn kind(message: &Message) -> String {
    let debug = format!("{message:?}");
    debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The figure and the verdict from the trace's text.
fn judge(text: &str, mark: f64, master: u32, workers: &[u32]) -> Verdict {
    let who = |pid: u32| {
        if pid == master {
            "master".to_owned()
        } else if workers.contains(&pid) {
            format!("worker {pid}")
        } else {
            format!("thread {pid}")
        }
    };
    let mut conns: Vec<Connection> = Vec::new();
    let mut accepted: BTreeMap<i64, usize> = BTreeMap::new();
    let mut by_seq: BTreeMap<u64, usize> = BTreeMap::new();
    let mut pings = 0;
    println!();
    for call in calls(text, mark) {
        let (message, fds) = if matches!(call.name.as_str(), "sendmsg" | "recvmsg") {
            frame(&call.args)
        } else {
            (None, Vec::new())
        };
        if matches!(message, Some(Message::Ping { .. } | Message::Pong { .. })) {
            pings += 1;
            continue;
        }
        let from_master = call.pid == master;
        let note = match (call.name.as_str(), &message) {
            ("accept4", _) if from_master => {
                accepted.insert(call.ret, conns.len());
                conns.push(Connection { steps: vec!["accept4"], ..Connection::default() });
                Some(format!("a client's connection: fd {} in the master", call.ret))
            }
            ("sendmsg", Some(message)) if from_master && message.handoffs().is_some() => {
                let (seq, _) = message.handoffs().unwrap_or_default();
                for (i, fd) in fds.iter().enumerate() {
                    if let Some(&index) = accepted.get(fd) {
                        conns[index].seq = Some(seq + i as u64);
                        conns[index].steps.push("sendmsg");
                        by_seq.insert(seq + i as u64, index);
                    }
                }
                Some(format!(
                    "the master sends frame {} seq {seq} on a worker's channel (fd {}), and fd {fds:?} with it: SCM_RIGHTS",
                    kind(message),
                    call.fd
                ))
            }
            ("recvmsg", Some(message)) if !from_master && message.handoffs().is_some() => {
                let (seq, _) = message.handoffs().unwrap_or_default();
                for (i, fd) in fds.iter().enumerate() {
                    if let Some(&index) = by_seq.get(&(seq + i as u64)) {
                        conns[index].worker = Some(call.pid);
                        conns[index].worker_fd = Some(*fd);
                        conns[index].steps.push("recvmsg");
                    }
                }
                Some(format!(
                    "{} receives {} seq {seq}: the same socket, now its fd {fds:?} (the kernel installed a new fd)",
                    who(call.pid),
                    kind(message)
                ))
            }
            ("sendmsg", Some(Message::Ack { seq })) if !from_master => {
                for conn in &mut conns {
                    if conn.worker == Some(call.pid) && conn.seq.is_some_and(|s| s <= *seq) && !conn.steps.contains(&"ack") {
                        conn.steps.push("ack");
                    }
                }
                Some(format!("{} acknowledges every handoff up to seq {seq}", who(call.pid)))
            }
            ("recvmsg", Some(Message::Ack { seq })) if from_master => {
                for conn in &mut conns {
                    if conn.seq.is_some_and(|s| s <= *seq) && conn.steps.contains(&"ack") && !conn.steps.contains(&"acked") {
                        conn.steps.push("acked");
                    }
                }
                Some(format!("the master reads the Ack of seq {seq}"))
            }
            ("close", _) if from_master && accepted.contains_key(&call.fd) => {
                if let Some(index) = accepted.remove(&call.fd) {
                    conns[index].steps.push("master close");
                }
                Some(format!(
                    "the master closes its copy, fd {}: it holds nothing for this client any more",
                    call.fd
                ))
            }
            ("close", _) if !from_master => conns
                .iter_mut()
                .find(|conn| {
                    conn.worker == Some(call.pid)
                        && conn.worker_fd == Some(call.fd)
                        && !conn.steps.contains(&"worker close")
                })
                .map(|conn| {
                    conn.steps.push("worker close");
                    format!(
                        "{} has answered and closes fd {} (Connection: close): the client sees the end",
                        who(call.pid),
                        call.fd
                    )
                }),
            _ => None,
        };
        if let Some(note) = note {
            let short = call
                .text
                .replace("msg_name=NULL, msg_namelen=0, ", "")
                .replace("msg_iovlen=1, ", "")
                .replace(", iov_len=16", "")
                .replace(", iov_len=17", "")
                .replace(", msg_flags=0}", "}");
            println!("  {:<13} {short}", who(call.pid));
            println!("  {:<13} ↳ {note}", "");
        }
    }
    println!();
    // The master's chain is in this order; the worker closes its own fd
    // once it has answered, before or after the master closes its copy.
    let expected = [
        "accept4",
        "sendmsg",
        "recvmsg",
        "ack",
        "acked",
        "master close",
    ];
    let mut wrong = Vec::new();
    for (i, conn) in conns.iter().enumerate() {
        let chain: Vec<&str> = conn
            .steps
            .iter()
            .copied()
            .filter(|step| *step != "worker close")
            .collect();
        let position = |step: &str| conn.steps.iter().position(|s| *s == step);
        let answered = conn.steps.iter().filter(|s| **s == "worker close").count() == 1
            && matches!((position("worker close"), position("recvmsg")), (Some(close), Some(received)) if close > received);
        if chain != expected || !answered {
            wrong.push(format!(
                "connection {} went {}",
                i + 1,
                conn.steps.join(" → ")
            ));
        }
    }
    if conns.len() != REQUESTS {
        wrong.push(format!(
            "the master accepted {} connections for {REQUESTS} requests",
            conns.len()
        ));
    }
    println!(
        "  {} connections, each: accept4 → sendmsg (SCM_RIGHTS) → the worker's recvmsg → its Ack → the master's recvmsg → the master's close; the worker closes its own fd when it has answered{}",
        conns.len(),
        if pings > 0 {
            format!(" ({pings} ping/pong frames left out)")
        } else {
            String::new()
        }
    );
    Verdict {
        wrong,
        ok: format!(
            "each of the {REQUESTS} sockets was accepted by the master, sent once with SCM_RIGHTS, arrived in a worker as a new fd, was acknowledged, and only then closed by the master"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as strace prints it reads back as the channel's message,
    /// kind 9 (`Connections`) included, which a copied table of kinds
    /// once lacked.
    #[test]
    fn frames_read_as_the_channel_writes_them() {
        for message in [
            Message::Connection { seq: 7 },
            Message::Connections { seq: 9, count: 3 },
            Message::Ack { seq: 7 },
        ] {
            let escaped: String = message
                .encode()
                .iter()
                .map(|b| format!("\\{b:o}"))
                .collect();
            let args = format!(
                ", {{msg_iov=[{{iov_base=\"{escaped}\", iov_len=16}}], msg_control=[{{cmsg_len=20, cmsg_level=SOL_SOCKET, cmsg_type=SCM_RIGHTS, cmsg_data=[7, 8]}}]}}, 0"
            );
            let (read, fds) = frame(&args);
            assert_eq!(read, Some(message));
            assert_eq!(fds, [7, 8]);
        }
        assert_eq!(
            kind(&Message::Connections { seq: 1, count: 2 }),
            "Connections"
        );
    }

    /// A call strace split in two is joined, and the return value read.
    #[test]
    fn split_calls_are_joined() {
        let text = "10 5.000001 accept4(3, <unfinished ...>\n11 5.000002 close(9) = 0\n10 5.000003 <... accept4 resumed>NULL, NULL, SOCK_CLOEXEC) = 12\n";
        let calls = calls(text, 0.0);
        assert_eq!(calls.len(), 2);
        assert_eq!(
            (calls[0].name.as_str(), calls[0].ret, calls[0].pid),
            ("accept4", 12, 10)
        );
        assert_eq!(calls[1].fd, 9);
    }
}
