//! Tests of the `talkback` command-line tool that need no server.

use std::process::Command;

fn talkback(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_talkback"))
        .args(args)
        .output()
        .expect("talkback ran")
}

#[test]
fn bad_json_arguments_exit_with_status_2_before_connecting() {
    let output = talkback(&[
        "invoke",
        "http://127.0.0.1:9/hubs/test",
        "Echo",
        "{not json",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not valid JSON"), "{stderr}");
}

#[test]
fn a_malformed_header_option_is_a_usage_error() {
    let output = talkback(&[
        "send",
        "http://127.0.0.1:9/hubs/test",
        "M",
        "--header",
        "nocolon",
    ]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn skip_negotiation_with_an_http_transport_is_a_usage_error() {
    let output = talkback(&[
        "invoke",
        "http://127.0.0.1:9/hubs/test",
        "M",
        "--skip-negotiation",
        "--transport",
        "lp",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("Negotiation can only be skipped"),
        "{stderr}"
    );
}

#[test]
fn help_lists_the_four_commands() {
    let output = talkback(&["--help"]);
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for command in ["invoke", "send", "stream", "listen"] {
        assert!(stdout.contains(command), "{stdout}");
    }
}
