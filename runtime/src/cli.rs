//! The command line of a binary `graphc build` makes: `serve` the graph over HTTP (the whole
//! graph in one process, or one function of it with `--function`), or `test` its test blocks.
//! Generated `main`s call [`main`] and nothing else.

use crate::generated::{Launch, Launched, Options, StartError, TestCase, junit, report, run_tests};
use crate::http::ServeOptions;
use crate::mock::MockServer;
use crate::pipeline::Handler;
use crate::stream::{ConsumeOptions, MemoryStreams};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage:
  BINARY serve [--base DIR] [--host HOST] [--port PORT] [--param NAME=JSON]... [--secrets-file PATH]
               [--body-limit BYTES] [--deadline-ms MS] [--concurrency N]
               [--header-timeout-ms MS] [--max-connections N] [--max-headers N] [--max-header-bytes BYTES]
               [--shutdown-timeout-ms MS] [--blocking-threads N] [--blocking-inline-us US] [--expose-errors]
               [--log-level LEVEL] [--log-format text|json] [--access-log] [--grpc-port PORT]
               [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]] [--auth-tokens-file PATH [--auth-header NAME]]
               [--upstream-ca PEM]
               [--function NAME [--redis URL] [--wait-replicas N] [--consumer NAME] [--batch N]
                [--claim-idle-ms MS] [--claim-every-ms MS] [--metrics-port PORT] [--dedupe-window-ms MS]]
  BINARY test  [--base DIR] [--junit PATH]
  BINARY run   [--base DIR] [--input PATH|-] [--output PATH|-] [--errors PATH] [--concurrency N]
               [--blocking-threads N] [--blocking-inline-us US] [--param NAME=JSON]... [--secrets-file PATH]
               [--redis URL] [--wait-replicas N] [--upstream-ca PEM]
               [--log-level LEVEL]
Without --function (or with --function '*') the whole graph runs in this process, its stream queues
as memory queues; with it, the root function serves HTTP and a child function consumes its stream
(with --metrics-port, a child also serves /metrics and /v2/health/{live,ready} on --host).
Defaults: body limit 1 MiB, deadline 30000 ms (reading the body included), concurrency 1024 (then 503
with Retry-After), header timeout 10000 ms (also closes idle keep-alive connections), 10000
connections (more are closed at once), 100 headers in 64 KiB, shutdown within 30000 ms, log level
info (RUST_LOG wins), text logs, 32 blocking threads (user handlers, `new` steps, routers and models
run there, never on the threads that accept connections and answer probes, unless their recent calls
each took under --blocking-inline-us, 50; 0 sends every call there). --expose-errors sends a 5xx's cause to the caller, not only to the log.
--grpc-port also serves the Open Inference Protocol's gRPC service (inference.GRPCInferenceService) on
--host, running the same pipeline (binaries built with graphc-runtime's `grpc` feature).
--tls-cert and --tls-key serve TLS on every port (binaries built with the `tls` feature); with
--tls-client-ca, clients must present a certificate that CA signed. --auth-tokens-file asks every
request but the health probes for a token of the file (`TOKEN`, or `NAME TOKEN [infer] [metadata]
[metrics]` per line) as `Authorization: Bearer TOKEN`, or alone in the --auth-header header: 401
without one, 403 for a group the token may not use. SIGHUP re-reads the tokens and the certificate.
`$remote` over https:// and Redis over rediss:// trust the platform's CA certificates (SSL_CERT_FILE
and SSL_CERT_DIR replace them, as for OpenSSL) and those of --upstream-ca.
`run` sends each line of --input (JSON Lines: a body, or an event with `body`, `id`, `key`, `path`,
`method`, `headers`) through the whole graph, --concurrency (64) at once, writes one answer per
line to --output in input order, each failure to --errors, a summary to standard error, and exits
1 if any event failed.
--redis takes redis://HOST:PORT, rediss:// (TLS), or a Redis Cluster as redis+cluster://HOST:PORT,HOST:PORT
(rediss+cluster://). --wait-replicas N makes every write to Redis wait until N replicas have it (WAIT,
1000 ms; fewer is a failed write: 503, or the records stay pending): a failover then loses no
acknowledged write.
Parameters also come from GRAPHC_PARAM_<NAME> variables; secrets from the environment or --secrets-file;
the Redis server from GRAPHC_REDIS_URL.";

use crate::flags::{RUN as RUN_FLAGS, SERVE as SERVE_FLAGS, SWITCHES, TEST as TEST_FLAGS};

/// Starts one function of a graph: the generated `run`.
pub type RunFunction = fn(&str, &Options, Launch) -> Launched;

/// Runs the binary's command line for the graph `name`.
pub fn main<H, B>(name: &str, build: B, tests: fn() -> Vec<TestCase>, run_function: RunFunction) -> ExitCode
where
    H: Handler,
    B: Fn(&Options) -> Result<H, StartError>,
{
    main_in(".", name, build, tests, run_function)
}

/// [`main`] for a graph whose file is in `graph_dir`: model files are found from there wherever
/// the binary starts (while that folder exists; `--base` wins), as `graphc build` writes it.
pub fn main_in<H, B>(
    graph_dir: &str,
    name: &str,
    build: B,
    tests: fn() -> Vec<TestCase>,
    run_function: RunFunction,
) -> ExitCode
where
    H: Handler,
    B: Fn(&Options) -> Result<H, StartError>,
{
    if std::path::Path::new(graph_dir).is_dir() {
        let _ = GRAPH_DIR.set(graph_dir.to_string());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok((command, flags)) => match command.as_str() {
            "serve" => run_serve(name, run_function, &flags),
            "test" => run_test(build, tests, name, &flags),
            "run" => run_file(build, &flags),
            _ => usage(),
        },
        Err(message) => {
            eprintln!("error: {message}");
            usage()
        }
    }
}

/// The usage, naming the binary as it was started.
fn usage() -> ExitCode {
    let program = std::env::args()
        .next()
        .and_then(|path| std::path::Path::new(&path).file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "BINARY".to_string());
    eprintln!("{}", USAGE.replace("BINARY", &program));
    ExitCode::from(2)
}

type Flags = Vec<(String, String)>;

fn parse(args: &[String]) -> Result<(String, Flags), String> {
    let command = args.first().cloned().unwrap_or_else(|| "serve".to_string());
    let known = match command.as_str() {
        "serve" => SERVE_FLAGS,
        "test" => TEST_FLAGS,
        "run" => RUN_FLAGS,
        other => return Err(format!("unknown command `{other}`")),
    };
    let mut flags = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(flag) = rest.next() {
        let name = flag.strip_prefix("--").ok_or_else(|| format!("unexpected argument `{flag}`"))?;
        // `--name=value` is `--name value`.
        let (name, inline) = match name.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (name, None),
        };
        if !known.contains(&name) {
            return Err(format!("unknown flag --{name} for `{command}`"));
        }
        let value = match inline {
            Some(value) => value,
            None if SWITCHES.contains(&name) => "true".to_string(),
            None => rest.next().cloned().ok_or_else(|| format!("--{name} needs a value"))?,
        };
        flags.push((name.to_string(), value));
    }
    Ok((command, flags))
}

fn switch(flags: &Flags, name: &str) -> bool {
    flag(flags, name).is_some_and(|value| value != "false")
}

fn flag<'f>(flags: &'f Flags, name: &str) -> Option<&'f str> {
    flags.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The folder model paths are relative to unless `--base` says: the graph's, when recorded.
static GRAPH_DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn options(flags: &Flags) -> Result<Options, String> {
    let base = flag(flags, "base").or_else(|| GRAPH_DIR.get().map(String::as_str)).unwrap_or(".");
    let mut options = Options::new(base);
    for (key, value) in std::env::vars() {
        if let Some(name) = key.strip_prefix("GRAPHC_PARAM_") {
            options = options.param(name.to_ascii_lowercase(), parse_value(&value));
        }
    }
    for (_, assignment) in flags.iter().filter(|(k, _)| k == "param") {
        let (name, value) =
            assignment.split_once('=').ok_or_else(|| format!("--param takes NAME=VALUE, not `{assignment}`"))?;
        options = options.param(name, parse_value(value));
    }
    options.redis_url = flag(flags, "redis").map(str::to_string).or_else(|| std::env::var("GRAPHC_REDIS_URL").ok());
    options.expose_errors = switch(flags, "expose-errors");
    let replicas: u32 = number(flags, "wait-replicas", 0)?;
    #[cfg(feature = "streams")]
    crate::stream::wait_for_replicas(replicas);
    #[cfg(not(feature = "streams"))]
    if replicas > 0 {
        return Err("--wait-replicas: this binary has no Redis client (graphc-runtime's `streams` feature)".to_string());
    }
    if let Some(file) = flag(flags, "upstream-ca") {
        trust_upstream_ca(file)?;
    }
    if let Some(file) = flag(flags, "secrets-file") {
        std::fs::read_to_string(file).map_err(|error| format!("cannot read the secrets file {file}: {error}"))?;
        options.secrets_file = Some(PathBuf::from(file));
    }
    Ok(options)
}

/// Trusts `file`'s CAs for `$remote` and Redis upstreams.
fn trust_upstream_ca(file: &str) -> Result<(), String> {
    #[cfg(feature = "upstream-tls")]
    {
        crate::upstream::trust(std::path::Path::new(file)).map_err(|error| format!("--upstream-ca: {error}"))
    }
    #[cfg(not(feature = "upstream-tls"))]
    {
        Err(format!(
            "--upstream-ca {file}: this graph calls no upstream over TLS (it has no `$remote` step and no Redis)"
        ))
    }
}

/// A JSON value, or the text as a string.
fn parse_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_string()))
}

fn number<T: std::str::FromStr>(flags: &Flags, name: &str, default: T) -> Result<T, String> {
    flag(flags, name).map_or(Ok(default), |v| v.parse().map_err(|_| format!("--{name} takes a number, not `{v}`")))
}

/// The tokio runtime, with the blocking pool where user code runs (docs/architecture.md, "Where
/// work runs") set from `--blocking-threads` and `--blocking-inline-us`. The pool's threads are
/// tokio's, so tokio may start that many besides its own (file reads and DNS among them).
fn runtime(flags: &Flags) -> Result<tokio::runtime::Runtime, String> {
    let threads = match number(flags, "blocking-threads", crate::pool::DEFAULT_SIZE)? {
        0 => return Err("--blocking-threads takes a number of threads of at least 1".to_string()),
        threads => threads,
    };
    let default_budget = crate::pool::DEFAULT_IN_PLACE_BUDGET.as_micros() as u64;
    let in_place_budget = Duration::from_micros(number(flags, "blocking-inline-us", default_budget)?);
    crate::pool::configure(threads);
    crate::pool::configure_in_place_budget(in_place_budget);
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(threads + 64)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))
}

fn run_serve(name: &str, run_function: RunFunction, flags: &Flags) -> ExitCode {
    let settings = (|| -> Result<(Options, ServeOptions), String> {
        let host = flag(flags, "host").unwrap_or("127.0.0.1");
        let port: u16 = number(flags, "port", 8080)?;
        let addr: SocketAddr =
            format!("{host}:{port}").parse().map_err(|_| format!("`{host}:{port}` is not an address"))?;
        let defaults = ServeOptions::default();
        let millis = |name: &str, default: Duration| -> Result<Duration, String> {
            Ok(Duration::from_millis(number(flags, name, default.as_millis() as u64)?))
        };
        let serve = ServeOptions {
            addr,
            body_limit: number(flags, "body-limit", defaults.body_limit)?,
            deadline: millis("deadline-ms", defaults.deadline)?,
            concurrency: number(flags, "concurrency", defaults.concurrency)?,
            header_timeout: millis("header-timeout-ms", defaults.header_timeout)?,
            max_connections: number(flags, "max-connections", defaults.max_connections)?,
            max_headers: number(flags, "max-headers", defaults.max_headers)?,
            max_header_bytes: number(flags, "max-header-bytes", defaults.max_header_bytes)?,
            shutdown_timeout: millis("shutdown-timeout-ms", defaults.shutdown_timeout)?,
            access_log: switch(flags, "access-log"),
            auth: match flag(flags, "auth-tokens-file") {
                None => None,
                Some(file) => {
                    let header = match flag(flags, "auth-header") {
                        None => None,
                        Some(name) => Some(
                            http::HeaderName::try_from(name)
                                .map_err(|_| format!("--auth-header `{name}` is not a header name"))?,
                        ),
                    };
                    Some(std::sync::Arc::new(
                        crate::auth::Tokens::read(std::path::Path::new(file), header).map_err(|e| e.to_string())?,
                    ))
                }
            },
            tls: match (flag(flags, "tls-cert"), flag(flags, "tls-key")) {
                (None, None) if flag(flags, "tls-client-ca").is_some() => {
                    return Err("--tls-client-ca needs --tls-cert and --tls-key".to_string());
                }
                (None, None) => None,
                (Some(cert), Some(key)) => {
                    let files = crate::tls::TlsFiles {
                        cert: cert.into(),
                        key: key.into(),
                        client_ca: flag(flags, "tls-client-ca").map(Into::into),
                    };
                    Some(std::sync::Arc::new(crate::tls::ServerTls::load(files).map_err(|e| e.to_string())?))
                }
                _ => return Err("--tls-cert and --tls-key go together".to_string()),
            },
        };
        let format = match flag(flags, "log-format").unwrap_or("text") {
            "text" => crate::logging::LogFormat::Text,
            "json" => crate::logging::LogFormat::Json,
            other => return Err(format!("--log-format takes text or json, not `{other}`")),
        };
        crate::logging::init(flag(flags, "log-level").unwrap_or("info"), format).map_err(|e| e.to_string())?;
        Ok((options(flags)?, serve))
    })();
    let (options, serve_options) = match settings {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("error: {message}");
            return usage();
        }
    };
    let runtime = match runtime(flags) {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let defaults = ConsumeOptions::default();
    let consume = (|| -> Result<ConsumeOptions, String> {
        let millis = |name: &str, default: Duration| -> Result<Duration, String> {
            Ok(Duration::from_millis(number(flags, name, default.as_millis() as u64)?))
        };
        Ok(ConsumeOptions {
            consumer: flag(flags, "consumer").map_or(defaults.consumer.clone(), str::to_string),
            batch: number(flags, "batch", defaults.batch)?.max(1),
            claim_idle: millis("claim-idle-ms", defaults.claim_idle)?,
            claim_every: millis("claim-every-ms", defaults.claim_every)?,
            dedupe_window: millis("dedupe-window-ms", defaults.dedupe_window)?,
            ..defaults.clone()
        })
    })();
    let consume = match consume {
        Ok(consume) => consume,
        Err(message) => {
            eprintln!("error: {message}");
            return usage();
        }
    };
    // `--metrics-port` and `--grpc-port` listen on `--host`, beside the HTTP server.
    let beside = |name: &str| match flag(flags, name).map(str::parse::<u16>) {
        None => Ok(None),
        Some(Ok(port)) => Ok(Some(SocketAddr::new(serve_options.addr.ip(), port))),
        Some(Err(_)) => Err(format!("--{name} takes a port number")),
    };
    let (probes, grpc) = match (beside("metrics-port"), beside("grpc-port")) {
        (Ok(probes), Ok(grpc)) => (probes, grpc),
        (Err(message), _) | (_, Err(message)) => {
            eprintln!("error: {message}");
            return usage();
        }
    };
    // Without `--function` (or with `--function '*'`) the whole graph runs in this process.
    let function = flag(flags, "function").unwrap_or("*");
    if function != "*" {
        eprintln!("{name}: function {function}");
    }
    let launch = Launch { graph: name.to_string(), serve: serve_options, consume, probes, grpc };
    match runtime.block_on(run_function(function, &options, launch)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run_file<H: Handler, B: Fn(&Options) -> Result<H, StartError>>(build: B, flags: &Flags) -> ExitCode {
    let fail = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(2)
    };
    if let Err(error) =
        crate::logging::init(flag(flags, "log-level").unwrap_or("warn"), crate::logging::LogFormat::Text)
    {
        return fail(error.to_string());
    }
    let options = match options(flags) {
        Ok(options) => options,
        Err(message) => return fail(message),
    };
    let concurrency = match number(flags, "concurrency", crate::jsonl::JsonlOptions::default().concurrency) {
        Ok(concurrency) => concurrency,
        Err(message) => return fail(message),
    };
    let input_path = flag(flags, "input").unwrap_or("-");
    // A file's lines are counted first, for the time left; standard input is read as it comes.
    let (input, total): (Box<dyn std::io::BufRead>, Option<usize>) = if input_path == "-" {
        (Box::new(std::io::BufReader::new(std::io::stdin())), None)
    } else {
        match std::fs::read_to_string(input_path) {
            Ok(text) => {
                let total = text.lines().count();
                (Box::new(std::io::Cursor::new(text)), Some(total))
            }
            Err(error) => return fail(format!("cannot read {input_path}: {error}")),
        }
    };
    let output: Box<dyn std::io::Write> = match flag(flags, "output").unwrap_or("-") {
        "-" => Box::new(std::io::BufWriter::new(std::io::stdout())),
        path => match std::fs::File::create(path) {
            Ok(file) => Box::new(std::io::BufWriter::new(file)),
            Err(error) => return fail(format!("cannot write {path}: {error}")),
        },
    };
    let errors: Box<dyn std::io::Write> = match flag(flags, "errors") {
        None => Box::new(std::io::sink()),
        Some(path) => match std::fs::File::create(path) {
            Ok(file) => Box::new(std::io::BufWriter::new(file)),
            Err(error) => return fail(format!("cannot write {path}: {error}")),
        },
    };
    if concurrency == 0 {
        return fail("--concurrency takes a number of events of at least 1".to_string());
    }
    let runtime = match runtime(flags) {
        Ok(runtime) => runtime,
        Err(error) => return fail(error),
    };
    use std::io::IsTerminal;
    let batch = crate::jsonl::JsonlOptions { concurrency, progress: std::io::stderr().is_terminal() };
    let started = std::time::Instant::now();
    let summary = runtime.block_on(async {
        let handler = std::sync::Arc::new(build(&options).map_err(|error| error.to_string())?);
        crate::jsonl::run(handler, input, total, output, errors, &batch).await.map_err(|error| error.to_string())
    });
    match summary {
        Ok(summary) => {
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "{} event{}: {} succeeded, {} failed in {seconds:.2} s ({:.0} events/s)",
                summary.events,
                if summary.events == 1 { "" } else { "s" },
                summary.succeeded,
                summary.failed,
                summary.events as f64 / seconds.max(1e-9)
            );
            if summary.failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
        }
        Err(message) => fail(message),
    }
}

fn run_test<H: Handler, B: Fn(&Options) -> Result<H, StartError>>(
    build: B,
    tests: fn() -> Vec<TestCase>,
    name: &str,
    flags: &Flags,
) -> ExitCode {
    // Test blocks run the whole graph in this process: streams and the error stream in memory.
    let handler = match options(flags)
        .map(|mut options| {
            options.memory_streams = Some(MemoryStreams::new());
            // Test blocks see what callers see: a 5xx's cause goes to the log (shown on standard
            // error), never into the answer a test block checks.
            options
        })
        .map_err(|e| e.to_string())
        .and_then(|options| build(&options).map_err(|e| e.to_string()))
    {
        Ok(handler) => handler,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    let server = MockServer::new(handler);
    let outcomes = run_tests(&server, &tests());
    print!("{}", report(&outcomes));
    if let Some(path) = flag(flags, "junit")
        && let Err(error) = std::fs::write(path, junit(name, &outcomes))
    {
        eprintln!("error: cannot write {path}: {error}");
        return ExitCode::from(2);
    }
    if outcomes.iter().any(|o| o.failure.is_some()) { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every flag the usage text shows is one its command takes: the usage is what users read.
    #[test]
    fn every_flag_in_the_usage_is_accepted() {
        let mut command = "serve";
        for line in USAGE.lines().take_while(|line| !line.starts_with("Without")) {
            if let Some(rest) = line.trim_start().strip_prefix("BINARY ") {
                command = rest.split_whitespace().next().unwrap_or_default();
            }
            for flag in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')).filter(|w| w.starts_with("--")) {
                let value = if SWITCHES.contains(&&flag[2..]) { None } else { Some("1".to_string()) };
                let args: Vec<String> =
                    [Some(command.to_string()), Some(flag.to_string()), value].into_iter().flatten().collect();
                assert!(parse(&args).is_ok(), "`{command} {flag}` is in the usage but refused: {:?}", parse(&args));
            }
        }
    }

    /// And the other way: every flag a command takes is in the usage, so none is hidden.
    #[test]
    fn every_flag_a_command_takes_is_in_the_usage() {
        for (command, flags) in [("serve", SERVE_FLAGS), ("test", TEST_FLAGS), ("run", RUN_FLAGS)] {
            let section: String = USAGE
                .lines()
                .skip_while(|line| !line.trim_start().starts_with(&format!("BINARY {command}")))
                .take_while(|line| !line.starts_with("Without"))
                .enumerate()
                .take_while(|(index, line)| *index == 0 || !line.trim_start().starts_with("BINARY "))
                .map(|(_, line)| line)
                .collect();
            for flag in flags {
                assert!(
                    section.contains(&format!("--{flag} ")) || section.contains(&format!("--{flag}]")),
                    "`{command} --{flag}` is not in the usage"
                );
            }
        }
    }
}
