//! `talkback-fixture`: the SignalR service side for tests.
