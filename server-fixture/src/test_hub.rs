//! The `test` hub of docs/test-hub.md (a fixed contract that clients' tests call by name) and
//! the `chat` demo hub.

use crate::context::{HubContext, StreamSender, UploadStream};
use crate::hub::{Hub, HubError};
use serde_json::{json, Value};
use std::time::Duration;
use talkback_core::protocol::{CompletionResult, RawValue};

/// How long `AskClient` waits for the client's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(30);

fn add(a: &Value, b: &Value) -> Result<Value, HubError> {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        if let Some(sum) = a.checked_add(b) {
            return Ok(json!(sum));
        }
    }
    match (a.as_f64(), b.as_f64()) {
        (Some(a), Some(b)) => Ok(json!(a + b)),
        _ => Err(HubError::hub("Add takes two numbers.")),
    }
}

async fn sleep_ms(ms: u64) {
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms.min(600_000))).await;
    }
}

fn upload(ctx: &HubContext) -> Result<UploadStream, HubError> {
    ctx.take_upload(0)
        .ok_or_else(|| HubError::hub("This method needs an upload stream."))
}

async fn collect(mut stream: UploadStream) -> Result<Vec<Value>, HubError> {
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item?.decode::<Value>()?);
    }
    Ok(items)
}

/// The test hub: every method of the contract in docs/test-hub.md.
pub fn test_hub() -> Hub {
    Hub::builder("test")
        .on_connected(|ctx: HubContext| async move {
            let id = ctx.connection_id().to_owned();
            let _ = ctx.send_to_caller("Welcome", &(id,));
        })
        .raw_method("Echo", |_ctx, args: Vec<RawValue>| async move {
            match args.into_iter().next() {
                Some(value) => Ok(CompletionResult::Value(value)),
                None => Err(HubError::hub("Echo takes one argument.")),
            }
        })
        .method("Add", |_ctx, (a, b): (Value, Value)| async move { add(&a, &b) })
        .method("GetConnectionId", |ctx: HubContext, (): ()| async move {
            Ok(ctx.connection_id().to_owned())
        })
        .method("GetUserId", |ctx: HubContext, (): ()| async move {
            Ok(ctx.user_id().map(str::to_owned))
        })
        .method("GetQuery", |ctx: HubContext, (): ()| async move {
            Ok(ctx.request().query)
        })
        .method("GetHeader", |ctx: HubContext, (name,): (String,)| async move {
            Ok(ctx.request().headers.get(&name.to_ascii_lowercase()).cloned())
        })
        .method("Delay", |_ctx, (ms,): (u64,)| async move {
            sleep_ms(ms).await;
            Ok(ms)
        })
        .method("DoNothing", |_ctx, (): ()| async move { Ok(()) })
        .method("Throw", |_ctx, (message,): (String,)| async move {
            Err::<(), _>(HubError::Hub(message))
        })
        .method("Crash", |_ctx, (): ()| async move {
            Err::<(), _>(HubError::Unexpected(
                "InvalidOperationException: Crash() failed on purpose.".into(),
            ))
        })
        .method("EchoToCaller", |ctx: HubContext, (text,): (Value,)| async move {
            ctx.send_to_caller("Echoed", &(text,))
        })
        .method(
            "SendToCaller",
            |ctx: HubContext, (method, args): (String, Vec<Value>)| async move {
                ctx.send_to_caller(&method, &args)
            },
        )
        .method("Multi", |ctx: HubContext, (a, b, c): (Value, Value, Value)| async move {
            ctx.send_to_caller("Multi", &(a, b, c, json!({"k": "v"}), Value::Null))
        })
        .method("Broadcast", |ctx: HubContext, (text,): (Value,)| async move {
            ctx.send_to_all("Broadcast", &(text,))
        })
        .method("SendToOthers", |ctx: HubContext, (text,): (Value,)| async move {
            ctx.send_to_others("Broadcast", &(text,))
        })
        .method("SendToUser", |ctx: HubContext, (user, text): (String, Value)| async move {
            ctx.send_to_user(&user, "UserMessage", &(text,))
        })
        .method("JoinGroup", |ctx: HubContext, (group,): (String,)| async move {
            ctx.join_group(&group);
            Ok(())
        })
        .method("LeaveGroup", |ctx: HubContext, (group,): (String,)| async move {
            ctx.leave_group(&group);
            Ok(())
        })
        .method(
            "SendToGroup",
            |ctx: HubContext, (group, text): (String, Value)| async move {
                ctx.send_to_group(&group, "GroupMessage", &(group.clone(), text))
            },
        )
        .raw_method("AskClient", |ctx: HubContext, args: Vec<RawValue>| async move {
            let (method, arg): (String, Value) =
                talkback_core::protocol::decode_arguments(&args)?;
            match ctx.invoke_caller(&method, &(arg,), ASK_TIMEOUT).await? {
                Some(value) => Ok(CompletionResult::Value(value)),
                None => Ok(CompletionResult::Value(RawValue::null(ctx.protocol()))),
            }
        })
        .stream(
            "Counter",
            |_ctx, (count, delay): (u64, u64), items: StreamSender| async move {
                for i in 0..count {
                    items.send(&i).await?;
                    sleep_ms(delay).await;
                }
                Ok(())
            },
        )
        .stream(
            "DelayedCounter",
            |_ctx, (count, delay): (u64, u64), items: StreamSender| async move {
                for i in 0..count {
                    sleep_ms(delay).await;
                    items.send(&i).await?;
                }
                Ok(())
            },
        )
        .stream(
            "InfiniteCounter",
            |_ctx, (delay,): (u64,), items: StreamSender| async move {
                let mut i: u64 = 0;
                loop {
                    items.send(&i).await?;
                    i += 1;
                    sleep_ms(delay.max(1)).await;
                }
            },
        )
        .stream(
            "StreamThenFail",
            |_ctx, (count,): (u64,), items: StreamSender| async move {
                for i in 0..count {
                    items.send(&i).await?;
                }
                Err(HubError::hub("stream failed on purpose"))
            },
        )
        .method("UploadSum", |ctx: HubContext, (): ()| async move {
            let mut stream = upload(&ctx)?;
            let mut sum = json!(0);
            while let Some(item) = stream.next().await {
                sum = add(&sum, &item?.decode::<Value>()?)?;
            }
            Ok(sum)
        })
        .method("UploadCollect", |ctx: HubContext, (): ()| async move {
            collect(upload(&ctx)?).await
        })
        .method("UploadNotify", |ctx: HubContext, (): ()| async move {
            let items = collect(upload(&ctx)?).await?;
            ctx.send_to_caller("Uploaded", &(items,))
        })
        .stream(
            "UploadEcho",
            |ctx: HubContext, (): (), items: StreamSender| async move {
                let mut stream = upload(&ctx)?;
                while let Some(item) = stream.next().await {
                    items.send_raw(item?).await?;
                }
                Ok(())
            },
        )
        .method(
            "CloseWithMessage",
            |ctx: HubContext, (error, allow_reconnect): (Option<String>, bool)| async move {
                let error = error.filter(|e| !e.is_empty());
                ctx.close_caller(error, allow_reconnect);
                Ok(())
            },
        )
        .method("CloseMe", |ctx: HubContext, (_reason,): (Value,)| async move {
            ctx.drop_caller_transport();
            Ok(())
        })
        .build()
}

/// The chat demo: `Send(user, message)` broadcasts `ReceiveMessage(user, message)`; rooms are
/// groups.
pub fn chat_hub() -> Hub {
    Hub::builder("chat")
        .method(
            "Send",
            |ctx: HubContext, (user, message): (String, String)| async move {
                ctx.send_to_all("ReceiveMessage", &(user, message))
            },
        )
        .method("Join", |ctx: HubContext, (room,): (String,)| async move {
            ctx.join_group(&room);
            Ok(())
        })
        .method("Leave", |ctx: HubContext, (room,): (String,)| async move {
            ctx.leave_group(&room);
            Ok(())
        })
        .method(
            "SendToRoom",
            |ctx: HubContext, (room, user, message): (String, String, String)| async move {
                ctx.send_to_group(&room, "ReceiveMessage", &(user, message))
            },
        )
        .build()
}
