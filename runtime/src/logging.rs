//! Logs: the subscriber a generated binary installs (`RUST_LOG` or `--log-level`, text or JSON
//! lines, on standard error), the panic hook that replaces Rust's default one (a step's panic is
//! logged once, as its event's failure; any other goes through tracing, throttled), and the rate
//! limit that keeps a flood of failing requests from flooding the log: the first line of each
//! cause is always written, repeats of one cause a few a second for each step, then one line
//! saying how many were left out.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lines a step may log per window for one cause before the rest are counted instead.
const LINES_PER_WINDOW: u32 = 10;
const WINDOW: Duration = Duration::from_secs(1);
/// Causes whose windows are kept; beyond, windows that have ended are forgotten.
const WINDOWS_KEPT: usize = 4096;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Installs the process's subscriber: `RUST_LOG` when set, else `level`, each a list of
/// `target=level` directives or a bare level (`info`, `warn,graphc_runtime=debug`). Does
/// nothing if a subscriber is installed already. A filter that does not parse is an error, so a
/// typo in `--log-level` is reported rather than silently logging nothing.
///
/// The filter is `tracing_subscriber`'s `Targets`, not `EnvFilter`: the same directives without
/// span and field matching, and without the regex engine, which cost a generated crate about ten
/// seconds of its cold build.
pub fn init(level: &str, format: LogFormat) -> Result<(), LogFilterError> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = log_filter(std::env::var("RUST_LOG").ok(), level)?;
    use std::io::IsTerminal;
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(|| LossyStderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry.with(layer).try_init(),
        LogFormat::Json => registry.with(layer.json().flatten_event(true)).try_init(),
    };
    std::panic::set_hook(Box::new(log_panic));
    Ok(())
}

thread_local! {
    /// How many guarded calls ([`guarded`]) this thread is inside.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
}

/// Runs user code, catching a panic: the panic hook then writes nothing, since the panic
/// becomes the event's failure and is logged once as that (with its secrets redacted).
#[inline(always)]
pub(crate) fn guarded<T>(call: impl FnOnce() -> T) -> std::thread::Result<T> {
    GUARDED.with(|depth| depth.set(depth.get() + 1));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
    GUARDED.with(|depth| depth.set(depth.get().saturating_sub(1)));
    result
}

/// The process's panic hook: a panic inside a guarded call is left to the failure it becomes;
/// any other (a bug outside user code) is one `error` line, throttled like failures.
fn log_panic(info: &std::panic::PanicHookInfo<'_>) {
    if GUARDED.with(Cell::get) > 0 {
        return;
    }
    let payload = info.payload();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with no message".to_string());
    let text = crate::error::redact_credentials(&text).into_owned();
    let location = info.location().map(ToString::to_string).unwrap_or_default();
    if allow("panic", &text) {
        tracing::error!(location, thread = std::thread::current().name().unwrap_or("unnamed"), "panic: {text}");
    }
}

/// A log filter that does not parse, and where it came from.
#[derive(Debug, thiserror::Error)]
#[error(
    "{origin} `{directives}` is not a log filter ({source}): write a level such as `info`, or `target=level` pairs"
)]
pub struct LogFilterError {
    /// `RUST_LOG` or `--log-level`.
    pub origin: &'static str,
    /// What it said.
    pub directives: String,
    /// The parser's reason.
    pub source: tracing_subscriber::filter::ParseError,
}

/// The filter from `RUST_LOG` when it is set and not blank, else from `level`.
fn log_filter(rust_log: Option<String>, level: &str) -> Result<tracing_subscriber::filter::Targets, LogFilterError> {
    let (origin, directives) = match rust_log {
        Some(directives) if !directives.trim().is_empty() => ("RUST_LOG", directives),
        _ => ("--log-level", level.to_string()),
    };
    directives.parse().map_err(|source| LogFilterError { origin, directives, source })
}

/// Whether a progress line (`graphc run` on a terminal) is on standard error's last line now:
/// a log line first clears it, so that the two never run into each other; the next progress
/// update draws it again below the log.
static PROGRESS_SHOWN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Draws `line` as the progress line, over the previous one.
pub(crate) fn show_progress(line: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "\r\x1b[2K{line}");
    let _ = stderr.flush();
    PROGRESS_SHOWN.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// Draws `line` as the last progress line and ends it.
pub(crate) fn end_progress(line: &str) {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "\r\x1b[2K{line}");
    PROGRESS_SHOWN.store(false, std::sync::atomic::Ordering::SeqCst);
}

/// Writes a log line to `out`, first clearing a progress line that stands there.
fn write_log_line(out: &mut impl std::io::Write, line: &[u8]) {
    if PROGRESS_SHOWN.swap(false, std::sync::atomic::Ordering::SeqCst) {
        let _ = out.write_all(b"\r\x1b[2K");
    }
    let _ = out.write_all(line);
}

/// Standard error that drops what it cannot write. A closed standard error (a log collector
/// gone, a pipe whose reader exited) must not stop the server: `tracing-subscriber` reports a
/// failed write with `eprintln!`, which panics the thread that was logging.
struct LossyStderr;

impl std::io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_log_line(&mut std::io::stderr().lock(), buf);
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

/// Whether a failure of `step` with this `cause` may be logged now: always the first time a
/// cause is seen in a window, then a few a second. When a new window opens after lines were left
/// out, says how many.
pub fn allow(step: &str, cause: &str) -> bool {
    let Ok(mut windows) = windows().lock() else { return true };
    let now = Instant::now();
    if windows.len() >= WINDOWS_KEPT {
        windows.retain(|_, window| now.duration_since(window.started) < WINDOW || window.suppressed > 0);
    }
    let key = format!("{step}\u{0}{cause}");
    let window = windows.entry(key).or_insert_with(|| Window { started: now, logged: 0, suppressed: 0 });
    if now.duration_since(window.started) >= WINDOW {
        if window.suppressed > 0 {
            tracing::warn!(
                step,
                suppressed = window.suppressed,
                "{} more failures of step `{step}` with the same cause were not logged",
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

/// Runs `reload` on every SIGHUP for as long as the process runs, logging what came of it: what
/// a configuration that can be re-read without a restart (tokens, certificates) does on the
/// signal. A reload that fails leaves what was read before in force.
pub(crate) fn on_hangup<E: std::fmt::Display>(what: &'static str, reload: impl Fn() -> Result<(), E> + Send + 'static) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            return;
        };
        while hangups.recv().await.is_some() {
            match reload() {
                Ok(()) => tracing::info!("{what} re-read"),
                Err(error) => tracing::error!("{error}; the {what} read before stay in force"),
            }
        }
    });
    #[cfg(not(unix))]
    let _ = (what, reload);
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn a_log_line_clears_the_progress_line_it_would_run_into() {
        super::PROGRESS_SHOWN.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut out = Vec::new();
        super::write_log_line(&mut out, b"WARN something\n");
        super::write_log_line(&mut out, b"WARN more\n");
        assert_eq!(out, b"\r\x1b[2KWARN something\nWARN more\n", "cleared once, before the first line only");
    }
    use tracing::Level;

    #[test]
    fn a_level_or_target_directives_filter_and_anything_else_is_an_error() {
        let filter = log_filter(None, "warn,graphc_runtime=debug").expect("parses");
        assert!(filter.would_enable("graphc_runtime::node", &Level::DEBUG));
        assert!(!filter.would_enable("user_crate", &Level::INFO));
        assert!(filter.would_enable("user_crate", &Level::WARN));
        let from_env = log_filter(Some("trace".into()), "warn").expect("parses");
        assert!(from_env.would_enable("anything", &Level::TRACE), "RUST_LOG wins over the flag");
        assert!(log_filter(Some("  ".into()), "info").expect("parses").would_enable("x", &Level::INFO));
        // As in env_logger, a bare word that is not a level names a target, at every level.
        assert!(log_filter(None, "my_crate").expect("parses").would_enable("my_crate::x", &Level::TRACE));
        let error = log_filter(None, "info,graphc=loud").expect_err("not a level").to_string();
        assert!(error.contains("--log-level `info,graphc=loud` is not a log filter"), "{error}");
        let error = log_filter(Some("x=verbose".into()), "info").expect_err("not a level").to_string();
        assert!(error.starts_with("RUST_LOG `x=verbose`"), "{error}");
    }
}
