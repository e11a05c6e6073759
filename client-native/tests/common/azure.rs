//! The fixture in Azure serverless service mode, shared by the `azure_*` tests.

/// The access key of the test service.
pub(crate) const KEY: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH";
/// The hub the tests use (mixed case: the service lower-cases it).
pub(crate) const HUB: &str = "Dashboard";

/// Starts the fixture as a serverless Azure SignalR Service signed with [`KEY`].
pub(crate) async fn service() -> talkback_fixture::Server {
    let azure = talkback_fixture::AzureConfig {
        mode: talkback_fixture::ServiceMode::Serverless,
        ..talkback_fixture::AzureConfig::with_key(KEY)
    };
    let config = talkback_fixture::Config {
        azure: Some(azure),
        ..Default::default()
    };
    talkback_fixture::spawn(config)
        .await
        .expect("the fixture starts")
}
