//! `graphc deploy`'s objects for every example graph: each file parses back into its typed
//! Kubernetes struct, every function has exactly one Deployment and one budget, each stream
//! consumer's scaler reads the streams and group the graph wires it to, no secret's value is
//! written anywhere, and each example's files are a golden snapshot.

use graphc_deploy::{DeployOptions, ScaledObject, manifests};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn examples() -> Vec<PathBuf> {
    let mut graphs: Vec<PathBuf> = std::fs::read_dir(workspace().join("examples"))
        .expect("examples")
        .flat_map(|dir| std::fs::read_dir(dir.expect("an entry").path()).into_iter().flatten())
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "graph"))
        .collect();
    graphs.sort();
    graphs
}

fn checked(path: &Path) -> graphc::ir::Graph {
    let text = std::fs::read_to_string(path).expect("the example");
    graphc::check_source(&text).unwrap_or_else(|d| panic!("{}: {d:#?}", path.display())).graph
}

#[test]
fn every_examples_objects_parse_back_and_match_its_functions_and_streams() {
    let graphs = examples();
    assert!(graphs.len() >= 8, "{graphs:?}");
    let options =
        DeployOptions { image: "registry.example/app:1".into(), namespace: Some("shop".into()), ..Default::default() };
    for path in graphs {
        let graph = checked(&path);
        let files = manifests(&graph, &options).expect("manifests");
        let of_kind = |suffix: &str| files.iter().filter(|f| f.name.ends_with(suffix)).collect::<Vec<_>>();
        let deployments: Vec<Deployment> =
            of_kind(".deployment.json").iter().map(|f| serde_json::from_str(&f.text).expect("a Deployment")).collect();
        assert_eq!(deployments.len(), graph.functions.len(), "{}: one Deployment per function", path.display());
        for (deployment, function) in deployments.iter().zip(&graph.functions) {
            let spec = deployment.spec.as_ref().expect("a spec");
            let container = &spec.template.spec.as_ref().expect("a pod").containers[0];
            let args = container.args.as_ref().expect("args");
            assert_eq!(&args[..3], ["serve", "--function", function.name.as_str()], "{}", path.display());
            assert_eq!(container.image.as_deref(), Some("registry.example/app:1"));
            assert_eq!(deployment.metadata.namespace.as_deref(), Some("shop"));
            let live = container.liveness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("a probe");
            assert_eq!(live.path.as_deref(), Some("/v2/health/live"));
            // Only references reach the container: no value comes from the graph or the machine.
            for env in container.env.iter().flatten() {
                assert!(env.value.is_none(), "{}: {} has a value", path.display(), env.name);
            }
        }
        let budgets: Vec<PodDisruptionBudget> =
            of_kind(".pdb.json").iter().map(|f| serde_json::from_str(&f.text).expect("a budget")).collect();
        assert_eq!(budgets.len(), graph.functions.len());
        let _: Service = serde_json::from_str(&of_kind("service.json")[0].text).expect("a Service");
        for file in of_kind(".configmap.json") {
            let _: ConfigMap = serde_json::from_str(&file.text).expect("a ConfigMap");
        }
        // The scalers: exactly the child functions, on the streams the graph's queues declare.
        let scalers: Vec<ScaledObject> = of_kind(".scaledobject.json")
            .iter()
            .map(|f| serde_json::from_str(&f.text).expect("a ScaledObject"))
            .collect();
        let children: Vec<&graphc::ir::Function> = graph.functions.iter().filter(|f| f.reads.is_some()).collect();
        assert_eq!(scalers.len(), children.len(), "{}", path.display());
        for (scaler, function) in scalers.iter().zip(children) {
            let queue = graph.node(function.reads.expect("reads"));
            let graphc::ir::NodeKind::Queue(queue) = &queue.kind else { panic!("not a queue") };
            let graphc::ir::Queue::Stream { stream, shards, .. } = &**queue else { panic!("not a stream") };
            let streams: Vec<&str> = scaler.spec.triggers.iter().map(|t| t.metadata["stream"].as_str()).collect();
            let expected: Vec<String> = if *shards > 1 {
                (0..*shards).map(|shard| format!("{stream}:{shard}")).collect()
            } else {
                vec![stream.clone()]
            };
            assert_eq!(streams, expected, "{}", path.display());
            assert!(
                scaler
                    .spec
                    .triggers
                    .iter()
                    .all(|t| t.metadata["consumerGroup"] == function.name && t.kind == "redis-streams")
            );
        }
        let kustomization = &files.iter().find(|f| f.name == "kustomization.yaml").expect("a kustomization").text;
        for file in files.iter().filter(|f| f.name.ends_with(".json")) {
            assert!(kustomization.contains(&format!("  - {}\n", file.name)), "{} lists {}", path.display(), file.name);
        }
    }
}

#[test]
fn each_examples_objects_are_a_golden_snapshot() {
    for path in examples() {
        let graph = checked(&path);
        let file = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let files = manifests(&graph, &DeployOptions { graph_file: file, ..Default::default() }).expect("manifests");
        let text: String = files.iter().map(|f| format!("=== {}\n{}", f.name, f.text)).collect();
        // Named by folder and file: two examples' files, or graphs, may share a name.
        let folder =
            path.parent().and_then(|p| p.file_name()).map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        insta::assert_snapshot!(format!("{folder}-{stem}"), text);
    }
}

#[test]
fn graphc_deploy_writes_the_files_and_no_secret_value() {
    let out = workspace().join("target/graphc-deploy-test");
    let _ = std::fs::remove_dir_all(&out);
    let graph = out.join("secrets.graph");
    std::fs::create_dir_all(&out).expect("a folder");
    std::fs::write(
        &graph,
        "graph shop {\n    topology = flow;\n    engine = async;\n    param threshold: float = 0.5;\n    secret API_TOKEN;\n    function worker;\n    step take = map(body);\n    queue jobs = stream(url = \"redis://redis:6379/jobs\", shards = 3);\n    step work = map(body) { function = worker; }\n    take -> jobs -> work;\n}\n",
    )
    .expect("writes the graph");
    let output = Command::new(env!("CARGO_BIN_EXE_graphc-deploy"))
        .arg(&graph)
        .args(["--out", &out.join("k8s").display().to_string(), "--namespace", "shop", "--max-replicas", "7"])
        .env("API_TOKEN", "the-token-value-never-written")
        .env("GRAPHC_REDIS_URL", "redis://:password-never-written@redis:6379")
        .output()
        .expect("graphc-deploy runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let listed = String::from_utf8_lossy(&output.stdout);
    for name in [
        "shop.deployment.json",
        "worker.deployment.json",
        "worker.scaledobject.json",
        "kustomization.yaml",
        "Dockerfile",
    ] {
        assert!(listed.contains(name), "{listed}");
    }
    for entry in std::fs::read_dir(out.join("k8s")).expect("written") {
        let text = std::fs::read_to_string(entry.expect("a file").path()).expect("text");
        assert!(!text.contains("never-written"), "a secret's value was written: {text}");
    }
    let scaler: ScaledObject =
        serde_json::from_str(&std::fs::read_to_string(out.join("k8s/worker.scaledobject.json")).expect("the scaler"))
            .expect("parses");
    assert_eq!(scaler.spec.max_replica_count, 7);
    assert_eq!(scaler.spec.triggers.len(), 3, "one trigger per shard");
    let deployment: Deployment =
        serde_json::from_str(&std::fs::read_to_string(out.join("k8s/worker.deployment.json")).expect("it"))
            .expect("parses");
    let env = deployment.spec.expect("spec").template.spec.expect("pod").containers[0].env.clone().expect("env");
    let token = env.iter().find(|e| e.name == "API_TOKEN").expect("the secret's reference");
    let reference = token.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).expect("a Secret reference");
    assert_eq!((reference.name.as_str(), reference.key.as_str()), ("shop-secrets", "API_TOKEN"));
    assert!(env.iter().any(|e| e.name == "GRAPHC_PARAM_THRESHOLD"));

    let help = Command::new(env!("CARGO_BIN_EXE_graphc-deploy")).arg("--help").output().expect("runs");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("usage: graphc deploy FILE --out DIR"));

    // A graph with a mistake writes nothing and says why.
    std::fs::write(&graph, "graph shop { step a = map(body); a -> nope; }\n").expect("writes");
    let failed = Command::new(env!("CARGO_BIN_EXE_graphc-deploy"))
        .arg(&graph)
        .args(["--out", &out.join("none").display().to_string()])
        .output()
        .expect("runs");
    assert_eq!(failed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("nope"));
    assert!(!out.join("none").exists());
}

#[test]
fn on_a_redis_cluster_consumers_scale_on_the_clusters_streams_and_writes_wait_for_replicas() {
    let text = std::fs::read_to_string(workspace().join("examples/distributed/distributed.graph")).expect("example");
    let on_cluster = text.replace("redis://127.0.0.1:6379/", "redis+cluster://10.0.0.1:7000,10.0.0.2:7000/");
    for (graph, options) in [
        (checked_text(&text), DeployOptions { redis_cluster: true, wait_replicas: 1, ..Default::default() }),
        (checked_text(&on_cluster), DeployOptions { wait_replicas: 1, ..Default::default() }),
    ] {
        let files = manifests(&graph, &options).expect("manifests");
        let scalers: Vec<ScaledObject> = files
            .iter()
            .filter(|f| f.name.ends_with(".scaledobject.json"))
            .map(|f| serde_json::from_str(&f.text).expect("a ScaledObject"))
            .collect();
        let triggers: Vec<(&str, &str)> = scalers
            .iter()
            .flat_map(|scaler| &scaler.spec.triggers)
            .map(|t| (t.kind.as_str(), t.metadata["stream"].as_str()))
            .collect();
        assert_eq!(
            triggers,
            [
                ("redis-cluster-streams", "incoming:0"),
                ("redis-cluster-streams", "incoming:1"),
                ("redis-cluster-streams", "enriched")
            ]
        );
        assert!(
            scalers
                .iter()
                .flat_map(|s| &s.spec.triggers)
                .all(|t| t.metadata["addressesFromEnv"] == "GRAPHC_REDIS_ADDRESSES")
        );
        for file in files.iter().filter(|f| f.name.ends_with(".deployment.json")) {
            let deployment: Deployment = serde_json::from_str(&file.text).expect("a Deployment");
            let container = &deployment.spec.expect("spec").template.spec.expect("pod").containers[0];
            let args = container.args.clone().expect("args");
            assert!(args.windows(2).any(|pair| pair == ["--wait-replicas", "1"]), "{args:?}");
            let env: Vec<&str> = container.env.iter().flatten().map(|env| env.name.as_str()).collect();
            assert!(env.contains(&"GRAPHC_REDIS_ADDRESSES") && !env.contains(&"GRAPHC_REDIS_ADDRESS"), "{env:?}");
        }
        let kustomization = &files.iter().find(|f| f.name == "kustomization.yaml").expect("kustomization").text;
        assert!(kustomization.contains("--from-literal=addresses="), "{kustomization}");
    }
}

fn checked_text(text: &str) -> graphc::ir::Graph {
    graphc::check_source(text).unwrap_or_else(|d| panic!("{d:#?}")).graph
}
