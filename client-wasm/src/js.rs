//! Small helpers over the JavaScript global object and timers.

use js_sys::{Function, Reflect};
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue};

/// The function the global object (`globalThis`: the window, or the worker's global scope)
/// holds under `name` right now. Looked up on every call, never cached, so that a wrapper or
/// polyfill installed after this module loaded is used.
pub(crate) fn global_function(name: &str) -> Result<Function, String> {
    let global = js_sys::global();
    let value = Reflect::get(&global, &JsValue::from_str(name)).map_err(|e| describe(&e))?;
    value
        .dyn_into::<Function>()
        .map_err(|_| format!("this environment has no global `{name}`"))
}

/// A JavaScript exception or rejection as text: `Name: message` for errors (`DOMException`s
/// included), the string itself for strings.
pub(crate) fn describe(value: &JsValue) -> String {
    if let Some(error) = value.dyn_ref::<js_sys::Error>() {
        let name = String::from(error.name());
        let message = String::from(error.message());
        return match (name.is_empty(), message.is_empty()) {
            (_, true) => name,
            (true, false) => message,
            (false, false) => format!("{name}: {message}"),
        };
    }
    if let Some(text) = value.as_string() {
        return text;
    }
    format!("{value:?}")
}

/// `setTimeout`'s delay for `duration`: rounded up to whole milliseconds (a timer never fires
/// before the time asked), and capped at 2^31 - 1 ms, since browsers treat a longer delay as 0
/// and would fire at once.
pub(crate) fn timer_ms(duration: Duration) -> u32 {
    let ms = duration.as_nanos().div_ceil(1_000_000);
    u32::try_from(ms.min(i32::MAX as u128)).unwrap_or(i32::MAX as u32)
}

/// A future that resolves after `duration` (see [`timer_ms`]).
pub(crate) fn sleep(duration: Duration) -> gloo_timers::future::TimeoutFuture {
    gloo_timers::future::TimeoutFuture::new(timer_ms(duration))
}
