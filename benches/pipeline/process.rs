//! The real `offboard` binary as a child process: run to completion with the OS's resource usage, or run as a
//! daemon that is probed over HTTP, measured through `/proc`, and stopped with SIGTERM.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a finished child did, as the kernel accounted it.
pub(crate) struct Finished {
    /// Spawn to exit.
    pub(crate) wall: Duration,
    /// Peak resident set size (`VmHWM` of `/proc/PID/status`, the last reading before it exited), KiB.
    pub(crate) max_rss_kib: u64,
    /// Standard output.
    pub(crate) stdout: String,
}

/// Runs `offboard --config CONFIG ARGS…` to completion, with its output in `dir`, and returns the wall time and
/// its peak RSS. A non-zero exit is an error that quotes the child's stderr.
pub(crate) fn run_measured(
    bin: &Path,
    config: &Path,
    args: &[&str],
    dir: &Path,
) -> anyhow::Result<Finished> {
    let out_path = dir.join("stdout.txt");
    let err_path = dir.join("stderr.txt");
    let start = Instant::now();
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    let mut status: libc::c_int = 0;
    // The peak RSS is the child's `VmHWM`, read every 2 ms while it runs (a high-water mark, so only growth in
    // its last 2 ms could be missed). `ru_maxrss` from `wait4` would not do: a spawned child starts as a copy
    // of this harness, and the kernel keeps that copy's size in the child's high-water mark across `exec`.
    let mut max_rss_kib = 0;
    loop {
        if let Ok(kib) = status_kib(child.id(), "VmHWM") {
            max_rss_kib = max_rss_kib.max(kib);
        }
        // SAFETY: waitpid writes only into `status`, which lives for the whole call.
        let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if reaped == pid {
            break;
        }
        if reaped < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(err).context("waitpid");
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let wall = start.elapsed();
    // The child was reaped by waitpid above; dropping the handle neither waits nor kills.
    drop(child);
    let stdout = std::fs::read_to_string(&out_path)?;
    let exited = libc::WIFEXITED(status);
    let code = libc::WEXITSTATUS(status);
    if !exited || code != 0 {
        anyhow::bail!(
            "offboard {} exited with status {status:#x}: {}",
            args.join(" "),
            tail(&err_path)
        );
    }
    Ok(Finished {
        wall,
        max_rss_kib,
        stdout,
    })
}

/// A `kB` figure of `/proc/PID/status`, e.g. `VmRSS` or `VmHWM`, in KiB.
fn status_kib(pid: u32, key: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no {key} in /proc/{pid}/status"))
}

/// The last lines of a log file, for error messages.
pub(crate) fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// A free TCP port on 127.0.0.1 (bound, read and released).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// `offboard run` as a child process.
pub(crate) struct Daemon {
    child: Option<Child>,
    started: Instant,
    log: PathBuf,
    /// Where its HTTP listener is.
    pub(crate) addr: SocketAddr,
}

impl Daemon {
    /// Starts `offboard --config CONFIG run`, logging to `log`; `addr` is its `http.listen`.
    pub(crate) fn start(
        bin: &Path,
        config: &Path,
        addr: SocketAddr,
        log: &Path,
    ) -> anyhow::Result<Daemon> {
        let started = Instant::now();
        let child = Command::new(bin)
            .arg("--config")
            .arg(config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        Ok(Daemon {
            child: Some(child),
            started,
            log: log.to_path_buf(),
            addr,
        })
    }

    fn pid(&self) -> anyhow::Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .context("the daemon was stopped")
    }

    /// Polls `/readyz` every 2 ms until it answers 200 and returns the time since the process was spawned.
    pub(crate) async fn wait_ready(&mut self, limit: Duration) -> anyhow::Result<Duration> {
        loop {
            if get_status(self.addr, "/readyz").await == Some(200) {
                return Ok(self.started.elapsed());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!(
                    "the daemon exited ({status}) before it was ready: {}",
                    tail(&self.log)
                );
            }
            anyhow::ensure!(
                self.started.elapsed() < limit,
                "the daemon was not ready within {limit:?}: {}",
                tail(&self.log)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// A `kB` figure of `/proc/PID/status`, e.g. `VmRSS` or `VmHWM`, in KiB.
    pub(crate) fn status_kib(&self, key: &str) -> anyhow::Result<u64> {
        status_kib(self.pid()?, key)
    }

    /// Sends SIGTERM and waits (up to 30 s) for a clean exit.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
        // SAFETY: kill only sends a signal to our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::ensure!(
                    status.success(),
                    "the daemon exited with {status} after SIGTERM: {}",
                    tail(&self.log)
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                anyhow::bail!("the daemon did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Only on an error path: never leave our child running.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The status code of `GET path` over a fresh connection, or `None` when nothing answers.
pub(crate) async fn get_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1)?.parse().ok()
}
