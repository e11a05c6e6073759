//! `talkback azure ...`: Azure SignalR Service from the command line, with a connection string
//! from `--connection-string` or the environment (`ConnectionStrings__signalr`, then
//! `Azure__SignalR__ConnectionString`, the names .NET Aspire and ASP.NET configuration use).
//!
//! ```text
//! talkback azure token --hub chat --user alice            # a client token
//! talkback azure token --hub chat --user alice --info     # {"url":..,"accessToken":..}
//! talkback azure send --hub chat newMessage '"hi"'        # to everyone
//! talkback azure send --hub chat --group g --exclude c1 newMessage '"hi"'
//! talkback azure group add --hub chat --group g --user alice --ttl 60
//! talkback azure group remove --hub chat --group g --connection c1
//! talkback azure exists --hub chat --user alice           # prints true or false
//! talkback azure close --hub chat --connection c1 --reason bye
//! talkback azure health
//! ```

use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use talkback::azure::{
    AzureError, ConnectionString, Message, RestApiVersion, RetryPolicy, ServiceClient,
};

use crate::Failure;

/// The environment variables read for the connection string, in order.
pub(crate) const ENV_NAMES: [&str; 2] = [
    "ConnectionStrings__signalr",
    "Azure__SignalR__ConnectionString",
];

#[derive(Args)]
pub(crate) struct Azure {
    #[command(subcommand)]
    command: AzureCommand,
    /// The connection string (default: $ConnectionStrings__signalr, then
    /// $Azure__SignalR__ConnectionString).
    #[arg(long, global = true, value_name = "CS")]
    connection_string: Option<String>,
    /// The REST API version.
    #[arg(long, global = true, value_enum, default_value = "2022-06-01")]
    api: ApiArg,
    /// An application name (hubs become <app>_<hub>).
    #[arg(long, global = true, value_name = "APP")]
    application: Option<String>,
    /// How often a 429 or 5xx answer is retried.
    #[arg(long, global = true, default_value_t = 3, value_name = "N")]
    retries: u32,
    /// Log requests to stderr (-v, -vv).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Give up after this many seconds.
    #[arg(long, global = true, value_name = "SECONDS")]
    pub(crate) timeout: Option<f64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum ApiArg {
    /// /api/v1/...
    #[value(name = "v1")]
    V1,
    /// /api/...?api-version=2022-06-01
    #[value(name = "2022-06-01")]
    V2022,
}

#[derive(Subcommand)]
enum AzureCommand {
    /// Print a client access token for a hub (or, with --info, the negotiate answer).
    Token(TokenArgs),
    /// Send a hub method invocation through the REST API.
    Send(SendArgs),
    /// Change group membership.
    #[command(subcommand)]
    Group(GroupCommand),
    /// Print whether a connection, user, group or user-in-group exists (true/false).
    Exists(ExistsArgs),
    /// Close a connection, or (2022-06-01) every connection of a hub, group or user.
    Close(CloseArgs),
    /// Check that the service answers its health endpoint.
    Health,
}

#[derive(Args)]
struct TokenArgs {
    /// The hub.
    #[arg(long)]
    hub: String,
    /// The user id (claim asrs.s.uid).
    #[arg(long)]
    user: Option<String>,
    /// Lifetime in seconds (default 3600).
    #[arg(long, value_name = "SECONDS")]
    lifetime: Option<u64>,
    /// An extra claim NAME=VALUE; VALUE is JSON if it parses, else a string (repeatable).
    #[arg(long = "claim", value_name = "NAME=VALUE", value_parser = parse_claim)]
    claims: Vec<(String, serde_json::Value)>,
    /// Print {"url":..,"accessToken":..} instead of the bare token.
    #[arg(long)]
    info: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("to").args(["user", "group", "connection"])))]
struct SendArgs {
    /// The hub.
    #[arg(long)]
    hub: String,
    /// Send to this user's connections.
    #[arg(long)]
    user: Option<String>,
    /// Send to this group.
    #[arg(long)]
    group: Option<String>,
    /// Send to this connection.
    #[arg(long)]
    connection: Option<String>,
    /// A connection id not to send to (repeatable; with everyone or --group).
    #[arg(long = "exclude", value_name = "CONNECTION_ID")]
    excluded: Vec<String>,
    /// The client-side method.
    target: String,
    /// The arguments, each a JSON value.
    #[arg(allow_negative_numbers = true)]
    arguments: Vec<String>,
}

#[derive(Subcommand)]
enum GroupCommand {
    /// Add a user (optionally for --ttl seconds) or a connection to a group.
    Add(GroupArgs),
    /// Remove a user or a connection from a group; --all removes it from every group.
    Remove(GroupArgs),
}

#[derive(Args)]
#[command(group(ArgGroup::new("who").args(["user", "connection"]).required(true)))]
struct GroupArgs {
    /// The hub.
    #[arg(long)]
    hub: String,
    /// The group (not needed with --all).
    #[arg(long, required_unless_present = "all")]
    group: Option<String>,
    /// The user.
    #[arg(long)]
    user: Option<String>,
    /// The connection.
    #[arg(long)]
    connection: Option<String>,
    /// Membership lifetime in seconds (users only, `add` only).
    #[arg(long, value_name = "SECONDS", requires = "user")]
    ttl: Option<u64>,
    /// Remove from every group (`remove` only).
    #[arg(long, conflicts_with = "group")]
    all: bool,
}

#[derive(Args)]
#[command(group(ArgGroup::new("what").args(["user", "group", "connection"]).multiple(true).required(true)))]
struct ExistsArgs {
    /// The hub.
    #[arg(long)]
    hub: String,
    /// A user (with --group: is the user in the group?).
    #[arg(long)]
    user: Option<String>,
    /// A group.
    #[arg(long)]
    group: Option<String>,
    /// A connection.
    #[arg(long, conflicts_with_all = ["user", "group"])]
    connection: Option<String>,
}

#[derive(Args)]
#[command(group(ArgGroup::new("whom").args(["user", "group", "connection", "everyone"]).required(true)))]
struct CloseArgs {
    /// The hub.
    #[arg(long)]
    hub: String,
    /// Close this connection.
    #[arg(long)]
    connection: Option<String>,
    /// Close this user's connections (2022-06-01).
    #[arg(long)]
    user: Option<String>,
    /// Close this group's connections (2022-06-01).
    #[arg(long)]
    group: Option<String>,
    /// Close every connection of the hub (2022-06-01).
    #[arg(long)]
    everyone: bool,
    /// A connection id to spare (repeatable).
    #[arg(long = "exclude", value_name = "CONNECTION_ID")]
    excluded: Vec<String>,
    /// The reason the client is told.
    #[arg(long)]
    reason: Option<String>,
}

fn parse_claim(s: &str) -> Result<(String, serde_json::Value), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not of the form NAME=VALUE"))?;
    if name.is_empty() {
        return Err(format!("'{s}' has an empty claim name"));
    }
    let value =
        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.into()));
    Ok((name.to_owned(), value))
}

impl From<AzureError> for Failure {
    fn from(e: AzureError) -> Self {
        if e.is_caller_error() {
            Failure::Usage(e.to_string())
        } else {
            Failure::Failed(e.to_string())
        }
    }
}

/// The connection string text: the flag, else the first environment variable set.
fn connection_string_text(flag: Option<&str>) -> Result<String, Failure> {
    if let Some(cs) = flag {
        return Ok(cs.to_owned());
    }
    for name in ENV_NAMES {
        if let Ok(value) = std::env::var(name) {
            if !value.trim().is_empty() {
                return Ok(value);
            }
        }
    }
    Err(Failure::Usage(format!(
        "no connection string: pass --connection-string or set {}",
        ENV_NAMES.join(" or ")
    )))
}

fn client(args: &Azure) -> Result<ServiceClient, Failure> {
    let text = connection_string_text(args.connection_string.as_deref())?;
    let cs = ConnectionString::parse(&text).map_err(AzureError::from)?;
    let mut client = ServiceClient::new(cs)?
        .with_api_version(match args.api {
            ApiArg::V1 => RestApiVersion::V1,
            ApiArg::V2022 => RestApiVersion::V2022_06_01,
        })
        .with_retry_policy(RetryPolicy {
            max_retries: args.retries,
            ..RetryPolicy::default()
        });
    if let Some(app) = &args.application {
        client = client.with_application(app.clone())?;
    }
    Ok(client)
}

fn print(value: impl std::fmt::Display) -> Result<(), Failure> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")
        .and_then(|()| out.flush())
        .map_err(|e| Failure::Failed(format!("cannot write to stdout: {e}")))
}

/// Runs `talkback azure ...`.
pub(crate) async fn run(args: &Azure) -> Result<(), Failure> {
    let client = client(args)?;
    match &args.command {
        AzureCommand::Token(t) => {
            let client = match t.lifetime {
                Some(s) => client.with_client_token_lifetime(Duration::from_secs(s)),
                None => client,
            };
            let token = client.client_token_with(&t.hub, t.user.as_deref(), t.claims.clone())?;
            if t.info {
                let url = client.client_info(&t.hub, None)?.url;
                let info = talkback::azure::ClientInfo {
                    url,
                    access_token: token,
                };
                let json = serde_json::to_string(&info)
                    .map_err(|e| Failure::Failed(format!("cannot print the answer: {e}")))?;
                print(json)
            } else {
                print(token)
            }
        }
        AzureCommand::Send(s) => {
            let arguments = s
                .arguments
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    serde_json::from_str(text).map_err(|e| {
                        Failure::Usage(format!(
                            "argument {} ('{text}') is not valid JSON: {e}",
                            i + 1
                        ))
                    })
                })
                .collect::<Result<Vec<serde_json::Value>, Failure>>()?;
            let message = Message::new(s.target.clone(), arguments);
            let excluded: Vec<&str> = s.excluded.iter().map(String::as_str).collect();
            if !excluded.is_empty() && (s.user.is_some() || s.connection.is_some()) {
                return Err(Failure::Usage(
                    "--exclude goes with sending to everyone or to a --group".into(),
                ));
            }
            match (&s.user, &s.group, &s.connection) {
                (Some(u), _, _) => client.send_to_user(&s.hub, u, &message).await?,
                (_, Some(g), _) => client.send_to_group(&s.hub, g, &message, &excluded).await?,
                (_, _, Some(c)) => client.send_to_connection(&s.hub, c, &message).await?,
                _ => client.send_to_all(&s.hub, &message, &excluded).await?,
            }
            Ok(())
        }
        AzureCommand::Group(GroupCommand::Add(g)) => {
            if g.all {
                return Err(Failure::Usage("--all goes with `group remove`".into()));
            }
            let group = g.group.as_deref().unwrap_or_default();
            match (&g.user, &g.connection) {
                (Some(u), _) => {
                    client
                        .add_user_to_group(&g.hub, group, u, g.ttl.map(Duration::from_secs))
                        .await?
                }
                (_, Some(c)) => client.add_connection_to_group(&g.hub, group, c).await?,
                _ => unreachable!("clap requires --user or --connection"),
            }
            Ok(())
        }
        AzureCommand::Group(GroupCommand::Remove(g)) => {
            if g.ttl.is_some() {
                return Err(Failure::Usage("--ttl goes with `group add`".into()));
            }
            match (&g.user, &g.connection, g.all) {
                (Some(u), _, true) => client.remove_user_from_all_groups(&g.hub, u).await?,
                (_, Some(c), true) => client.remove_connection_from_all_groups(&g.hub, c).await?,
                (Some(u), _, false) => {
                    let group = g.group.as_deref().unwrap_or_default();
                    client.remove_user_from_group(&g.hub, group, u).await?
                }
                (_, Some(c), false) => {
                    let group = g.group.as_deref().unwrap_or_default();
                    client
                        .remove_connection_from_group(&g.hub, group, c)
                        .await?
                }
                _ => unreachable!("clap requires --user or --connection"),
            }
            Ok(())
        }
        AzureCommand::Exists(e) => {
            let found = match (&e.user, &e.group, &e.connection) {
                (_, _, Some(c)) => client.connection_exists(&e.hub, c).await?,
                (Some(u), Some(g), _) => client.user_in_group(&e.hub, g, u).await?,
                (Some(u), None, _) => client.user_exists(&e.hub, u).await?,
                (None, Some(g), _) => client.group_exists(&e.hub, g).await?,
                (None, None, None) => unreachable!("clap requires one"),
            };
            print(found)
        }
        AzureCommand::Close(c) => {
            let excluded: Vec<&str> = c.excluded.iter().map(String::as_str).collect();
            let reason = c.reason.as_deref();
            match (&c.connection, &c.user, &c.group) {
                (Some(id), _, _) => {
                    if !excluded.is_empty() {
                        return Err(Failure::Usage(
                            "--exclude does not go with --connection".into(),
                        ));
                    }
                    client.close_connection(&c.hub, id, reason).await?
                }
                (_, Some(u), _) => {
                    client
                        .close_user_connections(&c.hub, u, &excluded, reason)
                        .await?
                }
                (_, _, Some(g)) => {
                    client
                        .close_group_connections(&c.hub, g, &excluded, reason)
                        .await?
                }
                _ => {
                    client
                        .close_all_connections(&c.hub, &excluded, reason)
                        .await?
                }
            }
            Ok(())
        }
        AzureCommand::Health => {
            client.health().await?;
            print("ok")
        }
    }
}
