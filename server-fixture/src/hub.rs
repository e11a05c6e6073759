//! Hub definitions with typed handlers: [`Hub::builder`], [`HubError`].
//!
//! ```no_run
//! use talkback_fixture::{Hub, HubError};
//! let hub = Hub::builder("calc")
//!     .method("Add", |_ctx, (a, b): (i64, i64)| async move { Ok::<_, HubError>(a + b) })
//!     .build();
//! ```

use crate::context::{HubContext, StreamSender};
use serde::{de::DeserializeOwned, Serialize};
use std::any::TypeId;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use talkback_core::protocol::{decode_arguments, CompletionResult, RawValue};

/// A boxed, sendable future.
pub(crate) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Why a hub method failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HubError {
    /// An error meant for the caller: sent verbatim (like ASP.NET Core's `HubException`).
    #[error("{0}")]
    Hub(String),
    /// An unexpected fault: the caller sees a generic text unless detailed errors are on.
    #[error("{0}")]
    Unexpected(String),
}

impl HubError {
    /// A verbatim error for the caller.
    pub fn hub(message: impl Into<String>) -> Self {
        HubError::Hub(message.into())
    }

    /// The text a Completion carries for `method`.
    pub(crate) fn to_completion_text(&self, method: &str, detailed: bool) -> String {
        match self {
            HubError::Hub(m) => m.clone(),
            HubError::Unexpected(d) if detailed => {
                format!("An unexpected error occurred invoking '{method}' on the server. {d}")
            }
            HubError::Unexpected(_) => {
                format!("An unexpected error occurred invoking '{method}' on the server.")
            }
        }
    }
}

impl From<talkback_core::protocol::ValueError> for HubError {
    fn from(e: talkback_core::protocol::ValueError) -> Self {
        HubError::Unexpected(format!("InvalidDataException: {e}"))
    }
}

pub(crate) type InvokeFn = Arc<
    dyn Fn(HubContext, Vec<RawValue>) -> BoxFuture<Result<CompletionResult, HubError>>
        + Send
        + Sync,
>;
pub(crate) type StreamFn = Arc<
    dyn Fn(HubContext, Vec<RawValue>, StreamSender) -> BoxFuture<Result<(), HubError>>
        + Send
        + Sync,
>;
pub(crate) type LifecycleFn = Arc<dyn Fn(HubContext) -> BoxFuture<()> + Send + Sync>;
/// Makes the method for a target the hub does not define, given the target and the
/// invocation id (the Azure serverless mode forwards every invocation upstream).
pub(crate) type FallbackFn = Arc<dyn Fn(&str, Option<&str>) -> Option<Method> + Send + Sync>;

/// A registered hub method.
#[derive(Clone)]
pub(crate) enum Method {
    /// Answers with one Completion.
    Invoke(InvokeFn),
    /// Yields StreamItems, then one Completion.
    Stream(StreamFn),
    /// A connection callback (run through the same per-connection queue as invocations).
    Lifecycle(LifecycleFn),
}

/// A hub: a name, its methods (looked up case-insensitively) and connection callbacks.
#[derive(Clone)]
pub struct Hub {
    pub(crate) name: Arc<str>,
    pub(crate) methods: HashMap<String, Method>,
    pub(crate) on_connected: Option<LifecycleFn>,
    pub(crate) on_disconnected: Option<LifecycleFn>,
    /// Answers targets the hub does not define (see [`FallbackFn`]).
    pub(crate) fallback: Option<FallbackFn>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("name", &self.name)
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Hub {
    /// Starts a hub served at `/hubs/{name}`.
    pub fn builder(name: impl Into<String>) -> HubBuilder {
        HubBuilder {
            hub: Hub {
                name: Arc::from(name.into()),
                methods: HashMap::new(),
                on_connected: None,
                on_disconnected: None,
                fallback: None,
            },
        }
    }

    /// The hub's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The method for `target`: a defined one, else the fallback's.
    pub(crate) fn resolve(&self, target: &str, invocation_id: Option<&str>) -> Option<Method> {
        match self.find(target) {
            Some(method) => Some(method.clone()),
            None => self.fallback.as_ref()?(target, invocation_id),
        }
    }

    pub(crate) fn find(&self, target: &str) -> Option<&Method> {
        // Lowered on the stack when the name is short (method names are), so that looking up
        // the method of every call allocates nothing.
        let mut buffer = [0u8; 64];
        if let Some(lowered) = buffer.get_mut(..target.len()) {
            lowered.copy_from_slice(target.as_bytes());
            lowered.make_ascii_lowercase();
            // ASCII lowering leaves UTF-8 valid.
            return std::str::from_utf8(lowered)
                .ok()
                .and_then(|name| self.methods.get(name));
        }
        self.methods.get(&target.to_ascii_lowercase())
    }
}

/// Builds a [`Hub`].
#[derive(Debug)]
pub struct HubBuilder {
    hub: Hub,
}

fn bind<A: DeserializeOwned>(target: &str, args: &[RawValue]) -> Result<A, HubError> {
    decode_arguments(args).map_err(|e| {
        HubError::Hub(format!(
            "Failed to invoke '{target}' due to an error on the server. InvalidDataException: Error binding arguments. {e}"
        ))
    })
}

impl HubBuilder {
    /// Adds an invokable method whose arguments decode as the tuple `A` and whose result `R` is
    /// serialized in the caller's protocol; `R = ()` gives a Completion without a result.
    pub fn method<A, R, F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        F: Fn(HubContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, HubError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let target = name.to_string();
        let f: InvokeFn = Arc::new(move |ctx: HubContext, args: Vec<RawValue>| {
            let handler = handler.clone();
            let target = target.clone();
            Box::pin(async move {
                let a: A = bind(&target, &args)?;
                let protocol = ctx.protocol();
                let r = handler(ctx, a).await?;
                if TypeId::of::<R>() == TypeId::of::<()>() {
                    Ok(CompletionResult::Void)
                } else {
                    Ok(CompletionResult::Value(RawValue::encode(protocol, &r)?))
                }
            })
        });
        self.hub
            .methods
            .insert(name.to_ascii_lowercase(), Method::Invoke(f));
        self
    }

    /// Adds an invokable method that sees its arguments as they arrived and answers with a
    /// [`CompletionResult`] (for echoing values without re-encoding them).
    pub fn raw_method<F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        F: Fn(HubContext, Vec<RawValue>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<CompletionResult, HubError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let f: InvokeFn = Arc::new(move |ctx, args| {
            let handler = handler.clone();
            Box::pin(async move { handler(ctx, args).await })
        });
        self.hub
            .methods
            .insert(name.to_ascii_lowercase(), Method::Invoke(f));
        self
    }

    /// Adds a streaming method: the handler sends items through its [`StreamSender`] and returns
    /// when the stream ends (an `Err` ends it with an error Completion). A CancelInvocation
    /// drops the handler's future.
    pub fn stream<A, F, Fut>(mut self, name: &str, handler: F) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(HubContext, A, StreamSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HubError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let target = name.to_string();
        let f: StreamFn = Arc::new(move |ctx, args, sender| {
            let handler = handler.clone();
            let target = target.clone();
            Box::pin(async move {
                let a: A = bind(&target, &args)?;
                handler(ctx, a, sender).await
            })
        });
        self.hub
            .methods
            .insert(name.to_ascii_lowercase(), Method::Stream(f));
        self
    }

    /// Runs `handler` once a connection's handshake succeeded.
    pub fn on_connected<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(HubContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.hub.on_connected = Some(Arc::new(move |ctx| {
            let handler = handler.clone();
            Box::pin(async move { handler(ctx).await })
        }));
        self
    }

    /// Runs `handler` after a connection ended.
    pub fn on_disconnected<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(HubContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler = Arc::new(handler);
        self.hub.on_disconnected = Some(Arc::new(move |ctx| {
            let handler = handler.clone();
            Box::pin(async move { handler(ctx).await })
        }));
        self
    }

    /// The finished hub.
    pub fn build(self) -> Hub {
        self.hub
    }
}
