//! The Redis channel names of one hub, as ASP.NET Core's `RedisChannels` builds them
//! (`src/SignalR/server/StackExchangeRedis/src/Internal/RedisChannels.cs` in dotnet/aspnetcore).
//!
//! Every name starts with `{prefix}{Hub}`: the configured channel prefix (StackExchange.Redis
//! prepends `ChannelPrefix` as it is, with no separator) and the hub's channel name, which the
//! reference takes from the hub's .NET type (`typeof(THub).FullName`, `Chat.Hubs.ChatHub`) and
//! the fixture from `--redis-hub-name test=Contoso.TestHub`, or the hub's path name by default.
//!
//! | channel | carries |
//! |---|---|
//! | `{base}:all` | invocations for every connection of the hub (with excluded ids) |
//! | `{base}:group:{group}` | invocations for a group's members (with excluded ids) |
//! | `{base}:connection:{id}` | invocations for one connection |
//! | `{base}:user:{user}` | invocations for every connection of a user |
//! | `{base}:internal:groups` | group commands for the node that holds the connection |
//! | `{base}:internal:ack:{server}` | acks of that server's group commands |
//! | `{base}:internal:return:{server}` | completions of that server's client results |
//! | `{base}:talkback:user-groups` | **ours**: user-level group changes (Azure REST API), for every node |
//!
//! Not a channel, also ours: each node keeps its figures for `/metrics` in the key
//! `{prefix}talkback:node:{server}` ([`node_key`]), with an expiry.

/// What a channel of a hub is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// `:all`.
    All,
    /// `:group:{name}`.
    Group(&'a str),
    /// `:connection:{id}`.
    Connection(&'a str),
    /// `:user:{id}`.
    User(&'a str),
    /// `:internal:groups`.
    GroupManagement,
    /// `:internal:ack:{server}`.
    Ack(&'a str),
    /// `:internal:return:{server}`.
    Return(&'a str),
    /// `:talkback:user-groups` (our extension, not the reference's).
    UserGroups,
}

/// The channel names of one hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channels {
    /// `{prefix}{Hub}`.
    base: String,
}

impl Channels {
    /// The channels of the hub named `hub` on the channel, under `prefix`.
    pub fn new(prefix: &str, hub: &str) -> Self {
        Channels {
            base: format!("{prefix}{hub}"),
        }
    }

    /// `{prefix}{Hub}:all`.
    pub fn all(&self) -> String {
        format!("{}:all", self.base)
    }

    /// `{prefix}{Hub}:group:{group}`.
    pub fn group(&self, group: &str) -> String {
        format!("{}:group:{group}", self.base)
    }

    /// `{prefix}{Hub}:connection:{id}`.
    pub fn connection(&self, id: &str) -> String {
        format!("{}:connection:{id}", self.base)
    }

    /// `{prefix}{Hub}:user:{user}`.
    pub fn user(&self, user: &str) -> String {
        format!("{}:user:{user}", self.base)
    }

    /// `{prefix}{Hub}:internal:groups`.
    pub fn group_management(&self) -> String {
        format!("{}:internal:groups", self.base)
    }

    /// `{prefix}{Hub}:internal:ack:{server}`.
    pub fn ack(&self, server: &str) -> String {
        format!("{}:internal:ack:{server}", self.base)
    }

    /// `{prefix}{Hub}:internal:return:{server}`.
    pub fn return_results(&self, server: &str) -> String {
        format!("{}:internal:return:{server}", self.base)
    }

    /// `{prefix}{Hub}:talkback:user-groups`: our extension for user-level group changes
    /// (ASP.NET Core's backplane has no message for them).
    pub fn user_groups(&self) -> String {
        format!("{}:talkback:user-groups", self.base)
    }

    /// What `channel` is for, if it is one of this hub's channels.
    pub fn route<'a>(&self, channel: &'a str) -> Option<Route<'a>> {
        route_suffix(
            channel
                .strip_prefix(self.base.as_str())?
                .strip_prefix(':')?,
        )
    }
}

/// A `PSUBSCRIBE` pattern matching every channel under `prefix` (`{prefix}*`, with the Redis
/// glob characters of the prefix escaped): one subscription serves every hub, present and
/// future, so joining a group never waits for a subscription.
pub fn pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 4);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

/// The key where node `server` keeps its figures for the cluster's `/metrics` (ours):
/// `{prefix}talkback:node:{server}`.
pub fn node_key(prefix: &str, server: &str) -> String {
    format!("{prefix}talkback:node:{server}")
}

/// A `SCAN MATCH` pattern for every [`node_key`] under `prefix`.
pub fn node_key_pattern(prefix: &str) -> String {
    let mut pattern = pattern(prefix);
    pattern.pop();
    pattern.push_str("talkback:node:*");
    pattern
}

/// Splits a channel under `prefix` into the hub's channel name (up to the first `:`; .NET type
/// names have none) and what the channel is for; `None` for anything else.
pub fn parse<'a>(prefix: &str, channel: &'a str) -> Option<(&'a str, Route<'a>)> {
    let (hub, rest) = channel.strip_prefix(prefix)?.split_once(':')?;
    if hub.is_empty() {
        return None;
    }
    Some((hub, route_suffix(rest)?))
}

fn route_suffix(rest: &str) -> Option<Route<'_>> {
    if rest == "all" {
        return Some(Route::All);
    }
    if rest == "talkback:user-groups" {
        return Some(Route::UserGroups);
    }
    if rest == "internal:groups" {
        return Some(Route::GroupManagement);
    }
    if let Some(server) = rest.strip_prefix("internal:ack:") {
        return Some(Route::Ack(server));
    }
    if let Some(server) = rest.strip_prefix("internal:return:") {
        return Some(Route::Return(server));
    }
    if let Some(group) = rest.strip_prefix("group:") {
        return Some(Route::Group(group));
    }
    if let Some(id) = rest.strip_prefix("connection:") {
        return Some(Route::Connection(id));
    }
    rest.strip_prefix("user:").map(Route::User)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_prefix_and_hub_then_the_reference_suffixes() {
        let c = Channels::new("app1-", "Contoso.TestHub");
        assert_eq!(c.all(), "app1-Contoso.TestHub:all");
        assert_eq!(c.group("room 1"), "app1-Contoso.TestHub:group:room 1");
        assert_eq!(c.connection("abc"), "app1-Contoso.TestHub:connection:abc");
        assert_eq!(c.user("ann"), "app1-Contoso.TestHub:user:ann");
        assert_eq!(c.group_management(), "app1-Contoso.TestHub:internal:groups");
        assert_eq!(c.ack("n_1"), "app1-Contoso.TestHub:internal:ack:n_1");
        assert_eq!(
            c.return_results("n_1"),
            "app1-Contoso.TestHub:internal:return:n_1"
        );
        assert_eq!(Channels::new("", "test").all(), "test:all");
        assert_eq!(c.user_groups(), "app1-Contoso.TestHub:talkback:user-groups");
        assert_eq!(node_key("app1-", "n_1"), "app1-talkback:node:n_1");
        assert_eq!(node_key_pattern("a*"), "a\\*talkback:node:*");
    }

    #[test]
    fn every_name_routes_back_to_what_it_is_for() {
        let c = Channels::new("p", "test");
        assert_eq!(c.route(&c.all()), Some(Route::All));
        assert_eq!(c.route(&c.group("a:b")), Some(Route::Group("a:b")));
        assert_eq!(c.route(&c.connection("x")), Some(Route::Connection("x")));
        assert_eq!(c.route(&c.user("u")), Some(Route::User("u")));
        assert_eq!(c.route(&c.group_management()), Some(Route::GroupManagement));
        assert_eq!(c.route(&c.ack("s")), Some(Route::Ack("s")));
        assert_eq!(c.route(&c.return_results("s")), Some(Route::Return("s")));
        assert_eq!(c.route(&c.user_groups()), Some(Route::UserGroups));
        assert_eq!(c.route("ptest2:all"), None);
        assert_eq!(c.route("ptest:other"), None);
        assert_eq!(c.route("other"), None);
    }

    #[test]
    fn one_pattern_covers_the_prefix_with_glob_characters_escaped() {
        assert_eq!(pattern(""), "*");
        assert_eq!(pattern("app1-"), "app1-*");
        assert_eq!(pattern("a*[b]?\\"), "a\\*\\[b\\]\\?\\\\*");
    }

    #[test]
    fn a_channel_splits_into_hub_name_and_route() {
        assert_eq!(
            parse("p-", "p-Contoso.TestHub:group:a:b"),
            Some(("Contoso.TestHub", Route::Group("a:b")))
        );
        assert_eq!(parse("p-", "p-test:all"), Some(("test", Route::All)));
        assert_eq!(parse("p-", "q-test:all"), None);
        assert_eq!(parse("p-", "p-:all"), None);
        assert_eq!(parse("p-", "p-test:unknown"), None);
        assert_eq!(parse("", "test"), None);
    }
}
