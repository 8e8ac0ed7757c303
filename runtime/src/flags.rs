//! The flags of a generated binary's commands, by name: read by the binary's parser (`cli.rs`)
//! and, when it is built, by the `graphc` binary (compiler/src/bin/graphc/main.rs includes this
//! file), which refuses a flag `serve` does not take before it builds anything. Plain data with
//! no dependencies, so that both can read it.

/// `serve`'s flags; those in [`SWITCHES`] take no value.
pub const SERVE: &[&str] = &[
    "base",
    "host",
    "port",
    "param",
    "secrets-file",
    "body-limit",
    "deadline-ms",
    "concurrency",
    "header-timeout-ms",
    "max-connections",
    "max-headers",
    "max-header-bytes",
    "shutdown-timeout-ms",
    "blocking-threads",
    "blocking-inline-us",
    "expose-errors",
    "log-level",
    "log-format",
    "access-log",
    "function",
    "redis",
    "wait-replicas",
    "consumer",
    "batch",
    "claim-idle-ms",
    "claim-every-ms",
    "metrics-port",
    "dedupe-window-ms",
    "grpc-port",
    "auth-tokens-file",
    "auth-header",
    "tls-cert",
    "tls-key",
    "tls-client-ca",
    "upstream-ca",
];
/// `test`'s flags.
pub const TEST: &[&str] = &["base", "junit"];
/// `run`'s flags.
pub const RUN: &[&str] = &[
    "base",
    "input",
    "output",
    "errors",
    "concurrency",
    "blocking-threads",
    "blocking-inline-us",
    "param",
    "secrets-file",
    "redis",
    "wait-replicas",
    "upstream-ca",
    "log-level",
];
/// The flags that take no value.
pub const SWITCHES: &[&str] = &["expose-errors", "access-log"];
