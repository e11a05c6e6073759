//! `talkback`: the SignalR client for tokio.
