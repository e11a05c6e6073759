//! `talkback azure ...`: the built binary against the fixture in Azure service mode, with the
//! connection string from the flag or from either environment variable .NET uses.

use std::process::Output;
use std::time::{Duration, SystemTime};

use talkback::azure::{AccessKey, TokenValidator};
use talkback::{HubConnection, HubConnectionBuilder};
use tokio::sync::mpsc;

mod common;

use common::azure::{service, HUB, KEY};

/// Runs `talkback azure <args>` with `env` set and both connection-string variables otherwise
/// removed.
async fn azure(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_talkback"));
    command
        .arg("azure")
        .args(args)
        .env_remove("ConnectionStrings__signalr")
        .env_remove("Azure__SignalR__ConnectionString")
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    tokio::time::timeout(Duration::from_secs(20), command.output())
        .await
        .expect("talkback finished within 20 s")
        .expect("talkback ran")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Connects with the `{url, accessToken}` that `talkback azure token --info` prints.
async fn connect_with_cli_token(
    cs: &str,
    user: &str,
) -> (HubConnection, mpsc::UnboundedReceiver<String>) {
    let out = azure(
        &["token", "--hub", HUB, "--user", user, "--info"],
        &[("ConnectionStrings__signalr", cs)],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let url = info["url"].as_str().unwrap().to_owned();
    let token = info["accessToken"].as_str().unwrap().to_owned();
    let conn = HubConnectionBuilder::new(url)
        .with_http_timeout(Duration::from_secs(5))
        .with_access_token_factory(move || {
            let token = token.clone();
            async move { Ok(token) }
        })
        .build()
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    conn.on("update", move |(text,): (String,)| {
        let _ = tx.send(text);
    });
    conn.start().await.expect("the CLI's token opens the hub");
    (conn, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a message within 10 s")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_prints_a_client_token_the_service_accepts() {
    let server = service().await;
    let cs = server.azure_connection_string().unwrap();
    let out = azure(
        &[
            "token",
            "--hub",
            HUB,
            "--user",
            "alice",
            "--claim",
            "role=admin",
            "--lifetime",
            "120",
        ],
        &[("Azure__SignalR__ConnectionString", &cs)],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out);
    let url = format!("{}/client/?hub=dashboard", server.url());
    let v = TokenValidator::new(vec![AccessKey::new(KEY)])
        .validate(&token, &url, SystemTime::now())
        .unwrap();
    assert_eq!(v.user_id.as_deref(), Some("alice"));
    assert_eq!(v.claims["role"], "admin");
    assert_eq!(v.expires_at - v.claims["iat"].as_u64().unwrap(), 120);
    let (conn, _rx) = connect_with_cli_token(&cs, "alice").await;
    let _ = conn.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_group_commands_reach_a_connected_client() {
    let server = service().await;
    let cs = server.azure_connection_string().unwrap();
    let (conn, mut rx) = connect_with_cli_token(&cs, "alice").await;
    let flag = ["--connection-string", cs.as_str()];

    let out = azure(
        &[&flag[..], &["send", "--hub", HUB, "update", "\"to all\""]].concat(),
        &[],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(next(&mut rx).await, "to all");

    let out = azure(
        &[
            "send",
            "--hub",
            HUB,
            "--user",
            "alice",
            "update",
            "\"to alice\"",
            "--api",
            "v1",
        ],
        &[("ConnectionStrings__signalr", &cs)],
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(next(&mut rx).await, "to alice");

    let env = [("ConnectionStrings__signalr", cs.as_str())];
    let out = azure(
        &["exists", "--hub", HUB, "--group", "ops", "--user", "alice"],
        &env,
    )
    .await;
    assert_eq!(stdout(&out), "false", "{}", stderr(&out));
    let out = azure(
        &[
            "group", "add", "--hub", HUB, "--group", "ops", "--user", "alice", "--ttl", "600",
        ],
        &env,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = azure(
        &["exists", "--hub", HUB, "--group", "ops", "--user", "alice"],
        &env,
    )
    .await;
    assert_eq!(stdout(&out), "true", "{}", stderr(&out));
    let out = azure(
        &[
            "send",
            "--hub",
            HUB,
            "--group",
            "ops",
            "update",
            "\"to ops\"",
        ],
        &env,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(next(&mut rx).await, "to ops");
    let out = azure(
        &["group", "remove", "--hub", HUB, "--user", "alice", "--all"],
        &env,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let out = azure(&["exists", "--hub", HUB, "--group", "ops"], &env).await;
    assert_eq!(stdout(&out), "false", "{}", stderr(&out));

    // Adding a connection that does not exist: the service's 404, exit status 1.
    let out = azure(
        &[
            "group",
            "add",
            "--hub",
            HUB,
            "--group",
            "ops",
            "--connection",
            "nope",
        ],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));

    let id = conn.connection_id().unwrap();
    let out = azure(&["exists", "--hub", HUB, "--connection", &id], &env).await;
    assert_eq!(stdout(&out), "true", "{}", stderr(&out));
    let out = azure(&["health"], &env).await;
    assert_eq!(stdout(&out), "ok", "{}", stderr(&out));
    let out = azure(
        &[
            "close",
            "--hub",
            HUB,
            "--connection",
            &id,
            "--reason",
            "done",
        ],
        &env,
    )
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn configuration_mistakes_exit_2_with_a_message_that_hides_the_key() {
    let out = azure(&["health"], &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("ConnectionStrings__signalr"),
        "{}",
        stderr(&out)
    );

    let bad = "Endpoint=ftp://x;AccessKey=TOPSECRETKEYVALUE;Version=1.0";
    let out = azure(&["health"], &[("ConnectionStrings__signalr", bad)]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("Endpoint"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("TOPSECRETKEYVALUE"));

    let dup = "Endpoint=http://h;AccessKey=TOPSECRETKEYVALUE;accesskey=TOPSECRETKEYVALUE";
    let out = azure(
        &["token", "--hub", "h"],
        &[("Azure__SignalR__ConnectionString", dup)],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("accesskey"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("TOPSECRETKEYVALUE"));

    let ok = "Endpoint=http://127.0.0.1;Port=9;AccessKey=k";
    let out = azure(
        &["send", "--hub", "9lives", "t"],
        &[("ConnectionStrings__signalr", ok)],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("hub"), "{}", stderr(&out));
    let out = azure(
        &["send", "--hub", "h", "t", "{not json"],
        &[("ConnectionStrings__signalr", ok)],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn an_unreachable_service_exits_1() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let cs = format!("Endpoint=http://127.0.0.1;Port={port};AccessKey=k");
    let out = azure(
        &["health", "--retries", "0"],
        &[("ConnectionStrings__signalr", &cs)],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("health"), "{}", stderr(&out));
}
