//! `graphc-deploy FILE --out DIR [--image NAME] [--namespace NS] ...`: what `graphc deploy`
//! runs. Checks the graph as `graphc check` does, then writes its Kubernetes objects.

use graphc_deploy::{DeployOptions, manifests};
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: graphc deploy FILE --out DIR [--image NAME] [--namespace NS] [--cpu Q] [--memory Q]
                     [--replicas N] [--max-replicas N] [--pending-entries N] [--shutdown-timeout-ms MS]
                     [--grpc-port PORT] [--redis-cluster] [--wait-replicas N]
--redis-cluster: the Redis the Secret names is a Redis Cluster (implied when the graph's queues name one):
the scalers use KEDA's redis-cluster-streams on the Secret's `addresses`.
--wait-replicas N: every function's writes to Redis wait for N replicas (see the binary's --wait-replicas).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == "-h" || arg == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    match run(args) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> Result<Vec<PathBuf>, String> {
    let mut file = None;
    let mut out = None;
    let mut options = DeployOptions::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} takes a value\n{USAGE}"));
        let number = |name: &str, text: String| {
            text.parse::<u32>().map_err(|_| format!("{name} takes a whole number, not `{text}`"))
        };
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--image" => options.image = value("--image")?,
            "--namespace" => options.namespace = Some(value("--namespace")?),
            "--cpu" => options.cpu = value("--cpu")?,
            "--memory" => options.memory = value("--memory")?,
            "--replicas" => options.replicas = number("--replicas", value("--replicas")?)?,
            "--max-replicas" => options.max_replicas = number("--max-replicas", value("--max-replicas")?)?,
            "--pending-entries" => options.pending_entries = number("--pending-entries", value("--pending-entries")?)?,
            "--shutdown-timeout-ms" => {
                options.shutdown_timeout_ms =
                    u64::from(number("--shutdown-timeout-ms", value("--shutdown-timeout-ms")?)?)
            }
            "--grpc-port" => options.grpc_port = Some(number("--grpc-port", value("--grpc-port")?)?),
            "--redis-cluster" => options.redis_cluster = true,
            "--wait-replicas" => options.wait_replicas = number("--wait-replicas", value("--wait-replicas")?)?,
            flag if flag.starts_with('-') => return Err(format!("unknown flag `{flag}`\n{USAGE}")),
            path if file.is_none() => file = Some(PathBuf::from(path)),
            extra => return Err(format!("one graph file at a time: `{extra}` is a second\n{USAGE}")),
        }
    }
    let (Some(file), Some(out)) = (file, out) else { return Err(USAGE.to_string()) };
    options.graph_file = file.file_name().map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    let text = std::fs::read_to_string(&file).map_err(|error| format!("cannot read {}: {error}", file.display()))?;
    let name = file.display().to_string();
    let checked = graphc::check_source(&text).map_err(|diagnostics| {
        graphc::report::render_human(&name, &text, &diagnostics, graphc::report::Style::PLAIN)
    })?;
    let around = graphc::surroundings::check(&file, &checked.graph, None);
    if !around.diagnostics.is_empty() {
        return Err(graphc::report::render_human(&name, &text, &around.diagnostics, graphc::report::Style::PLAIN));
    }
    let files = manifests(&checked.graph, &options).map_err(|error| error.to_string())?;
    std::fs::create_dir_all(&out).map_err(|error| format!("cannot make {}: {error}", out.display()))?;
    let mut written = Vec::new();
    for file in files {
        let path = out.join(&file.name);
        std::fs::write(&path, file.text).map_err(|error| format!("cannot write {}: {error}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
