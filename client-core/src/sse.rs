//! A Server-Sent Events (`text/event-stream`) parser (`protocol.md` 1.6), incremental and bounded.
