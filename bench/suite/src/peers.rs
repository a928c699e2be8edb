//! The peers measured beside the suite's modes: nginx's stream proxy in
//! front of a `proxy` cluster's workers, and the Node.js cluster
//! ([`crate::server::NODE_CLUSTER_JS`]). Their configurations are files
//! (`bench/suite/peers/`), built into the harness, and each run writes the
//! exact file it ran into its folder (`peers/`), and how each peer ran
//! ([`ran`]: its version, processes, workers and the settings that shape
//! how it shares the port) into `peers.json`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use runs::folder::PeerRun;
use runs::labels::Mode as Label;

use crate::children::{self, Registration};
use crate::procfs;
use crate::server::{CommandLog, append};

/// nginx's configuration, with `@MODULE@`, `@DIR@`, `@UPSTREAMS@` and
/// `@PORT@` to fill in.
pub const NGINX_CONF: &str = include_str!("../peers/nginx.conf");

/// The folder of a run that keeps the peers' files, as `peers.json` names
/// them: `peers/nginx.conf`.
pub const FOLDER: &str = "peers";

/// nginx's configuration, as kept in [`FOLDER`].
pub const NGINX_FILE: &str = "nginx.conf";

/// The Node.js cluster's script, as kept in [`FOLDER`] (and run from there).
pub const NODE_FILE: &str = "node-cluster.js";

/// The directives of nginx's configuration that shape how it shares the
/// port, kept in `peers.json` as the file spells them: one process
/// (`master_process off`, `worker_processes 1`) accepts every connection
/// and relays it (`proxy_pass`) round robin to the cluster's workers.
/// `listen` and the upstream `server` lines are left out: their ports
/// change at every start, and the kept file shows the last.
pub const NGINX_SETTINGS: [&str; 4] = [
    "master_process",
    "worker_processes",
    "worker_connections",
    "proxy_pass",
];

/// Debian's stream module (`apt-get install libnginx-mod-stream`).
pub const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// How often nginx may fail to bind the port it was given (someone took it
/// between our check and its bind) before the run gives up.
const NGINX_TRIES: u32 = 5;

/// How long nginx may take to listen.
const NGINX_LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running nginx: stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Nginx {
    /// Our child.
    child: Child,
    /// The port it listens on.
    pub port: u16,
    /// The exact configuration it runs.
    pub conf: String,
    /// It is stopped on a signal to the harness.
    _registered: Registration,
}

impl Nginx {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Starts nginx in front of `upstreams` (the workers' own ports), its
    /// configuration in `dir` and copied to `record` (the run's
    /// `peers/nginx.conf`). A free port is picked, then nginx binds it: if
    /// someone took it in between, nginx exits and another port is tried;
    /// the port counts once nginx itself listens on it.
    pub fn start(
        upstreams: &[u16],
        dir: &Path,
        record: &Path,
        cpus: Option<&str>,
        commands: &CommandLog,
        log: &Path,
    ) -> anyhow::Result<Nginx> {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let upstreams: String = upstreams
            .iter()
            .map(|port| format!("server 127.0.0.1:{port}; "))
            .collect();
        for attempt in 1..=NGINX_TRIES {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let conf = NGINX_CONF
                .replace("@MODULE@", NGINX_STREAM_MODULE)
                .replace("@DIR@", &dir.to_string_lossy())
                .replace("@UPSTREAMS@", &upstreams)
                .replace("@PORT@", &port.to_string());
            let path = dir.join("nginx.conf");
            std::fs::write(&path, &conf).with_context(|| format!("write {}", path.display()))?;
            let mut argv: Vec<String> = Vec::new();
            if let Some(cpus) = cpus {
                argv.extend(["taskset".into(), "-c".into(), cpus.into()]);
            }
            argv.extend([
                "nginx".into(),
                "-c".into(),
                path.to_string_lossy().into_owned(),
            ]);
            argv.extend(["-p".into(), dir.to_string_lossy().into_owned()]);
            commands.record(&argv);
            let child = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(append(log)?)
                .spawn()
                .context("cannot start nginx")?;
            let registered = children::register(child.id());
            let mut nginx = Nginx {
                child,
                port,
                conf: conf.clone(),
                _registered: registered,
            };
            let deadline = Instant::now() + NGINX_LISTEN_TIMEOUT;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = nginx.child.try_wait() {
                    break;
                }
                if procfs::listens(nginx.pid(), port) {
                    if let Some(parent) = record.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(record, &conf)
                        .with_context(|| format!("write {}", record.display()))?;
                    return Ok(nginx);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            drop(nginx);
            eprintln!(
                "nginx did not listen on 127.0.0.1:{port} (try {attempt} of {NGINX_TRIES}); its log ends with:\n{}",
                crate::system::tail(log, 2)
            );
        }
        bail!("nginx never listened; giving up")
    }

    /// Stops it: SIGTERM (its fast shutdown), then SIGKILL after
    /// [`STOP_GRACE`](crate::children::STOP_GRACE).
    pub fn stop(&mut self) {
        children::stop_child(&mut self.child);
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Which peers are installed: nginx with its stream module, and node.
pub fn installed() -> (bool, bool) {
    let nginx = crate::system::which("nginx").is_some() && Path::new(NGINX_STREAM_MODULE).is_file();
    let node = crate::system::which("node").is_some();
    (nginx, node)
}

/// Where a run keeps the peers' files: `DIR/peers/`.
pub fn folder(out: &Path) -> PathBuf {
    out.join(FOLDER)
}

/// `peer`'s version as it prints it (`nginx -v`: `nginx version:
/// nginx/1.24.0 (Ubuntu)` gives `1.24.0 (Ubuntu)`; `node --version`:
/// `v20.11.1`); `unknown` if it prints nothing.
pub fn version(peer: Label) -> String {
    let printed = match peer {
        Label::Nginx => crate::system::output_of("nginx", &["-v"]).map(|text| {
            text.rsplit_once("nginx/")
                .map_or(text.clone(), |(_, v)| v.to_owned())
        }),
        _ => crate::system::output_of("node", &["--version"]),
    };
    printed
        .filter(|text| !text.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// The statements of nginx's configuration `conf` that [`NGINX_SETTINGS`]
/// names, as spelled (spaces collapsed, without their `;`), in the file's
/// order.
pub fn nginx_settings(conf: &str) -> Vec<String> {
    let uncommented: String = conf
        .lines()
        .map(|line| line.split_once('#').map_or(line, |(code, _)| code))
        .collect::<Vec<_>>()
        .join("\n");
    uncommented
        .split([';', '{', '}'])
        .map(|statement| statement.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|statement| {
            statement
                .split(' ')
                .next()
                .is_some_and(|word| NGINX_SETTINGS.contains(&word))
        })
        .collect()
}

/// The Node.js cluster's setting that shapes how it shares the port, as
/// the script spells it for `--sched rr` or `--sched none`: who accepts
/// (the primary with `SCHED_RR`, the workers on the shared socket with
/// `SCHED_NONE`).
pub fn node_settings(sched: &str) -> Vec<String> {
    let policy = if sched == "rr" {
        "SCHED_RR"
    } else {
        "SCHED_NONE"
    };
    vec![
        format!("--sched {sched}"),
        format!("cluster.schedulingPolicy = cluster.{policy}"),
    ]
}

/// How `peer` ran, read once it serves: its version, its own processes
/// (`pid` and those of its children that are not `workers`, the workers
/// that served), the settings that shape how it shares the port (from
/// `nginx_conf`, the configuration nginx runs, or the Node.js script's
/// `--sched`), and where the run's folder keeps its config.
pub fn ran(
    peer: Label,
    pid: u32,
    workers: &[u32],
    nginx_conf: Option<&str>,
) -> anyhow::Result<PeerRun> {
    let children = cluster::procfs::children(pid)
        .with_context(|| format!("the processes of {peer} (pid {pid})"))?;
    let own = children
        .iter()
        .filter(|child| !workers.contains(child))
        .count();
    let (settings, file) = match (peer, nginx_conf) {
        (Label::Nginx, Some(conf)) => (nginx_settings(conf), NGINX_FILE),
        (Label::Nginx, None) => bail!("nginx's configuration is needed to say how it ran"),
        (Label::NodeRr, _) => (node_settings("rr"), NODE_FILE),
        (Label::NodeNone, _) => (node_settings("none"), NODE_FILE),
        (other, _) => bail!("{other} is not a peer"),
    };
    Ok(PeerRun {
        name: peer,
        version: version(peer),
        processes: u32::try_from(1 + own).context("a process count")?,
        workers: u32::try_from(workers.len()).context("a worker count")?,
        settings,
        config: Some(format!("{FOLDER}/{file}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings kept for nginx are the shipped file's directives that
    /// shape how it shares the port, as spelled; comments do not count.
    #[test]
    fn nginx_settings_are_its_directives_as_spelled() {
        assert_eq!(
            nginx_settings(NGINX_CONF),
            [
                "master_process off",
                "worker_processes 1",
                "worker_connections 10000",
                "proxy_pass workers",
            ]
        );
        assert_eq!(
            nginx_settings("# master_process on;\nworker_processes   4;  # auto"),
            ["worker_processes 4"]
        );
    }

    /// The Node.js settings kept are what the shipped script does with
    /// `--sched`: this test fails if the script stops spelling them so.
    #[test]
    fn node_settings_are_what_the_script_spells() {
        let script = crate::server::NODE_CLUSTER_JS;
        assert!(script.contains("args.sched = value"), "--sched is read");
        for sched in ["rr", "none"] {
            let settings = node_settings(sched);
            let policy = settings[1]
                .strip_prefix("cluster.schedulingPolicy = ")
                .expect("the policy");
            assert!(
                script.contains("cluster.schedulingPolicy = ") && script.contains(policy),
                "{policy}"
            );
        }
        assert_eq!(
            node_settings("none")[1],
            "cluster.schedulingPolicy = cluster.SCHED_NONE"
        );
    }
}
