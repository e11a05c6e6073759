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
}

/// Group keys: the hub's name in lower case, then the group's name as given.
type GroupKey = (String, String);

/// Fan-out within this process, over the connection store.
pub(crate) struct LocalFanOut {
    connections: Arc<Connections>,
    groups: Mutex<HashMap<GroupKey, HashSet<String>>>,
}

impl LocalFanOut {
    pub(crate) fn new(connections: Arc<Connections>) -> Self {
        LocalFanOut {
            connections,
            groups: Mutex::new(HashMap::new()),
        }
    }

    fn group_members(&self, hub: &str, group: &str) -> Vec<Arc<Conn>> {
        let ids: Vec<String> = self
            .groups
            .lock()
            .get(&(hub.to_ascii_lowercase(), group.to_owned()))
            .map(|m| m.iter().cloned().collect())
            .unwrap_or_default();
        ids.iter()
            .filter_map(|id| self.connections.get(id))
            .collect()
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
