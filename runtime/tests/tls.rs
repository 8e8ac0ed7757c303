//! The server on the open network: TLS with certificates made here (rcgen), mutual TLS, a
//! plaintext request on a TLS port, a stalled handshake, and access tokens over HTTPS, with many
//! clients at once and every answer checked.

mod common;

use common::pki::Pki;
use graphc_runtime::http::ServeOptions;
use graphc_runtime::router::{Mode, Route, Router};
use graphc_runtime::tls::ServerTls;
use graphc_runtime::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

/// Doubles each row's first value: an answer that says which request it was.
struct Double;

impl model::Model for Double {
    fn predict(&self, features: model::Features) -> Result<Vec<Value>, StepError> {
        Ok((0..features.rows).map(|row| json!(features.row(row)[0] * 2.0)).collect())
    }
}

fn pipeline() -> SyncPipeline<StepNode<Router, End>> {
    let router = Router::new("r", "/v2/models", vec![("m".into(), Route::Model(Arc::new(Double)))], Mode::Model);
    SyncPipeline::new(StepNode::new("router", router, End).responding(), Context::new("g"))
}

/// One HTTP/1.1 request over TLS on a connection of its own: the status and the body.
async fn https(
    connector: &tokio_rustls::TlsConnector,
    addr: std::net::SocketAddr,
    request: &str,
) -> std::io::Result<(u16, String)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await?;
    Ok(parse(&answer))
}

fn parse(answer: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(answer);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default();
    (status, body)
}

fn infer(value: u32, token: Option<&str>) -> String {
    let body = json!({ "inputs": [[value]] }).to_string();
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    format!(
        "POST /v2/models/m/infer HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

fn options(pki: &Pki, mutual: bool) -> ServeOptions {
    ServeOptions { tls: Some(Arc::new(ServerTls::load(pki.files(mutual)).unwrap())), ..ServeOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_over_https_each_get_their_own_answer_and_probes_answer_meanwhile() {
    let pki = Pki::new("many");
    let file = pki.dir.join("tokens");
    std::fs::write(&file, "s3cret\n").unwrap();
    let tokens = Arc::new(graphc_runtime::auth::Tokens::read(&file, None).unwrap());
    let server = common::start(pipeline(), ServeOptions { auth: Some(tokens), ..options(&pki, false) }).await;
    let connector = pki.client(false);
    // 64 callers at once: bodies of 1 to 64 rows, every seventh without its token, every fifth
    // with a body that is not JSON.
    let mut calls = tokio::task::JoinSet::new();
    for caller in 0..64u32 {
        let connector = connector.clone();
        let addr = server.addr;
        calls.spawn(async move {
            let rows: Vec<Value> = (0..=caller).map(|row| json!([caller * 100 + row])).collect();
            let body = if caller % 5 == 4 { "{ not json".to_string() } else { json!({ "inputs": rows }).to_string() };
            let auth = if caller % 7 == 6 { String::new() } else { "authorization: bearer s3cret\r\n".to_string() };
            let request = format!(
                "POST /v2/models/m/infer HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            (caller, https(&connector, addr, &request).await)
        });
    }
    // Probes on the same port while the callers are served: open, and answered.
    let probe = "GET /v2/health/live HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
    for _ in 0..8 {
        let answered = tokio::time::timeout(Duration::from_secs(5), https(&connector, server.addr, probe)).await;
        assert_eq!(answered.expect("the probe answered within 5 s").unwrap().0, 200);
    }
    while let Some(joined) = calls.join_next().await {
        let (caller, answer) = joined.unwrap();
        let (status, body) = answer.unwrap();
        if caller % 7 == 6 {
            assert_eq!(status, 401, "caller {caller}: {body}");
        } else if caller % 5 == 4 {
            assert_eq!(status, 400, "caller {caller}: {body}");
        } else {
            assert_eq!(status, 200, "caller {caller}: {body}");
            let body: Value = serde_json::from_str(&body).unwrap();
            let expected: Vec<Value> = (0..=caller).map(|row| json!(f64::from(caller * 100 + row) * 2.0)).collect();
            assert_eq!(body["outputs"], json!(expected), "caller {caller} got another's answer: {body}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn plaintext_on_a_tls_port_is_told_to_use_https_and_a_stalled_handshake_is_closed() {
    let pki = Pki::new("plain");
    let options = ServeOptions { header_timeout: Duration::from_millis(300), ..options(&pki, false) };
    let server = common::start(pipeline(), options).await;
    let mut plain = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    plain.write_all(infer(1, None).as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    plain.read_to_end(&mut answer).await.unwrap();
    let (status, body) = parse(&answer);
    assert_eq!(status, 400);
    assert!(body.contains("use https://"), "{body}");
    // A peer that opens a handshake and says no more is closed after the header timeout.
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stalled.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the stalled handshake was not closed");
    // And the server still answers.
    let (status, _) = https(&pki.client(false), server.addr, &infer(2, None)).await.unwrap();
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn mutual_tls_takes_a_client_certificate_from_the_ca_and_refuses_a_client_without_one() {
    let pki = Pki::new("mutual");
    let server = common::start(pipeline(), options(&pki, true)).await;
    let (status, _) = https(&pki.client(true), server.addr, &infer(3, None)).await.unwrap();
    assert_eq!(status, 200);
    let refused = https(&pki.client(false), server.addr, &infer(3, None)).await;
    assert!(refused.is_err() || refused.as_ref().is_ok_and(|(status, _)| *status == 0), "{refused:?}");
    server.stop().await;
}

#[tokio::test]
async fn tokens_guard_every_path_but_the_probes_over_https_and_rotate_on_reload() {
    let pki = Pki::new("tokens");
    let file = pki.dir.join("tokens");
    std::fs::write(&file, "# callers\ns3cret\nreader r3ad metadata\n").unwrap();
    let tokens = Arc::new(graphc_runtime::auth::Tokens::read(&file, None).unwrap());
    let options = ServeOptions { auth: Some(Arc::clone(&tokens)), ..options(&pki, false) };
    let server = common::start(pipeline(), options).await;
    let client = pki.client(false);
    let get = |path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
        format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{auth}connection: close\r\n\r\n")
    };
    let answer = |request: String| {
        let client = client.clone();
        let addr = server.addr;
        async move { https(&client, addr, &request).await.unwrap() }
    };
    assert_eq!(answer(infer(4, Some("s3cret"))).await.0, 200);
    let (status, body) = answer(infer(4, None)).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("Bearer"), "{body}");
    assert_eq!(answer(infer(4, Some("wrong"))).await.0, 401);
    assert_eq!(answer(infer(4, Some("r3ad"))).await.0, 403, "a reader may not infer");
    assert_eq!(answer(get("/v2/models/m", Some("r3ad"))).await.0, 200);
    assert_eq!(answer(get("/metrics", None)).await.0, 401, "metrics are not for anyone");
    assert_eq!(answer(get("/v2/health/ready", None)).await.0, 200, "probes stay open");
    // Rotated: the old token is refused from the next request on.
    std::fs::write(&file, "n3w\n").unwrap();
    tokens.reload().unwrap();
    assert_eq!(answer(infer(5, Some("s3cret"))).await.0, 401);
    assert_eq!(answer(infer(5, Some("n3w"))).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_child_functions_probe_port_takes_the_same_certificate_and_tokens() {
    let pki = Pki::new("probes");
    let file = pki.dir.join("tokens");
    std::fs::write(&file, "scraper scr4pe metrics\ncaller c4ll infer\n").unwrap();
    let tokens = Arc::new(graphc_runtime::auth::Tokens::read(&file, None).unwrap());
    let security = graphc_runtime::http::PortSecurity {
        tls: Some(Arc::new(ServerTls::load(pki.files(false)).unwrap())),
        auth: Some(tokens),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(graphc_runtime::stream::ConsumerStats::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(graphc_runtime::http::serve_probes(listener, stats, "workers".into(), security, async {
        let _ = stopped.await;
    }));
    let client = pki.client(false);
    let get = |path: &str, token: Option<&str>| {
        let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
        format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\n{auth}connection: close\r\n\r\n")
    };
    let (status, body) = https(&client, addr, &get("/metrics", Some("scr4pe"))).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("graphc_stream"), "the consumer's counters: {body}");
    assert_eq!(https(&client, addr, &get("/metrics", None)).await.unwrap().0, 401);
    assert_eq!(https(&client, addr, &get("/metrics", Some("c4ll"))).await.unwrap().0, 403, "a caller may not scrape");
    assert_eq!(https(&client, addr, &get("/v2/health/live", None)).await.unwrap().0, 200, "probes stay open");
    // Plain HTTP on the TLS port is told to use https://.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(get("/v2/health/live", None).as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    plain.read_to_end(&mut answer).await.unwrap();
    assert_eq!(parse(&answer).0, 400);
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}
