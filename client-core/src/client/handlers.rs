//! The registry of client methods (`on`, `on_result`) and lifecycle callbacks, and the
//! dispatcher task that runs them.
//!
//! # Ordering and backpressure
//!
//! Server invocations and lifecycle callbacks are handed, in arrival order, to one dispatcher
//! task per connection through a bounded queue ([`DISPATCH_QUEUE`] entries). `on` handlers run
//! on that task one after another, so a handler sees messages in the order the server sent
//! them. When a handler is slow the queue fills up; the driver then stops reading the transport
//! (it keeps serving timers and commands), so the socket's receive buffer fills and TCP
//! backpressure reaches the server. Memory stays bounded whatever the handler does.
//!
//! Invocations that expect a result (`on_result`) run as their own tasks, at most
//! [`MAX_CONCURRENT_CLIENT_RESULTS`] at a time, so a handler can itself call the server.

use super::error::Error;
use super::runtime::{BoxFuture, MaybeSend, MaybeSync, Runtime};
use crate::protocol::{decode_arguments, RawValue};
use crate::{ClientResult, Protocol};
use futures_channel::mpsc;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::{poll_fn, Future};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Poll, Waker};

/// Entries of the per-connection dispatch queue.
pub const DISPATCH_QUEUE: usize = 256;

/// Client-result handlers running at once on one connection.
pub const MAX_CONCURRENT_CLIENT_RESULTS: usize = 64;

/// Identifies one registered handler, for [`super::HubConnection::off_handler`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HandlerId(pub(crate) u64);

type PlainFn = shared_fn!(Fn(&[RawValue]) -> Result<(), String>);
type ResultFn = shared_fn!(Fn(&[RawValue]) -> BoxFuture<Result<RawValue, String>>);
type AnyFn = shared_fn!(Fn(&str, &[RawValue]));
type UnhandledFn = shared_fn!(Fn(&str, Option<&str>));
pub(crate) type CloseFn = shared_fn!(Fn(Option<Error>));
pub(crate) type ReconnectingFn = shared_fn!(Fn(Error));
pub(crate) type ReconnectedFn = shared_fn!(Fn(Option<String>));

#[derive(Clone)]
enum Handler {
    Plain(Arc<PlainFn>),
    Result(Arc<ResultFn>),
}

/// Everything the application registered on one connection.
#[derive(Default)]
pub(crate) struct Registry {
    inner: RwLock<RegistryInner>,
}

#[derive(Default)]
struct RegistryInner {
    next_id: u64,
    methods: HashMap<String, Vec<(HandlerId, Handler)>>,
    any: Vec<Arc<AnyFn>>,
    unhandled: Vec<Arc<UnhandledFn>>,
    on_close: Vec<Arc<CloseFn>>,
    on_reconnecting: Vec<Arc<ReconnectingFn>>,
    on_reconnected: Vec<Arc<ReconnectedFn>>,
}

/// What the driver hands to the dispatcher, in order.
#[derive(Debug)]
pub(crate) enum Dispatch {
    Invocation {
        target: String,
        arguments: Vec<RawValue>,
        invocation_id: Option<String>,
    },
    Reconnecting(Error),
    Reconnected(Option<String>),
    Closed(Option<Error>),
}

fn lock_poisoned<T>(e: std::sync::PoisonError<T>) -> T {
    e.into_inner()
}

impl Registry {
    fn add(&self, name: &str, handler: Handler) -> HandlerId {
        let mut inner = self.inner.write().unwrap_or_else(lock_poisoned);
        inner.next_id += 1;
        let id = HandlerId(inner.next_id);
        inner
            .methods
            .entry(name.to_lowercase())
            .or_default()
            .push((id, handler));
        id
    }

    pub(crate) fn on<T, F>(&self, name: &str, f: F) -> HandlerId
    where
        T: DeserializeOwned,
        F: Fn(T) + MaybeSend + MaybeSync + 'static,
    {
        let name_owned = name.to_string();
        let plain: Arc<PlainFn> = Arc::new(move |args: &[RawValue]| {
            let value: T = decode_arguments(args).map_err(|e| {
                let message = format!("arguments of '{name_owned}' do not match the handler: {e}");
                tracing::warn!("{message}");
                message
            })?;
            f(value);
            Ok(())
        });
        self.add(name, Handler::Plain(plain))
    }

    pub(crate) fn on_raw<F>(&self, name: &str, f: F) -> HandlerId
    where
        F: Fn(&[RawValue]) + MaybeSend + MaybeSync + 'static,
    {
        let plain: Arc<PlainFn> = Arc::new(move |args: &[RawValue]| {
            f(args);
            Ok(())
        });
        self.add(name, Handler::Plain(plain))
    }

    pub(crate) fn on_result<T, R, E, F, Fut>(
        &self,
        protocol: Protocol,
        name: &str,
        f: F,
    ) -> HandlerId
    where
        T: DeserializeOwned,
        R: Serialize,
        E: std::fmt::Display,
        F: Fn(T) -> Fut + MaybeSend + MaybeSync + 'static,
        Fut: Future<Output = Result<R, E>> + MaybeSend + 'static,
    {
        let name_owned = name.to_string();
        let handler: Arc<ResultFn> = Arc::new(move |args: &[RawValue]| {
            let value: T = match decode_arguments(args) {
                Ok(v) => v,
                Err(e) => {
                    let message =
                        format!("arguments of '{name_owned}' do not match the handler: {e}");
                    tracing::warn!("{message}");
                    return Box::pin(std::future::ready(Err(message)));
                }
            };
            let fut = f(value);
            Box::pin(async move {
                match fut.await {
                    Ok(r) => RawValue::encode(protocol, &r).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            })
        });
        self.add(name, Handler::Result(handler))
    }

    pub(crate) fn on_result_raw<F, Fut>(&self, name: &str, f: F) -> HandlerId
    where
        F: Fn(Vec<RawValue>) -> Fut + MaybeSend + MaybeSync + 'static,
        Fut: Future<Output = Result<RawValue, String>> + MaybeSend + 'static,
    {
        let handler: Arc<ResultFn> =
            Arc::new(move |args: &[RawValue]| -> BoxFuture<_> { Box::pin(f(args.to_vec())) });
        self.add(name, Handler::Result(handler))
    }

    pub(crate) fn on_any<F>(&self, f: F)
    where
        F: Fn(&str, &[RawValue]) + MaybeSend + MaybeSync + 'static,
    {
        let mut inner = self.inner.write().unwrap_or_else(lock_poisoned);
        inner.any.push(Arc::new(f));
    }

    pub(crate) fn on_unhandled<F>(&self, f: F)
    where
        F: Fn(&str, Option<&str>) + MaybeSend + MaybeSync + 'static,
    {
        let mut inner = self.inner.write().unwrap_or_else(lock_poisoned);
        inner.unhandled.push(Arc::new(f));
    }

    pub(crate) fn off(&self, name: &str) {
        let mut inner = self.inner.write().unwrap_or_else(lock_poisoned);
        inner.methods.remove(&name.to_lowercase());
    }

    pub(crate) fn off_handler(&self, name: &str, id: HandlerId) {
        let mut inner = self.inner.write().unwrap_or_else(lock_poisoned);
        let key = name.to_lowercase();
        if let Some(list) = inner.methods.get_mut(&key) {
            list.retain(|(h, _)| *h != id);
            if list.is_empty() {
                inner.methods.remove(&key);
            }
        }
    }

    pub(crate) fn on_close(&self, f: Arc<CloseFn>) {
        self.inner
            .write()
            .unwrap_or_else(lock_poisoned)
            .on_close
            .push(f);
    }

    pub(crate) fn on_reconnecting(&self, f: Arc<ReconnectingFn>) {
        self.inner
            .write()
            .unwrap_or_else(lock_poisoned)
            .on_reconnecting
            .push(f);
    }

    pub(crate) fn on_reconnected(&self, f: Arc<ReconnectedFn>) {
        self.inner
            .write()
            .unwrap_or_else(lock_poisoned)
            .on_reconnected
            .push(f);
    }

    /// Whether a server invocation of `target` would reach no code at all (no `on` handler
    /// of that name, no `on_any` handler, no `on_unhandled` callback).
    pub(crate) fn is_unhandled(&self, target: &str) -> bool {
        let inner = self.inner.read().unwrap_or_else(lock_poisoned);
        inner.any.is_empty()
            && inner.unhandled.is_empty()
            && inner
                .methods
                .get(&target.to_lowercase())
                .is_none_or(|list| list.is_empty())
    }

    fn handlers_for(&self, target: &str) -> (Vec<Handler>, Vec<Arc<AnyFn>>) {
        let inner = self.inner.read().unwrap_or_else(lock_poisoned);
        let handlers = inner
            .methods
            .get(&target.to_lowercase())
            .map(|list| list.iter().map(|(_, h)| h.clone()).collect())
            .unwrap_or_default();
        (handlers, inner.any.clone())
    }
}

/// Runs every handler for a server invocation that expects a result, with the reference
/// client's rules (docs/protocol/client.md, "Client results and handlers"): the last handler's
/// failure is the error, two results are "multiple results", no result is "no result".
async fn run_for_result(handlers: Vec<Handler>, arguments: Vec<RawValue>) -> ClientResult {
    let mut results = 0usize;
    let mut value = None;
    let mut failure: Option<String> = None;
    for handler in handlers {
        match handler {
            Handler::Plain(f) => match f(&arguments) {
                Ok(()) => failure = None,
                Err(e) => failure = Some(e),
            },
            Handler::Result(f) => match f(&arguments).await {
                Ok(v) => {
                    results += 1;
                    value = Some(v);
                    failure = None;
                }
                Err(e) => failure = Some(e),
            },
        }
    }
    if results > 1 {
        ClientResult::MultipleResults
    } else if let Some(e) = failure {
        ClientResult::Error(e)
    } else if let Some(v) = value {
        ClientResult::Value(v)
    } else {
        ClientResult::NoResult
    }
}

/// The limit on client-result handlers running at once: a counter, and the dispatcher's waker
/// while it waits for a handler to finish (the dispatcher is the only one that waits).
#[derive(Debug, Default)]
struct Limit {
    state: Mutex<(usize, Option<Waker>)>,
}

/// One running client-result handler's place under the [`Limit`], given back on drop.
struct Permit(Arc<Limit>);

impl Limit {
    /// Waits until fewer than [`MAX_CONCURRENT_CLIENT_RESULTS`] handlers run, then counts one.
    async fn acquire(self: &Arc<Self>) -> Permit {
        poll_fn(|cx| {
            let mut state = self.state.lock().unwrap_or_else(lock_poisoned);
            if state.0 < MAX_CONCURRENT_CLIENT_RESULTS {
                state.0 += 1;
                state.1 = None;
                Poll::Ready(Permit(self.clone()))
            } else {
                state.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.state.lock().unwrap_or_else(lock_poisoned);
            state.0 -= 1;
            state.1.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// A client-result handler's answer for the driver: the invocation id and the outcome.
pub(crate) type ClientResultDone = (String, ClientResult);

/// The dispatcher task: runs handlers and callbacks in order until the driver goes away.
pub(crate) async fn run_dispatcher(
    mut rx: mpsc::Receiver<Dispatch>,
    registry: Arc<Registry>,
    results: mpsc::UnboundedSender<ClientResultDone>,
    runtime: Arc<dyn Runtime>,
) {
    let limit = Arc::new(Limit::default());
    while let Some(dispatch) = rx.next().await {
        match dispatch {
            Dispatch::Invocation {
                target,
                arguments,
                invocation_id,
            } => {
                let (handlers, any) = registry.handlers_for(&target);
                for f in &any {
                    f(&target, &arguments);
                }
                if handlers.is_empty() && any.is_empty() {
                    let unhandled = registry
                        .inner
                        .read()
                        .unwrap_or_else(lock_poisoned)
                        .unhandled
                        .clone();
                    for f in &unhandled {
                        f(&target, invocation_id.as_deref());
                    }
                }
                match invocation_id {
                    Some(id) => {
                        let permit = limit.acquire().await;
                        let results = results.clone();
                        runtime.spawn(Box::pin(async move {
                            let outcome = run_for_result(handlers, arguments).await;
                            let _ = results.unbounded_send((id, outcome));
                            drop(permit);
                        }));
                    }
                    None => {
                        if handlers.is_empty() && any.is_empty() {
                            tracing::warn!("No client method with the name '{target}' found.");
                        }
                        for handler in handlers {
                            match handler {
                                Handler::Plain(f) => {
                                    let _ = f(&arguments);
                                }
                                Handler::Result(f) => {
                                    let fut = f(&arguments);
                                    let target = target.clone();
                                    runtime.spawn(Box::pin(async move {
                                        if fut.await.is_ok() {
                                            tracing::warn!(
                                                "Result given for '{target}' method but server is not expecting a result."
                                            );
                                        }
                                    }));
                                }
                            }
                        }
                    }
                }
            }
            Dispatch::Reconnecting(error) => {
                let callbacks = registry
                    .inner
                    .read()
                    .unwrap_or_else(lock_poisoned)
                    .on_reconnecting
                    .clone();
                for f in callbacks {
                    f(error.clone());
                }
            }
            Dispatch::Reconnected(id) => {
                let callbacks = registry
                    .inner
                    .read()
                    .unwrap_or_else(lock_poisoned)
                    .on_reconnected
                    .clone();
                for f in callbacks {
                    f(id.clone());
                }
            }
            Dispatch::Closed(error) => {
                let callbacks = registry
                    .inner
                    .read()
                    .unwrap_or_else(lock_poisoned)
                    .on_close
                    .clone();
                for f in callbacks {
                    f(error.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::encode_arguments;
    use futures_util::FutureExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn args<T: Serialize>(value: T) -> Vec<RawValue> {
        encode_arguments(Protocol::Json, &value).unwrap()
    }

    /// The handlers' answer (they answer at once: no executor needed).
    fn answer(registry: &Registry, target: &str, arguments: Vec<RawValue>) -> ClientResult {
        let (handlers, _) = registry.handlers_for(target);
        run_for_result(handlers, arguments)
            .now_or_never()
            .expect("the handlers answer at once")
    }

    #[test]
    fn a_result_handler_answers_with_its_encoded_value() {
        let registry = Registry::default();
        registry.on_result(Protocol::Json, "Double", |(x,): (i64,)| async move {
            Ok::<_, String>(x * 2)
        });
        let result = answer(&registry, "double", args((21,)));
        assert_eq!(
            result,
            ClientResult::Value(RawValue::encode(Protocol::Json, &42).unwrap())
        );
    }

    #[test]
    fn no_handler_no_result_and_two_results_follow_the_reference_rules() {
        let registry = Registry::default();
        assert_eq!(answer(&registry, "x", args((1,))), ClientResult::NoResult);
        registry.on("Plain", |(_x,): (i64,)| {});
        assert_eq!(
            answer(&registry, "plain", args((1,))),
            ClientResult::NoResult
        );
        registry.on_result(Protocol::Json, "Two", |(x,): (i64,)| async move {
            Ok::<_, String>(x)
        });
        registry.on_result(Protocol::Json, "TWO", |(x,): (i64,)| async move {
            Ok::<_, String>(x)
        });
        assert_eq!(
            answer(&registry, "two", args((1,))),
            ClientResult::MultipleResults
        );
    }

    #[test]
    fn only_the_last_handlers_failure_becomes_the_error() {
        let registry = Registry::default();
        registry.on_result(Protocol::Json, "F", |(_x,): (i64,)| async move {
            Err::<i64, _>("first failed")
        });
        registry.on_result(Protocol::Json, "F", |(x,): (i64,)| async move {
            Ok::<_, String>(x)
        });
        assert_eq!(
            answer(&registry, "f", args((5,))),
            ClientResult::Value(RawValue::encode(Protocol::Json, &5).unwrap())
        );
        registry.on_result(Protocol::Json, "F", |(_x,): (i64,)| async move {
            Err::<i64, _>("last failed")
        });
        assert_eq!(
            answer(&registry, "f", args((5,))),
            ClientResult::Error("last failed".into())
        );
        let single = Registry::default();
        single.on_result(Protocol::Json, "G", |(_x,): (i64,)| async move {
            Err::<i64, _>("it broke")
        });
        assert_eq!(
            answer(&single, "g", args((5,))),
            ClientResult::Error("it broke".into())
        );
    }

    #[test]
    fn arguments_that_do_not_fit_the_handler_become_an_error_text() {
        let registry = Registry::default();
        registry.on_result(Protocol::Json, "N", |(x,): (i64,)| async move {
            Ok::<_, String>(x)
        });
        match answer(&registry, "n", args(("not a number",))) {
            ClientResult::Error(text) => assert!(text.contains("do not match"), "{text}"),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn names_match_case_insensitively_and_off_removes_all_or_one() {
        let registry = Registry::default();
        let count = Arc::new(AtomicUsize::new(0));
        let c = count.clone();
        let first = registry.on("Message", move |(_s,): (String,)| {
            c.fetch_add(1, Ordering::SeqCst);
        });
        let c = count.clone();
        registry.on("MESSAGE", move |(_s,): (String,)| {
            c.fetch_add(10, Ordering::SeqCst);
        });
        let run = |registry: &Registry| {
            let (handlers, _) = registry.handlers_for("message");
            for h in handlers {
                if let Handler::Plain(f) = h {
                    f(&args(("x",))).unwrap();
                }
            }
        };
        run(&registry);
        assert_eq!(count.load(Ordering::SeqCst), 11);
        registry.off_handler("message", first);
        run(&registry);
        assert_eq!(count.load(Ordering::SeqCst), 21);
        registry.off("Message");
        run(&registry);
        assert_eq!(count.load(Ordering::SeqCst), 21);
        assert!(registry.handlers_for("message").0.is_empty());
    }
}
