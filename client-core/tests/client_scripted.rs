//! The client layer (`talkback_core::client`) on a scripted in-memory [`Runtime`]: HTTP requests
//! and WebSockets the test answers by hand, a virtual clock that moves only when told, and a
//! one-thread executor (`futures::executor::LocalPool`, run until nothing can progress). No
//! network, no tokio: the same tests build for `wasm32-unknown-unknown`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use futures::channel::mpsc;
use futures::executor::LocalPool;
use futures::future::RemoteHandle;
use futures::task::LocalSpawnExt;
use futures::{FutureExt, SinkExt, StreamExt};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use talkback_core::client::{
    BoxFuture, BoxStream, HubConnection, HubConnectionBuilder, Outgoing, Runtime, Shell,
    SocketClosed, WebSocket, WebSocketRequest,
};
use talkback_core::{
    Duration, HttpEvent, HttpMethod, HttpRequest, Instant, State, TransferFormat, TransportKind,
    TransportSet, WebSocketEvent,
};

/// A clock that moves only in [`Scripted::advance`].
struct Clock {
    now: Mutex<Instant>,
    sleepers: Mutex<Vec<(Instant, Waker)>>,
}

struct Sleep {
    clock: Arc<Clock>,
    deadline: Instant,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if *self.clock.now.lock().unwrap() >= self.deadline {
            return Poll::Ready(());
        }
        let entry = (self.deadline, cx.waker().clone());
        self.clock.sleepers.lock().unwrap().push(entry);
        Poll::Pending
    }
}

/// A WebSocket the client opened: the test reports its events and reads its frames.
struct ScriptedSocket {
    request: WebSocketRequest,
    events: mpsc::UnboundedSender<WebSocketEvent>,
    frames: mpsc::UnboundedReceiver<Outgoing>,
}

impl ScriptedSocket {
    fn report(&self, event: WebSocketEvent) {
        self.events.unbounded_send(event).unwrap();
    }

    fn receive(&self, text: &str) {
        self.report(WebSocketEvent::Message(text.to_string().into()));
    }

    /// The next frame the client wrote (as text), if any.
    fn frame(&mut self) -> Option<String> {
        match self.frames.try_recv() {
            Ok(Outgoing::Frame(data, TransferFormat::Text)) => {
                Some(String::from_utf8(data.to_vec()).unwrap())
            }
            Ok(other) => panic!("expected a text frame, got {other:?}"),
            Err(_) => None,
        }
    }
}

/// The scripted runtime.
struct Scripted {
    clock: Arc<Clock>,
    spawned: mpsc::UnboundedSender<BoxFuture<()>>,
    http: Mutex<VecDeque<(HttpRequest, mpsc::UnboundedSender<HttpEvent>)>>,
    sockets: Mutex<VecDeque<ScriptedSocket>>,
}

impl Scripted {
    fn advance(&self, by: Duration) {
        let now = {
            let mut now = self.clock.now.lock().unwrap();
            *now += by;
            *now
        };
        let due: Vec<Waker> = {
            let mut sleepers = self.clock.sleepers.lock().unwrap();
            let (due, later) = sleepers.drain(..).partition(|(d, _)| *d <= now);
            *sleepers = later;
            due.into_iter().map(|(_, w)| w).collect()
        };
        for waker in due {
            waker.wake();
        }
    }

    fn take_http(&self) -> Option<(HttpRequest, mpsc::UnboundedSender<HttpEvent>)> {
        self.http.lock().unwrap().pop_front()
    }

    fn take_socket(&self) -> Option<ScriptedSocket> {
        self.sockets.lock().unwrap().pop_front()
    }
}

impl Runtime for Scripted {
    fn spawn(&self, task: BoxFuture<()>) {
        self.spawned.unbounded_send(task).unwrap();
    }

    fn now(&self) -> Instant {
        *self.clock.now.lock().unwrap()
    }

    fn sleep_until(&self, deadline: Instant) -> BoxFuture<()> {
        Box::pin(Sleep {
            clock: self.clock.clone(),
            deadline,
        })
    }

    fn http(&self, request: HttpRequest) -> BoxStream<HttpEvent> {
        let (tx, rx) = mpsc::unbounded();
        self.http.lock().unwrap().push_back((request, tx));
        Box::pin(rx)
    }

    fn websocket(&self, request: WebSocketRequest) -> WebSocket {
        let (events_tx, events_rx) = mpsc::unbounded();
        let (frames_tx, frames_rx) = mpsc::unbounded();
        self.sockets.lock().unwrap().push_back(ScriptedSocket {
            request,
            events: events_tx,
            frames: frames_rx,
        });
        WebSocket {
            events: Box::pin(events_rx),
            frames: Box::pin(frames_tx.sink_map_err(|_| SocketClosed)),
        }
    }
}

/// The tests' shell: each connection gets its scripted runtime with `with_runtime`.
struct TestShell;

impl Shell for TestShell {
    fn runtime() -> Arc<dyn Runtime> {
        unreachable!("every test gives its connection a scripted runtime")
    }
}

/// The executor and the runtime of one test.
struct Harness {
    pool: LocalPool,
    rt: Arc<Scripted>,
}

impl Harness {
    // On wasm32 the runtime's boxed futures are not `Send`, so neither is the runtime.
    #[cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]
    fn new() -> Harness {
        let pool = LocalPool::new();
        let (spawned, tasks) = mpsc::unbounded::<BoxFuture<()>>();
        let spawner = pool.spawner();
        pool.spawner()
            .spawn_local(tasks.for_each(move |task| {
                spawner.spawn_local(task).unwrap();
                std::future::ready(())
            }))
            .unwrap();
        let rt = Arc::new(Scripted {
            clock: Arc::new(Clock {
                now: Mutex::new(Instant::now()),
                sleepers: Mutex::new(Vec::new()),
            }),
            spawned,
            http: Mutex::new(VecDeque::new()),
            sockets: Mutex::new(VecDeque::new()),
        });
        Harness { pool, rt }
    }

    fn builder(&self, url: &str) -> HubConnectionBuilder<TestShell> {
        HubConnectionBuilder::<TestShell>::new(url).with_runtime(self.rt.clone())
    }

    /// Runs every task until none can make progress.
    fn run(&mut self) {
        self.pool.run_until_stalled();
    }

    fn spawn<T: 'static>(&mut self, fut: impl Future<Output = T> + 'static) -> RemoteHandle<T> {
        self.pool.spawner().spawn_local_with_handle(fut).unwrap()
    }
}

/// The outcome of a spawned call, which must have finished.
fn done<T: 'static>(handle: &mut RemoteHandle<T>) -> T {
    handle.now_or_never().expect("the call has finished")
}

const HANDSHAKE: &str = "{\"protocol\":\"json\",\"version\":1}\u{1e}";

const PING: &str = "{\"type\":6}\u{1e}";

/// Opens `socket` and completes the handshake (after which the client sends a Ping).
fn open(h: &mut Harness, socket: &mut ScriptedSocket) {
    socket.report(WebSocketEvent::Opened);
    h.run();
    assert_eq!(socket.frame().as_deref(), Some(HANDSHAKE));
    socket.receive("{}\u{1e}");
    h.run();
    assert_eq!(socket.frame().as_deref(), Some(PING));
}

/// The invocation id of an Invocation frame.
fn invocation_id(frame: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(frame.trim_end_matches('\u{1e}')).unwrap();
    value["invocationId"].as_str().unwrap().to_string()
}

#[test]
fn starts_over_a_websocket_invokes_and_runs_handlers_in_order() {
    let mut h = Harness::new();
    let conn = h.builder("http://hub.test/hubs/test").build().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    conn.on("Hello", move |(text,): (String,)| {
        s.lock().unwrap().push(text)
    });
    conn.on_result("Ask", |(): ()| async { Ok::<_, String>("yes") });

    let c = conn.clone();
    let mut started = h.spawn(async move { c.start().await });
    h.run();
    let (negotiate, reply) = h.rt.take_http().expect("a negotiate request");
    assert_eq!(negotiate.method, HttpMethod::Post);
    assert!(
        negotiate
            .url
            .starts_with("http://hub.test/hubs/test/negotiate"),
        "{}",
        negotiate.url
    );
    let body = r#"{"connectionId":"c1","connectionToken":"t1","negotiateVersion":1,
        "availableTransports":[{"transport":"WebSockets","transferFormats":["Text","Binary"]}]}"#;
    reply
        .unbounded_send(HttpEvent::Response {
            status: 200,
            body: body.into(),
        })
        .unwrap();
    h.run();
    let mut socket = h.rt.take_socket().expect("a WebSocket");
    assert!(
        socket
            .request
            .url
            .starts_with("ws://hub.test/hubs/test?id=t1"),
        "{}",
        socket.request.url
    );
    open(&mut h, &mut socket);
    done(&mut started).unwrap();
    assert_eq!(conn.state(), State::Connected);
    assert_eq!(conn.connection_id().as_deref(), Some("c1"));

    let c = conn.clone();
    let mut sum = h.spawn(async move { c.invoke::<i64>("Add", (1, 2)).await });
    h.run();
    let call = socket.frame().expect("the invocation");
    assert!(call.contains("\"target\":\"Add\""), "{call}");
    let id = invocation_id(&call);
    socket.receive(&format!(
        "{{\"type\":3,\"invocationId\":\"{id}\",\"result\":3}}\u{1e}"
    ));
    h.run();
    assert_eq!(done(&mut sum).unwrap(), 3);

    for text in ["one", "two", "three"] {
        socket.receive(&format!(
            "{{\"type\":1,\"target\":\"hello\",\"arguments\":[\"{text}\"]}}\u{1e}"
        ));
    }
    socket.receive("{\"type\":1,\"invocationId\":\"7\",\"target\":\"ask\",\"arguments\":[]}\u{1e}");
    h.run();
    assert_eq!(*seen.lock().unwrap(), ["one", "two", "three"]);
    let answer = socket.frame().expect("the client result");
    assert!(answer.contains("\"invocationId\":\"7\""), "{answer}");
    assert!(answer.contains("\"result\":\"yes\""), "{answer}");

    let c = conn.clone();
    let mut stopped = h.spawn(async move { c.stop().await });
    h.run();
    assert!(socket
        .frame()
        .expect("a Close message")
        .contains("\"type\":7"));
    socket.report(WebSocketEvent::Closed {
        code: Some(1000),
        reason: String::new(),
    });
    h.run();
    done(&mut stopped).unwrap();
    assert_eq!(conn.state(), State::Disconnected);
}

/// Connects straight over a WebSocket (no negotiate), reconnecting after `delays`.
fn connect_with_reconnect(
    h: &mut Harness,
    delays: Vec<Duration>,
) -> (HubConnection, ScriptedSocket) {
    let conn = h
        .builder("ws://hub.test/hubs/test")
        .with_transports(TransportSet::only(TransportKind::WebSockets))
        .skip_negotiation(true)
        .with_automatic_reconnect_delays(delays)
        .build()
        .unwrap();
    let c = conn.clone();
    let mut started = h.spawn(async move { c.start().await });
    h.run();
    let mut socket = h.rt.take_socket().expect("a WebSocket");
    open(h, &mut socket);
    done(&mut started).unwrap();
    (conn, socket)
}

#[test]
fn a_reconnect_delay_elapses_in_virtual_time() {
    let mut h = Harness::new();
    let (conn, socket) = connect_with_reconnect(&mut h, vec![Duration::from_secs(5)]);
    let events = Arc::new(Mutex::new(Vec::new()));
    let e = events.clone();
    conn.on_reconnecting(move |_| e.lock().unwrap().push("reconnecting".to_string()));
    let e = events.clone();
    conn.on_reconnected(move |_| e.lock().unwrap().push("reconnected".to_string()));

    socket.report(WebSocketEvent::Closed {
        code: Some(1006),
        reason: "lost".into(),
    });
    h.run();
    assert_eq!(conn.state(), State::Reconnecting);
    assert_eq!(*events.lock().unwrap(), ["reconnecting"]);
    assert!(h.rt.take_socket().is_none(), "no attempt before the delay");

    h.rt.advance(Duration::from_millis(4_900));
    h.run();
    assert!(h.rt.take_socket().is_none(), "no attempt before the delay");

    h.rt.advance(Duration::from_millis(100));
    h.run();
    let mut again =
        h.rt.take_socket()
            .expect("a reconnect attempt once the delay passed");
    open(&mut h, &mut again);
    assert_eq!(conn.state(), State::Connected);
    assert_eq!(*events.lock().unwrap(), ["reconnecting", "reconnected"]);
}

#[test]
fn a_silent_server_times_out_in_virtual_time_and_stop_resolves() {
    let mut h = Harness::new();
    let (conn, mut socket) = connect_with_reconnect(&mut h, Vec::new());
    let closed = Arc::new(Mutex::new(None));
    let c = closed.clone();
    conn.on_close(move |error| *c.lock().unwrap() = Some(error));

    // The client pings after 15 s without sending; the server says nothing for 30 s.
    h.rt.advance(Duration::from_secs(14));
    h.run();
    assert_eq!(socket.frame(), None);
    h.rt.advance(Duration::from_secs(1));
    h.run();
    assert_eq!(socket.frame().as_deref(), Some(PING));
    assert_eq!(conn.state(), State::Connected);
    h.rt.advance(Duration::from_secs(15));
    h.run();
    assert_eq!(conn.state(), State::Disconnected);
    let error = closed.lock().unwrap().clone().expect("on_close ran");
    assert!(error.is_some(), "closed with the server-timeout error");

    let c = conn.clone();
    let mut stopped = h.spawn(async move { c.stop().await });
    h.run();
    done(&mut stopped).unwrap();
}

#[test]
fn a_slow_stream_consumer_holds_back_reading_without_losing_items() {
    let mut h = Harness::new();
    let (conn, mut socket) = connect_with_reconnect(&mut h, Vec::new());
    let c = conn.clone();
    let mut stream = h.spawn(async move { c.stream::<i64>("Counter", (200,)).await });
    h.run();
    let id = invocation_id(&socket.frame().expect("the stream invocation"));
    let mut stream = done(&mut stream).unwrap();
    for i in 0..200 {
        socket.receive(&format!(
            "{{\"type\":2,\"invocationId\":\"{id}\",\"item\":{i}}}\u{1e}"
        ));
    }
    socket.receive(&format!("{{\"type\":3,\"invocationId\":\"{id}\"}}\u{1e}"));
    h.run();
    let items: Vec<i64> = std::iter::from_fn(|| stream.next().now_or_never().flatten())
        .map(|item| item.unwrap())
        .collect();
    // The stream's buffer is full; the rest waits in the driver, which stopped reading.
    assert!(items.len() < 200, "{} items buffered", items.len());
    let mut all = items;
    loop {
        h.run();
        match stream.next().now_or_never() {
            Some(Some(item)) => all.push(item.unwrap()),
            Some(None) => break,
            None => panic!("the stream stalled after {} items", all.len()),
        }
    }
    assert_eq!(all, (0..200).collect::<Vec<_>>());
}
