//! Kubernetes objects for a checked graph, made from its IR so that they cannot disagree with
//! it: per function a Deployment (the generated binary's `serve --function F`, Redis and secrets
//! from Secret references only, parameters from a ConfigMap, probes on the health paths, the
//! termination grace from the shutdown timeout) and a PodDisruptionBudget; a Service for the
//! root's ports; for every function that consumes a stream, a KEDA ScaledObject on the
//! redis-streams scaler, one trigger per shard; a kustomization and a Dockerfile. Objects are
//! k8s-openapi's typed structs, written as JSON (which kubectl and kustomize read as YAML).
//! No secret value is ever written: the Secrets are named, and made by the operator.

use graphc::ir::{self, Expr, NodeKind};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapKeySelector, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SecretKeySelector, SecurityContext, Service, ServicePort,
    ServiceSpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// How the graph is deployed: what the command line says.
#[derive(Clone, Debug)]
pub struct DeployOptions {
    /// The container image that holds the graph's binary (the Dockerfile builds it).
    pub image: String,
    /// The namespace the objects go in; none: the one kubectl is pointed at.
    pub namespace: Option<String>,
    /// Each container's CPU request.
    pub cpu: String,
    /// Each container's memory request.
    pub memory: String,
    /// Replicas of each function's Deployment (a consumer's until its scaler takes over).
    pub replicas: u32,
    /// Most replicas a consumer's scaler makes.
    pub max_replicas: u32,
    /// Pending entries per replica the scaler aims at (KEDA's `pendingEntriesCount`).
    pub pending_entries: u32,
    /// The binary's `--shutdown-timeout-ms`: the termination grace is this and a margin.
    pub shutdown_timeout_ms: u64,
    /// The root's gRPC port, when it serves the protocol over gRPC.
    pub grpc_port: Option<u32>,
    /// The graph's file name in its folder (the Dockerfile builds it).
    pub graph_file: String,
    /// Redis is a Redis Cluster (`--redis-cluster`, or the graph's queues name one): the
    /// scalers are KEDA's `redis-cluster-streams`, on the cluster's nodes.
    pub redis_cluster: bool,
    /// The binary's `--wait-replicas`: writes wait for this many replicas (0: none).
    pub wait_replicas: u32,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            image: "graphc-app:latest".to_string(),
            namespace: None,
            cpu: "250m".to_string(),
            memory: "256Mi".to_string(),
            replicas: 1,
            max_replicas: 10,
            pending_entries: 100,
            shutdown_timeout_ms: 30_000,
            grpc_port: None,
            graph_file: "graph.graph".to_string(),
            redis_cluster: false,
            wait_replicas: 0,
        }
    }
}

/// The root's HTTP port, and a child's metrics and health port, in the container.
pub const HTTP_PORT: i32 = 8080;
/// A child function's `--metrics-port`: its `/metrics` and health probes.
pub const PROBE_PORT: i32 = 9090;
/// Where the graph's folder (its model files) is in the image: the binary's `--base`.
pub const BASE: &str = "/app/graph";

/// One written file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    /// Its name in the output folder.
    pub name: String,
    /// Its contents.
    pub text: String,
}

/// Why the objects could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// An object did not serialise (a bug: every object is plain data).
    #[error("cannot write {what}: {source}")]
    Serialise {
        /// The object.
        what: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// KEDA's ScaledObject (keda.sh/v1alpha1): not a Kubernetes API type, so not in k8s-openapi;
/// the fields graphc sets, typed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObject {
    /// `keda.sh/v1alpha1`
    pub api_version: String,
    /// `ScaledObject`
    pub kind: String,
    /// Its name and labels.
    pub metadata: ObjectMeta,
    /// What it scales, and on what.
    pub spec: ScaledObjectSpec,
}

/// A ScaledObject's spec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectSpec {
    /// The Deployment it scales.
    pub scale_target_ref: ScaleTargetRef,
    /// Fewest replicas.
    pub min_replica_count: u32,
    /// Most replicas.
    pub max_replica_count: u32,
    /// One per stream the function reads.
    pub triggers: Vec<ScaleTrigger>,
}

/// The Deployment a ScaledObject scales.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleTargetRef {
    /// Its name.
    pub name: String,
}

/// One scaler: KEDA's `redis-streams` on a stream and its consumer group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScaleTrigger {
    /// `redis-streams`
    #[serde(rename = "type")]
    pub kind: String,
    /// The scaler's settings: `addressFromEnv`, `stream`, `consumerGroup`, `pendingEntriesCount`.
    pub metadata: BTreeMap<String, String>,
}

/// A Kubernetes name from a graph's: lower case, `-` for `_`.
pub fn dns_name(name: &str) -> String {
    name.chars().map(|c| if c == '_' { '-' } else { c.to_ascii_lowercase() }).collect()
}

/// The Secret holding the Redis server's URL (`url`, for the binary) and `host:port` (`address`,
/// for KEDA's scaler; on a cluster `addresses`, the nodes' `host:port,host:port`); the operator
/// makes it.
pub fn redis_secret(graph: &ir::Graph) -> String {
    format!("{}-redis", dns_name(&graph.name))
}

/// The Secret holding the graph's secrets, one key each, as the graph names them.
pub fn secrets_secret(graph: &ir::Graph) -> String {
    format!("{}-secrets", dns_name(&graph.name))
}

/// The ConfigMap holding the graph's parameters, one key each, as JSON.
pub fn params_config_map(graph: &ir::Graph) -> String {
    format!("{}-params", dns_name(&graph.name))
}

/// A function's objects' name: the graph's for the root, `graph-function` for a child.
pub fn object_name(graph: &ir::Graph, function: &ir::Function) -> String {
    match function.reads {
        None => dns_name(&graph.name),
        Some(_) => format!("{}-{}", dns_name(&graph.name), dns_name(&function.name)),
    }
}

/// What one function consumes: its stream queue's streams (one per shard).
#[derive(Clone, Debug, PartialEq)]
pub struct Consumes {
    /// The streams, `NAME` or `NAME:0` ... `NAME:N-1`.
    pub streams: Vec<String>,
    /// The consumer group: the function's name.
    pub group: String,
}

/// The streams a child function reads, from the IR.
pub fn consumes(graph: &ir::Graph, function: &ir::Function) -> Option<Consumes> {
    let queue = graph.nodes.get(function.reads?.0 as usize)?;
    let NodeKind::Queue(queue) = &queue.kind else { return None };
    let ir::Queue::Stream { stream, shards, .. } = &**queue else { return None };
    let streams = match shards {
        0 | 1 => vec![stream.clone()],
        n => (0..*n).map(|shard| format!("{stream}:{shard}")).collect(),
    };
    Some(Consumes { streams, group: function.name.clone() })
}

/// Whether the graph talks to Redis at all: stream queues, stream triggers, answers or the
/// error stream.
fn uses_redis(graph: &ir::Graph) -> bool {
    graph.features.contains(&ir::RuntimeFeature::Streams)
}

/// Whether Redis is a cluster: the options say so, or a stream queue of the graph names one
/// (`redis+cluster://`, `rediss+cluster://`).
pub fn on_cluster(graph: &ir::Graph, options: &DeployOptions) -> bool {
    options.redis_cluster
        || graph.nodes.iter().any(|node| {
            matches!(&node.kind, NodeKind::Queue(queue)
                if matches!(&**queue, ir::Queue::Stream { url, .. } if url.contains("+cluster://")))
        })
}

/// A parameter's default as JSON, when it is a constant.
fn constant(expr: &Expr) -> Option<Value> {
    Some(match expr {
        Expr::Null => Value::Null,
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Int(i) => Value::from(*i),
        Expr::Float(f) => Value::from(*f),
        Expr::Str(s) => Value::String(s.clone()),
        Expr::Array(items) => Value::Array(items.iter().map(constant).collect::<Option<_>>()?),
        Expr::Object(fields) => {
            Value::Object(fields.iter().map(|(k, v)| Some((k.to_string(), constant(v)?))).collect::<Option<_>>()?)
        }
        _ => return None,
    })
}

fn labels(graph: &ir::Graph, function: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), dns_name(&graph.name)),
        ("app.kubernetes.io/component".to_string(), dns_name(function)),
        ("app.kubernetes.io/managed-by".to_string(), "graphc".to_string()),
    ])
}

fn metadata(name: String, labels: BTreeMap<String, String>, options: &DeployOptions) -> ObjectMeta {
    ObjectMeta { name: Some(name), namespace: options.namespace.clone(), labels: Some(labels), ..Default::default() }
}

fn secret_env(name: &str, secret: String, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret, key: key.to_string(), optional: Some(false) }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Each function's container environment: Redis from its Secret, the graph's secrets from
/// theirs, parameters from the ConfigMap. Only references: no value.
fn environment(graph: &ir::Graph, options: &DeployOptions) -> Vec<EnvVar> {
    let mut env = Vec::new();
    if uses_redis(graph) {
        env.push(secret_env("GRAPHC_REDIS_URL", redis_secret(graph), "url"));
        if on_cluster(graph, options) {
            env.push(secret_env("GRAPHC_REDIS_ADDRESSES", redis_secret(graph), "addresses"));
        } else {
            env.push(secret_env("GRAPHC_REDIS_ADDRESS", redis_secret(graph), "address"));
        }
    }
    for secret in &graph.secrets {
        env.push(secret_env(secret, secrets_secret(graph), secret));
    }
    for param in &graph.params {
        env.push(EnvVar {
            // The binary reads the name after the prefix in lower case, as parameters are written.
            name: format!("GRAPHC_PARAM_{}", param.name.to_uppercase()),
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: params_config_map(graph),
                    key: param.name.to_string(),
                    optional: Some(true),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    env
}

fn probe(path: &str, port: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::Int(port),
            ..Default::default()
        }),
        period_seconds: Some(10),
        ..Default::default()
    }
}

/// A function's Deployment.
pub fn deployment(graph: &ir::Graph, function: &ir::Function, options: &DeployOptions) -> Deployment {
    let root = function.reads.is_none();
    let name = object_name(graph, function);
    let labels = labels(graph, &function.name);
    let mut args = vec!["serve".to_string(), "--function".to_string(), function.name.clone()];
    // Every port listens beyond the pod, where the kubelet's probes and the Service reach it.
    args.extend(["--base".to_string(), BASE.to_string(), "--host".to_string(), "0.0.0.0".to_string()]);
    args.extend(["--shutdown-timeout-ms".to_string(), options.shutdown_timeout_ms.to_string()]);
    if options.wait_replicas > 0 && uses_redis(graph) {
        args.extend(["--wait-replicas".to_string(), options.wait_replicas.to_string()]);
    }
    let mut ports = Vec::new();
    let probe_port = if root {
        args.extend(["--port".to_string(), HTTP_PORT.to_string()]);
        ports.push(ContainerPort { name: Some("http".into()), container_port: HTTP_PORT, ..Default::default() });
        if let Some(grpc) = options.grpc_port {
            args.extend(["--grpc-port".to_string(), grpc.to_string()]);
            ports.push(ContainerPort { name: Some("grpc".into()), container_port: grpc as i32, ..Default::default() });
        }
        HTTP_PORT
    } else {
        args.extend(["--metrics-port".to_string(), PROBE_PORT.to_string()]);
        ports.push(ContainerPort { name: Some("metrics".into()), container_port: PROBE_PORT, ..Default::default() });
        PROBE_PORT
    };
    let requests = BTreeMap::from([
        ("cpu".to_string(), Quantity(options.cpu.clone())),
        ("memory".to_string(), Quantity(options.memory.clone())),
    ]);
    let container = Container {
        name: dns_name(&function.name),
        image: Some(options.image.clone()),
        args: Some(args),
        env: Some(environment(graph, options)),
        ports: Some(ports),
        liveness_probe: Some(probe("/v2/health/live", probe_port)),
        readiness_probe: Some(probe("/v2/health/ready", probe_port)),
        resources: Some(ResourceRequirements { requests: Some(requests), ..Default::default() }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    // The binary finishes its accepted work within the shutdown timeout; Kubernetes waits a
    // little longer before it kills.
    let grace = i64::try_from(options.shutdown_timeout_ms.div_ceil(1000)).unwrap_or(i64::MAX).saturating_add(5);
    Deployment {
        metadata: metadata(name, labels.clone(), options),
        spec: Some(DeploymentSpec {
            replicas: Some(options.replicas as i32),
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), ..Default::default() }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    termination_grace_period_seconds: Some(grace),
                    security_context: Some(PodSecurityContext { run_as_non_root: Some(true), ..Default::default() }),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The root's Service: its HTTP port, and its gRPC port when it serves one.
pub fn service(graph: &ir::Graph, options: &DeployOptions) -> Service {
    let labels = labels(graph, &graph.name);
    let mut ports = vec![ServicePort {
        name: Some("http".into()),
        port: 80,
        target_port: Some(IntOrString::String("http".into())),
        ..Default::default()
    }];
    if let Some(grpc) = options.grpc_port {
        ports.push(ServicePort {
            name: Some("grpc".into()),
            port: grpc as i32,
            target_port: Some(IntOrString::String("grpc".into())),
            ..Default::default()
        });
    }
    Service {
        metadata: metadata(dns_name(&graph.name), labels.clone(), options),
        spec: Some(ServiceSpec { selector: Some(labels), ports: Some(ports), ..Default::default() }),
        ..Default::default()
    }
}

/// A function's disruption budget: a drain takes one pod at a time.
pub fn disruption_budget(graph: &ir::Graph, function: &ir::Function, options: &DeployOptions) -> PodDisruptionBudget {
    let labels = labels(graph, &function.name);
    PodDisruptionBudget {
        metadata: metadata(object_name(graph, function), labels.clone(), options),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector { match_labels: Some(labels), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A consumer's scaler: KEDA's redis-streams (redis-cluster-streams on a cluster), one trigger
/// per stream it reads, on its group's pending entries.
pub fn scaled_object(graph: &ir::Graph, function: &ir::Function, options: &DeployOptions) -> Option<ScaledObject> {
    let consumes = consumes(graph, function)?;
    let name = object_name(graph, function);
    let (kind, address) = if on_cluster(graph, options) {
        ("redis-cluster-streams", ("addressesFromEnv", "GRAPHC_REDIS_ADDRESSES"))
    } else {
        ("redis-streams", ("addressFromEnv", "GRAPHC_REDIS_ADDRESS"))
    };
    let triggers = consumes
        .streams
        .iter()
        .map(|stream| ScaleTrigger {
            kind: kind.to_string(),
            metadata: BTreeMap::from([
                (address.0.to_string(), address.1.to_string()),
                ("stream".to_string(), stream.clone()),
                ("consumerGroup".to_string(), consumes.group.clone()),
                ("pendingEntriesCount".to_string(), options.pending_entries.to_string()),
            ]),
        })
        .collect();
    Some(ScaledObject {
        api_version: "keda.sh/v1alpha1".to_string(),
        kind: "ScaledObject".to_string(),
        metadata: metadata(name.clone(), labels(graph, &function.name), options),
        spec: ScaledObjectSpec {
            scale_target_ref: ScaleTargetRef { name },
            min_replica_count: options.replicas.max(1),
            max_replica_count: options.max_replicas.max(options.replicas.max(1)),
            triggers,
        },
    })
}

/// The parameters' ConfigMap: each default as JSON, which `GRAPHC_PARAM_<NAME>` takes.
pub fn config_map(graph: &ir::Graph, options: &DeployOptions) -> ConfigMap {
    let data = graph
        .params
        .iter()
        .filter_map(|param| Some((param.name.to_string(), constant(param.default.as_ref()?)?.to_string())))
        .collect();
    ConfigMap {
        metadata: metadata(params_config_map(graph), labels(graph, &graph.name), options),
        data: Some(data),
        ..Default::default()
    }
}

fn json(what: &str, value: &impl Serialize) -> Result<String, DeployError> {
    serde_json::to_string_pretty(value)
        .map(|text| text + "\n")
        .map_err(|source| DeployError::Serialise { what: what.to_string(), source })
}

/// Every file `graphc deploy` writes, in order.
pub fn manifests(graph: &ir::Graph, options: &DeployOptions) -> Result<Vec<File>, DeployError> {
    let mut files = Vec::new();
    let mut push = |name: String, text: String| files.push(File { name, text });
    if !graph.params.is_empty() {
        push("params.configmap.json".into(), json("the ConfigMap", &config_map(graph, options))?);
    }
    for function in &graph.functions {
        let name = dns_name(&function.name);
        push(format!("{name}.deployment.json"), json("a Deployment", &deployment(graph, function, options))?);
        push(format!("{name}.pdb.json"), json("a PodDisruptionBudget", &disruption_budget(graph, function, options))?);
        if let Some(scaler) = scaled_object(graph, function, options) {
            push(format!("{name}.scaledobject.json"), json("a ScaledObject", &scaler)?);
        }
    }
    push("service.json".into(), json("the Service", &service(graph, options))?);
    let resources: Vec<String> = files.iter().map(|file| file.name.clone()).collect();
    let mut kustomization =
        String::from("# Written by `graphc deploy` from the checked graph; `kubectl apply -k .` applies it.\n");
    kustomization.push_str("# It needs the Secrets it names (no value is written here):\n");
    if uses_redis(graph) && on_cluster(graph, options) {
        kustomization.push_str(&format!(
            "#   kubectl create secret generic {} --from-literal=url=redis+cluster://HOST1:6379,HOST2:6379 --from-literal=addresses=HOST1:6379,HOST2:6379\n",
            redis_secret(graph)
        ));
    } else if uses_redis(graph) {
        kustomization.push_str(&format!(
            "#   kubectl create secret generic {} --from-literal=url=redis://HOST:6379 --from-literal=address=HOST:6379\n",
            redis_secret(graph)
        ));
    }
    if !graph.secrets.is_empty() {
        let keys: Vec<String> = graph.secrets.iter().map(|s| format!("--from-literal={s}=...")).collect();
        kustomization.push_str(&format!(
            "#   kubectl create secret generic {} {}\n",
            secrets_secret(graph),
            keys.join(" ")
        ));
    }
    kustomization.push_str("# and KEDA (keda.sh) for the ScaledObjects.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n");
    if let Some(namespace) = &options.namespace {
        kustomization.push_str(&format!("namespace: {namespace}\n"));
    }
    kustomization.push_str("resources:\n");
    for resource in resources {
        kustomization.push_str(&format!("  - {resource}\n"));
    }
    files.push(File { name: "kustomization.yaml".into(), text: kustomization });
    files.push(File { name: "Dockerfile".into(), text: dockerfile(options) });
    Ok(files)
}

/// A two-stage image: the first builds graphc and the graph's binary with it; the second holds
/// the binary and the graph's folder (its model files), run as a user without privileges.
pub fn dockerfile(options: &DeployOptions) -> String {
    format!(
        "# Written by `graphc deploy`. Build from a folder holding graphc's source as `graphc/` and the\n\
         # graph's folder as `graph/` (its .graph file, model files and handler crate):\n\
         #   docker build -t IMAGE -f Dockerfile .\n\
         FROM rust:1-slim-bookworm AS build\n\
         WORKDIR /src\n\
         COPY graphc/ graphc/\n\
         RUN cargo install --locked --path graphc/compiler --root /usr/local\n\
         COPY graph/ graph/\n\
         RUN cp \"$(graphc build graph/{file} --release | tail -1)\" /graphc-app\n\
         \n\
         FROM debian:bookworm-slim\n\
         RUN useradd --system --uid 10001 graphc\n\
         COPY --from=build /graphc-app /usr/local/bin/graphc-app\n\
         COPY --from=build /src/graph/ {BASE}/\n\
         USER 10001\n\
         EXPOSE {HTTP_PORT} {PROBE_PORT}\n\
         ENTRYPOINT [\"/usr/local/bin/graphc-app\"]\n",
        file = options.graph_file,
    )
}
