//! The peers measured beside the suite's modes: nginx's stream proxy in
//! front of a `proxy` cluster's workers, and the Node.js cluster
//! ([`crate::server::NODE_CLUSTER_JS`]). Their configurations are files
//! (`bench/suite/peers/`), built into the harness, and each run writes the
//! exact file it ran into its folder (`peers/`).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::children::{self, Registration};
use crate::procfs;
use crate::server::{CommandLog, append};

/// nginx's configuration, with `@MODULE@`, `@DIR@`, `@UPSTREAMS@` and
/// `@PORT@` to fill in.
pub const NGINX_CONF: &str = include_str!("../peers/nginx.conf");

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
    out.join("peers")
}
