//! Logs: the subscriber a generated binary installs (`RUST_LOG` or `--log-level`, text or JSON
//! lines, on standard error), and the rate limit that keeps a flood of failing requests from
//! flooding the log: a few lines a second for each step, then one line saying how many were left
//! out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines a step may log per window before the rest are counted instead.
const LINES_PER_WINDOW: u32 = 10;
const WINDOW: Duration = Duration::from_secs(1);

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the process's subscriber: `level` (an `EnvFilter` directive such as `info` or
/// `graphc_runtime=debug`) unless `RUST_LOG` is set. Does nothing if one is installed already.
pub fn init(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Standard error that drops what it cannot write. A closed standard error (a log collector
/// gone, a pipe whose reader exited) must not stop the server: `tracing-subscriber` reports a
/// failed write with `eprintln!`, which panics the thread that was logging.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

struct Window {
    started: Instant,
    logged: u32,
    suppressed: u64,
}

fn windows() -> &'static Mutex<HashMap<String, Window>> {
    static WINDOWS: std::sync::OnceLock<Mutex<HashMap<String, Window>>> = std::sync::OnceLock::new();
    WINDOWS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Whether a failure of `step` may be logged now. When a new window opens after lines were
/// left out, says how many.
pub fn allow(step: &str) -> bool {
    let Ok(mut windows) = windows().lock() else { return true };
    let now = Instant::now();
    let window = windows.entry(step.to_string()).or_insert_with(|| Window { started: now, logged: 0, suppressed: 0 });
    if now.duration_since(window.started) >= WINDOW {
        if window.suppressed > 0 {
            tracing::warn!(
                step,
                suppressed = window.suppressed,
                "{} more failures of step `{step}` were not logged",
                window.suppressed
            );
        }
        *window = Window { started: now, logged: 0, suppressed: 0 };
    }
    if window.logged < LINES_PER_WINDOW {
        window.logged += 1;
        true
    } else {
        window.suppressed += 1;
        false
    }
}
