//! The one seam for sending to other connections: [`FanOut`].
//!
//! Every send from hub code (to the caller, to one connection, to a user, to a group, to the
//! whole hub with or without excluded ids) and every group membership change goes through the
//! fixture's `Arc<dyn FanOut>` (`Shared::fan_out`). [`LocalFanOut`] delivers to this process's
//! connection store. A scale-out backplane (Redis, issue 14) is another implementation of the
//! same trait: it publishes what [`FanOut::send`] receives (the message is encoded once per
//! protocol, so a subscriber never re-encodes) and mirrors membership changes, then hands what
//! it receives from other processes to a [`LocalFanOut`]; hubs and transports do not change.
//!
//! The methods are synchronous and never wait: a delivery is a `try_send` into the bounded
//! command queue of each connection, and a connection whose queue is full is aborted (the
//! slow-consumer policy, see [`crate::Config`]). A backplane would queue its publish on its own
//! bounded channel in the same way.

use crate::hub::HubError;
use crate::registry::{Command, Conn, Connections};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use talkback_core::protocol::{encode_arguments, HubMessage, Invocation, Protocol, RawValue};

/// Who receives a fan-out message, within one hub.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Audience<'a> {
    /// Every connection of the hub except the `excluded` connection ids.
    All { excluded: &'a [&'a str] },
    /// One connection, by id.
    Connection(&'a str),
    /// Every connection whose access token stands for this user.
    User(&'a str),
    /// The members of a group, except the `excluded` connection ids.
    Group {
        group: &'a str,
        excluded: &'a [&'a str],
    },
}

/// A server-to-client invocation with its arguments encoded once per protocol.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    target: String,
    json: Result<Vec<RawValue>, String>,
    msgpack: Result<Vec<RawValue>, String>,
}

impl Outgoing {
    /// `target(arguments...)`; `arguments` is a tuple or a sequence.
    pub(crate) fn new<A: Serialize + ?Sized>(target: &str, arguments: &A) -> Self {
        Outgoing {
            target: target.to_owned(),
            json: encode_arguments(Protocol::Json, arguments).map_err(|e| e.to_string()),
            msgpack: encode_arguments(Protocol::MessagePack, arguments).map_err(|e| e.to_string()),
        }
    }

    /// A message whose arguments arrived already encoded, one list per protocol or why it is
    /// missing (a message received from the Redis backplane).
    pub(crate) fn from_encoded(
        target: String,
        json: Result<Vec<RawValue>, String>,
        msgpack: Result<Vec<RawValue>, String>,
    ) -> Self {
        Outgoing {
            target,
            json,
            msgpack,
        }
    }

    /// The Invocation (without an invocation id) in `protocol`, or why its arguments did not
    /// encode in that protocol.
    pub(crate) fn invocation(&self, protocol: Protocol) -> Result<HubMessage, HubError> {
        let encoded = match protocol {
            Protocol::Json => &self.json,
            Protocol::MessagePack => &self.msgpack,
        };
        let arguments = encoded.clone().map_err(HubError::Unexpected)?;
        Ok(HubMessage::Invocation(Invocation {
            invocation_id: None,
            target: self.target.clone(),
            arguments,
            stream_ids: None,
            headers: Default::default(),
        }))
    }
}

/// Routes messages to connections and keeps group membership.
pub(crate) trait FanOut: Send + Sync {
    /// Queues `message` for every connection of `hub` in `audience`. Fails (after queueing it
    /// for the connections before) when the arguments do not encode in a receiver's protocol.
    fn send(&self, hub: &str, audience: Audience<'_>, message: &Outgoing) -> Result<(), HubError>;

    /// Adds a connection of `hub` to `group`.
    fn join(&self, hub: &str, group: &str, connection_id: &str);

    /// Removes a connection of `hub` from `group`.
    fn leave(&self, hub: &str, group: &str, connection_id: &str);

    /// Forgets every group membership of a connection that ended.
    fn disconnected(&self, hub: &str, connection_id: &str);

    // User-level group membership and group queries, for the Azure REST API (src/azure/).
    // The defaults keep other implementations building; [`LocalFanOut`] implements them, and a
    // backplane should delegate them to its local fan-out (and mirror the changes).

    /// Adds a user of `hub` to `group` until `expires` (forever for `None`): every connection
    /// of that user, present or future, receives the group's messages.
    fn join_user(&self, _hub: &str, _group: &str, _user: &str, _expires: Option<Instant>) {}

    /// Removes a user of `hub` (and the user's connections) from `group`, or from every group
    /// for `None`.
    fn leave_user(&self, _hub: &str, _group: Option<&str>, _user: &str) {}

    /// Whether `user` is in `group` of `hub` (as a user, or through one of its connections).
    fn user_in_group(&self, _hub: &str, _group: &str, _user: &str) -> bool {
        false
    }

    /// The ids of the live connections that receive `group`'s messages.
    fn group_connections(&self, _hub: &str, _group: &str) -> Vec<String> {
        Vec::new()
    }
}

/// Group keys: the hub's name in lower case, then the group's name as given.
type GroupKey = (String, String);

/// Fan-out within this process, over the connection store.
pub(crate) struct LocalFanOut {
    connections: Arc<Connections>,
    groups: Mutex<HashMap<GroupKey, HashSet<String>>>,
    /// Users in groups, each until its expiry (`None`: no ttl); expired entries are dropped
    /// when their group is next read.
    user_groups: Mutex<HashMap<GroupKey, HashMap<String, Option<Instant>>>>,
}

impl LocalFanOut {
    pub(crate) fn new(connections: Arc<Connections>) -> Self {
        LocalFanOut {
            connections,
            groups: Mutex::new(HashMap::new()),
            user_groups: Mutex::new(HashMap::new()),
        }
    }

    fn group_members(&self, hub: &str, group: &str) -> Vec<Arc<Conn>> {
        let key = (hub.to_ascii_lowercase(), group.to_owned());
        let ids: Vec<String> = self
            .groups
            .lock()
            .get(&key)
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default();
        let mut members: Vec<Arc<Conn>> = ids
            .iter()
            .filter_map(|id| self.connections.get(id))
            .collect();
        let users = self.live_users(&key);
        if !users.is_empty() {
            for conn in self.connections.all(Some(hub)) {
                let user = conn.user.as_deref();
                if user.is_some_and(|u| users.contains(u)) && !ids.contains(&conn.id) {
                    members.push(conn);
                }
            }
        }
        members
    }

    /// The users of a group whose membership has not expired (dropping the expired ones).
    fn live_users(&self, key: &GroupKey) -> HashSet<String> {
        let mut user_groups = self.user_groups.lock();
        let Some(users) = user_groups.get_mut(key) else {
            return HashSet::new();
        };
        let now = Instant::now();
        users.retain(|_, expires| expires.is_none_or(|at| at > now));
        let live = users.keys().cloned().collect();
        if users.is_empty() {
            user_groups.remove(key);
        }
        live
    }
}

/// Queues `message` for each of `conns` (a full queue aborts that connection).
fn deliver(conns: &[Arc<Conn>], message: &Outgoing) -> Result<(), HubError> {
    for conn in conns {
        let invocation = message.invocation(conn.protocol())?;
        conn.push(Command::Message(Box::new(invocation)));
    }
    Ok(())
}

impl FanOut for LocalFanOut {
    fn send(&self, hub: &str, audience: Audience<'_>, message: &Outgoing) -> Result<(), HubError> {
        let mut conns = match audience {
            Audience::All { .. } => self.connections.all(Some(hub)),
            Audience::Connection(id) => self
                .connections
                .get(id)
                .filter(|c| c.hub.eq_ignore_ascii_case(hub))
                .into_iter()
                .collect(),
            Audience::User(user) => {
                let mut conns = self.connections.all(Some(hub));
                conns.retain(|c| c.user.as_deref() == Some(user));
                conns
            }
            Audience::Group { group, .. } => self.group_members(hub, group),
        };
        if let Audience::All { excluded } | Audience::Group { excluded, .. } = audience {
            if !excluded.is_empty() {
                conns.retain(|c| !excluded.contains(&c.id.as_str()));
            }
        }
        deliver(&conns, message)
    }

    fn join(&self, hub: &str, group: &str, connection_id: &str) {
        self.groups
            .lock()
            .entry((hub.to_ascii_lowercase(), group.to_owned()))
            .or_default()
            .insert(connection_id.to_owned());
    }

    fn leave(&self, hub: &str, group: &str, connection_id: &str) {
        let mut groups = self.groups.lock();
        let key = (hub.to_ascii_lowercase(), group.to_owned());
        if let Some(members) = groups.get_mut(&key) {
            members.remove(connection_id);
            if members.is_empty() {
                groups.remove(&key);
            }
        }
    }

    fn disconnected(&self, hub: &str, connection_id: &str) {
        let hub = hub.to_ascii_lowercase();
        self.groups.lock().retain(|(h, _), members| {
            if *h == hub {
                members.remove(connection_id);
            }
            !members.is_empty()
        });
    }

    fn join_user(&self, hub: &str, group: &str, user: &str, expires: Option<Instant>) {
        self.user_groups
            .lock()
            .entry((hub.to_ascii_lowercase(), group.to_owned()))
            .or_default()
            .insert(user.to_owned(), expires);
    }

    fn leave_user(&self, hub: &str, group: Option<&str>, user: &str) {
        let hub = hub.to_ascii_lowercase();
        self.user_groups.lock().retain(|(h, g), users| {
            if *h == hub && group.is_none_or(|group| group == g) {
                users.remove(user);
            }
            !users.is_empty()
        });
        // The user's connections leave too (the REST API removes the user, not only the
        // user-level membership).
        let conns: Vec<String> = self
            .connections
            .all(Some(&hub))
            .into_iter()
            .filter(|c| c.user.as_deref() == Some(user))
            .map(|c| c.id.clone())
            .collect();
        if conns.is_empty() {
            return;
        }
        self.groups.lock().retain(|(h, g), members| {
            if *h == hub && group.is_none_or(|group| group == g) {
                for id in &conns {
                    members.remove(id);
                }
            }
            !members.is_empty()
        });
    }

    fn user_in_group(&self, hub: &str, group: &str, user: &str) -> bool {
        let key = (hub.to_ascii_lowercase(), group.to_owned());
        if self.live_users(&key).contains(user) {
            return true;
        }
        self.group_members(hub, group)
            .iter()
            .any(|c| c.user.as_deref() == Some(user))
    }

    fn group_connections(&self, hub: &str, group: &str) -> Vec<String> {
        self.group_members(hub, group)
            .into_iter()
            .map(|c| c.id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{SessionSide, Shared};

    fn fixture() -> Arc<Shared> {
        let hubs = vec![
            crate::Hub::builder("one").build(),
            crate::Hub::builder("two").build(),
        ];
        Arc::new(Shared::new(crate::Config::default(), hubs))
    }

    fn connect(shared: &Shared, hub: &str, user: Option<&str>) -> (Arc<Conn>, SessionSide) {
        let hub = shared.hub(hub).unwrap();
        let conn = shared.create(&hub, user.map(str::to_owned), false, 1);
        let side = conn.pipe.session_side.lock().take().unwrap();
        (conn, side)
    }

    /// The targets queued for a connection so far.
    fn received(side: &mut SessionSide) -> Vec<String> {
        let mut targets = Vec::new();
        while let Ok(command) = side.commands.try_recv() {
            if let Command::Message(message) = command {
                if let HubMessage::Invocation(invocation) = *message {
                    targets.push(invocation.target);
                }
            }
        }
        targets
    }

    #[test]
    fn audiences_reach_the_right_connections_of_one_hub() {
        let shared = fixture();
        let (a, mut a_side) = connect(&shared, "one", Some("ann"));
        let (b, mut b_side) = connect(&shared, "ONE", Some("bob"));
        let (_c, mut c_side) = connect(&shared, "two", Some("ann"));
        let fan = shared.fan_out.clone();
        let m = |t: &str| Outgoing::new(t, &(1,));

        fan.send("one", Audience::All { excluded: &[] }, &m("all"))
            .unwrap();
        fan.send("one", Audience::All { excluded: &[&a.id] }, &m("others"))
            .unwrap();
        fan.send("one", Audience::User("ann"), &m("user")).unwrap();
        fan.send("one", Audience::Connection(&b.id), &m("conn"))
            .unwrap();
        fan.join("one", "g", &a.id);
        fan.join("one", "g", &b.id);
        fan.send(
            "One",
            Audience::Group {
                group: "g",
                excluded: &[&b.id],
            },
            &m("group"),
        )
        .unwrap();
        fan.leave("one", "g", &a.id);
        fan.send(
            "one",
            Audience::Group {
                group: "g",
                excluded: &[],
            },
            &m("left"),
        )
        .unwrap();
        shared.remove(&b);
        fan.send(
            "one",
            Audience::Group {
                group: "g",
                excluded: &[],
            },
            &m("gone"),
        )
        .unwrap();

        assert_eq!(received(&mut a_side), ["all", "user", "group"]);
        assert_eq!(received(&mut b_side), ["all", "others", "conn", "left"]);
        assert_eq!(received(&mut c_side), Vec::<String>::new());
    }

    #[test]
    fn a_full_queue_aborts_only_that_connection() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let _guard = runtime.enter();
        let config = crate::Config {
            outbound_queue_capacity: 1,
            ..crate::Config::default()
        };
        let shared = Arc::new(Shared::new(
            config,
            vec![crate::Hub::builder("one").build()],
        ));
        let (slow, _slow_side) = connect(&shared, "one", None);
        let (fast, mut fast_side) = connect(&shared, "one", None);
        let all = Audience::All { excluded: &[] };
        shared
            .fan_out
            .send("one", all, &Outgoing::new("x", &(1,)))
            .unwrap();
        received(&mut fast_side);
        shared
            .fan_out
            .send("one", all, &Outgoing::new("y", &(2,)))
            .unwrap();
        assert!(slow.is_aborted());
        assert!(!fast.is_aborted());
        assert!(shared
            .metrics
            .render()
            .contains("\ntalkback_queue_full_aborts_total 1\n"));
        assert_eq!(received(&mut fast_side), ["y"]);
    }
}
