// What talkback-signalr adds to the official surface: MessagePack built in (no second package)
// and the official client's error classes that its index does not export. Type-checked against
// talkback-signalr only (tsconfig.json).
import {
    AggregateErrors,
    DisabledTransportError,
    FailedToNegotiateWithServerError,
    FailedToStartTransportError,
    HttpTransportType,
    HubConnection,
    HubConnectionBuilder,
    MessagePackHubProtocol,
    UnsupportedTransportError,
} from "talkback-signalr";

export function binary(url: string): HubConnection {
    return new HubConnectionBuilder().withUrl(url).withHubProtocol(new MessagePackHubProtocol()).build();
}

export function explain(e: unknown): string {
    if (e instanceof AggregateErrors) return e.innerErrors.map((inner) => inner.message).join("; ");
    if (e instanceof FailedToNegotiateWithServerError) return e.errorType;
    if (e instanceof UnsupportedTransportError || e instanceof DisabledTransportError || e instanceof FailedToStartTransportError) {
        return `${HttpTransportType[e.transport]}: ${e.errorType}`;
    }
    return String(e);
}
