//! What the log says, as an operator reads it: the test runs itself again as a child process
//! with the generated binaries' logging installed, and reads the child's standard error. A
//! caller's 4xx is no `ERROR`; a step's panic is one line per event, its declared secret
//! redacted, and Rust's default panic hook prints nothing; a new cause is logged even after
//! another cause has used up its lines; a panic outside any step goes through the log too.

use graphc_runtime::logging::{LogFormat, init};
use graphc_runtime::*;
use serde_json::{Value, json};

const CHILD: &str = "GRAPHC_LOGS_TEST_CHILD";
const SECRET_VALUE: &str = "s3cr3t-t0ken-value";

/// The child: serves a graph whose step fails as the body asks, and sends it requests.
fn child() {
    init("info", LogFormat::Json).expect("logging");
    let step = FullEvent(|event: &mut Event, context: &Context| -> Result<(), StepError> {
        match event.body["fail"].as_str() {
            Some("refuse") => Err(StepError::bad_request("the order has no `qty`")),
            Some("panic") => {
                let token = context.get_secret("API_TOKEN").unwrap_or_default();
                panic!("the upstream refused the token {token}")
            }
            Some(other) => Err(StepError::new(format!("a cause of its own: {other}"))),
            None => Ok(()),
        }
    });
    let context = Context::new("logs").with_allowed_secrets(&["API_TOKEN"]);
    let server = MockServer::new(SyncPipeline::new(StepNode::new("work", step, End), context));
    let send = |fail: &str| server.test("/", json!({ "fail": fail })).status;
    assert_eq!(send("refuse"), 400);
    assert_eq!(send("panic"), 500);
    assert_eq!(send("panic"), 500);
    for _ in 0..15 {
        assert_eq!(send("repeated"), 500);
    }
    assert_eq!(send("new"), 500);
    let outside = std::thread::Builder::new().name("outside".into()).spawn(|| panic!("a bug outside any step"));
    assert!(outside.expect("a thread").join().is_err());
}

#[test]
fn the_log_holds_each_cause_once_per_event_without_secrets_or_callers_mistakes() {
    if std::env::var_os(CHILD).is_some() {
        child();
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", "the_log_holds_each_cause_once_per_event_without_secrets_or_callers_mistakes", "--nocapture"])
        .env(CHILD, "1")
        .env("API_TOKEN", SECRET_VALUE)
        .env_remove("RUST_LOG")
        .output()
        .expect("the child runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}\n{}", String::from_utf8_lossy(&output.stdout));
    let lines: Vec<Value> = stderr.lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    let with = |text: &str| -> Vec<&Value> {
        lines.iter().filter(|line| line["message"].as_str().is_some_and(|m| m.contains(text))).collect()
    };
    assert!(!stderr.contains("panicked at"), "Rust's default hook printed:\n{stderr}");
    assert!(!stderr.contains(SECRET_VALUE), "a secret reached the log:\n{stderr}");
    assert!(with("has no `qty`").is_empty(), "a caller's 4xx is not logged at info:\n{stderr}");
    let panics = with("the upstream refused the token");
    assert_eq!(panics.len(), 2, "one line per event:\n{stderr}");
    assert!(
        panics
            .iter()
            .all(|line| line["level"] == "ERROR" && line["message"].as_str().is_some_and(|m| m.contains("***")))
    );
    assert_eq!(with("a cause of its own: repeated").len(), 10, "repeats of one cause are throttled:\n{stderr}");
    assert_eq!(with("a cause of its own: new").len(), 1, "a new cause is always logged:\n{stderr}");
    let outside = with("a bug outside any step");
    assert_eq!(outside.len(), 1, "{stderr}");
    assert_eq!(outside[0]["level"], "ERROR");
}
