//! `stop` and what was started before it: a start in progress ends with the official abort
//! error and `stop` settles; a call made just before `stop` goes out first and is cancelled by
//! the close, as the reference client's is.

mod common;

use common::*;
use talkback::{ConnectionError, State};
use talkback_core::connection::{INVOCATION_CANCELED, STOPPED_DURING_NEGOTIATION};

// One thread: the driver runs only when the test awaits, so both commands are queued before it
// takes either (on several threads a preempted test could see the start finish first).
#[tokio::test]
async fn stop_during_start_settles_and_the_start_fails_as_stopped_during_negotiation() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = builder(&hub, transport, protocol).build().expect("builds");
        // `join!` polls the start first: its command is queued before the stop's.
        let (started, stopped) = within(async { tokio::join!(conn.start(), conn.stop()) }).await;
        stopped.unwrap_or_else(|e| panic!("{l}: stop failed: {e}"));
        let error = started.expect_err(&format!("{l}: the start was stopped"));
        assert_eq!(
            error.as_connection_error(),
            Some(&ConnectionError::Closed(STOPPED_DURING_NEGOTIATION.into())),
            "{l}: {error}"
        );
        assert_eq!(conn.state(), State::Disconnected, "{l}");
        // The connection is usable again.
        within(conn.start())
            .await
            .unwrap_or_else(|e| panic!("{l}: {e}"));
        within(conn.stop()).await.unwrap();
    }
}

// One thread, for the same reason.
#[tokio::test]
async fn an_invoke_made_just_before_stop_is_cancelled_by_the_close_not_refused() {
    let hub = Hub::start().await;
    for (transport, protocol) in COMBOS {
        let l = label(transport, protocol);
        let conn = connect(&hub, transport, protocol).await;
        let (invoked, stopped) =
            within(async { tokio::join!(conn.invoke::<u64>("Delay", (5000,)), conn.stop()) }).await;
        stopped.unwrap();
        let error = invoked.expect_err(&format!("{l}: the close cancels the invocation"));
        assert_eq!(
            error.as_connection_error(),
            Some(&ConnectionError::Closed(INVOCATION_CANCELED.into())),
            "{l}: {error}"
        );
        // A call made after stop is refused as made while not connected.
        let after = within(conn.invoke::<u64>("Add", (1, 2))).await.unwrap_err();
        assert!(
            matches!(after.as_connection_error(), Some(ConnectionError::Usage(_))),
            "{l}: {after}"
        );
    }
}
