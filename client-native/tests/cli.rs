//! Tests of the `talkback` command-line tool: the built binary against an in-process fixture.

mod common;

use common::*;
use std::process::Output;
use std::time::Duration;
use talkback::{Protocol, TransportKind};

async fn talkback(args: &[&str]) -> Output {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_talkback"))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(20), child)
        .await
        .expect("talkback finished within 20 s")
        .expect("talkback ran")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

const TRANSPORTS: [(&str, &str); 5] = [
    ("ws", "json"),
    ("ws", "msgpack"),
    ("sse", "json"),
    ("lp", "json"),
    ("lp", "msgpack"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_prints_the_result_as_json_on_every_transport() {
    let hub = Hub::start().await;
    let url = hub.url();
    for (transport, protocol) in TRANSPORTS {
        let args = [
            "invoke",
            &url,
            "Echo",
            r#"{"a":[1,"x",null],"b":-2.5}"#,
            "--transport",
            transport,
            "--protocol",
            protocol,
            "--timeout",
            "10",
        ];
        let output = talkback(&args).await;
        assert!(
            output.status.success(),
            "{transport}/{protocol}: {}",
            stderr(&output)
        );
        let value: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
        assert_eq!(value, serde_json::json!({"a": [1, "x", null], "b": -2.5}));
        let output = talkback(&[
            "invoke",
            &url,
            "Add",
            "-1",
            "3",
            "--transport",
            transport,
            "--protocol",
            protocol,
        ])
        .await;
        assert_eq!(
            stdout(&output).trim(),
            "2",
            "{transport}/{protocol}: {}",
            stderr(&output)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_of_a_void_method_prints_null() {
    let hub = Hub::start().await;
    let output = talkback(&["invoke", &hub.url(), "DoNothing"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).trim(), "null");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_error_goes_to_stderr_with_exit_status_1() {
    let hub = Hub::start().await;
    let output = talkback(&["invoke", &hub.url(), "Throw", r#""it failed""#]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).is_empty());
    assert!(stderr(&output).contains("it failed"), "{}", stderr(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_arguments_exit_with_status_2() {
    let hub = Hub::start().await;
    let output = talkback(&["invoke", &hub.url(), "Echo", "{not json"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not valid JSON"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_prints_one_line_per_item_and_fails_on_a_stream_error() {
    let hub = Hub::start().await;
    let url = hub.url();
    for (transport, protocol) in TRANSPORTS {
        let output = talkback(&[
            "stream",
            &url,
            "Counter",
            "4",
            "0",
            "--transport",
            transport,
            "--protocol",
            protocol,
        ])
        .await;
        assert!(
            output.status.success(),
            "{transport}/{protocol}: {}",
            stderr(&output)
        );
        assert_eq!(stdout(&output), "0\n1\n2\n3\n");
    }
    let output = talkback(&["stream", &url, "StreamThenFail", "2"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output), "0\n1\n");
    assert!(
        stderr(&output).contains("stream failed on purpose"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_and_listen_print_server_invocations_as_json_lines() {
    let hub = Hub::start().await;
    let url = hub.url();
    let listener = {
        let url = url.clone();
        tokio::spawn(async move {
            talkback(&[
                "listen",
                &url,
                "--on",
                "broadcast",
                "--count",
                "2",
                "--transport",
                "lp",
                "--protocol",
                "msgpack",
                "--timeout",
                "15",
                "-v",
            ])
            .await
        })
    };
    // Broadcast twice once the listener is connected (it registers its handler before it
    // starts, so it sees both): the sender's connection and the listener's make two.
    let sender = connect(&hub, TransportKind::WebSockets, Protocol::Json).await;
    within(hub.server.wait_for_connections(Some("test"), 2)).await;
    for _ in 0..2 {
        let output =
            talkback(&["send", &url, "Broadcast", r#""hello""#, "--transport", "ws"]).await;
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let output = listener.await.unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<serde_json::Value> = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines.len(),
        2,
        "{}\nSTDERR {}",
        stdout(&output),
        stderr(&output)
    );
    for line in lines {
        assert_eq!(
            line,
            serde_json::json!({"target": "Broadcast", "arguments": ["hello"]})
        );
    }
    sender.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_and_token_options_reach_the_server() {
    let hub = Hub::start().await;
    let output = talkback(&[
        "invoke",
        &hub.url(),
        "GetHeader",
        r#""x-demo""#,
        "--header",
        "X-Demo: 42",
    ])
    .await;
    assert_eq!(stdout(&output).trim(), r#""42""#, "{}", stderr(&output));
    let output = talkback(&[
        "invoke",
        &hub.url(),
        "GetHeader",
        r#""authorization""#,
        "--token",
        "abc",
        "--transport",
        "sse",
    ])
    .await;
    assert_eq!(
        stdout(&output).trim(),
        r#""Bearer abc""#,
        "{}",
        stderr(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_with_status_1() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/hubs/test");
    let output = talkback(&["invoke", &url, "Echo", "1", "--timeout", "5"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(!stderr(&output).is_empty());
}
