// A typed app written against the API of @microsoft/signalr, using every public name of it that
// talkback-signalr claims. packaging.mjs type-checks it twice with `tsc --noEmit`: against the
// installed talkback-signalr tarball (tsconfig.json) and, unchanged, against @microsoft/signalr
// itself (tsconfig.official.json maps the import there): an app switches by its import alone.
import {
    AbortError,
    HttpError,
    HttpTransportType,
    HubConnection,
    HubConnectionBuilder,
    HubConnectionState,
    JsonHubProtocol,
    LogLevel,
    MessageType,
    NullLogger,
    Subject,
    TimeoutError,
    TransferFormat,
    VERSION,
} from "talkback-signalr";
import type {
    AbortSignal,
    AckMessage,
    CancelInvocationMessage,
    CloseMessage,
    CompletionMessage,
    HubInvocationMessage,
    HubMessage,
    HubMessageBase,
    IHttpConnectionOptions,
    IHubProtocol,
    ILogger,
    InvocationMessage,
    IRetryPolicy,
    IStatefulReconnectOptions,
    IStreamResult,
    IStreamSubscriber,
    ISubscription,
    ITransport,
    MessageHeaders,
    PingMessage,
    RetryContext,
    SequenceMessage,
    StreamInvocationMessage,
    StreamItemMessage,
} from "talkback-signalr";

interface ChatMessage {
    user: string;
    text: string;
}

class PrefixLogger implements ILogger {
    public readonly lines: string[] = [];
    public log(logLevel: LogLevel, message: string): void {
        if (logLevel >= LogLevel.Warning) this.lines.push(`${LogLevel[logLevel]}: ${message}`);
    }
}

const retryForever: IRetryPolicy = {
    nextRetryDelayInMilliseconds(context: RetryContext): number | null {
        const reason: Error = context.retryReason;
        if (reason instanceof HttpError && reason.statusCode === 401) return null;
        return Math.min(30_000, 500 * 2 ** context.previousRetryCount) + (context.elapsedMilliseconds > 60_000 ? 1_000 : 0);
    },
};

const headers: MessageHeaders = { "X-Client": `app/${VERSION}` };
const options: IHttpConnectionOptions = {
    transport: HttpTransportType.WebSockets | HttpTransportType.LongPolling,
    accessTokenFactory: async () => "token",
    headers,
    skipNegotiation: false,
    withCredentials: true,
    timeout: 100_000,
    logger: LogLevel.Warning,
    logMessageContent: false,
};
const stateful: IStatefulReconnectOptions = { bufferSize: 100_000 };
const protocol: IHubProtocol = new JsonHubProtocol();
const textProtocol: boolean = protocol.transferFormat === TransferFormat.Text && protocol.name === "json" && protocol.version >= 1;

export function connect(url: string, logger: ILogger = new PrefixLogger()): HubConnection {
    const connection: HubConnection = new HubConnectionBuilder()
        .withUrl(url, options)
        .withHubProtocol(protocol)
        .configureLogging(textProtocol ? logger : NullLogger.instance)
        .withAutomaticReconnect(retryForever)
        .withStatefulReconnect(stateful)
        .withServerTimeout(60_000)
        .withKeepAliveInterval(15_000)
        .build();
    connection.serverTimeoutInMilliseconds = 60_000;
    connection.keepAliveIntervalInMilliseconds = 15_000;
    return connection;
}

export function builders(url: string): HubConnection[] {
    return [
        new HubConnectionBuilder().withUrl(url).build(),
        new HubConnectionBuilder().withUrl(url, HttpTransportType.ServerSentEvents).configureLogging(LogLevel.Information).build(),
        new HubConnectionBuilder().withUrl(url).configureLogging("warn").withAutomaticReconnect().build(),
        new HubConnectionBuilder().withUrl(url).withAutomaticReconnect([0, 1000, 5000]).withStatefulReconnect().build(),
    ];
}

export async function chat(connection: HubConnection, render: (m: ChatMessage) => void): Promise<number> {
    const onMessage = (user: string, text: string): void => render({ user, text });
    connection.on("ReceiveMessage", onMessage);
    connection.on("Ask", (question: string) => Promise.resolve(question.length));
    connection.onclose((error?: Error) => { if (error) render({ user: "system", text: error.message }); });
    connection.onreconnecting((error?: Error) => render({ user: "system", text: `reconnecting: ${error?.message}` }));
    connection.onreconnected((connectionId?: string) => render({ user: "system", text: `back as ${connectionId}` }));

    if (connection.state === HubConnectionState.Disconnected) await connection.start();
    const id: string | null = connection.connectionId;
    const base: string = connection.baseUrl;
    connection.baseUrl = base;
    await connection.send("Send", "me", `hello from ${id ?? "nobody"}`);
    const sum: number = await connection.invoke<number>("Add", 1, 2);

    const upload = new Subject<number>();
    const total = connection.invoke<number>("UploadSum", upload);
    upload.next(1);
    upload.next(2);
    upload.complete();

    const items: number[] = [];
    const subscriber: IStreamSubscriber<number> = {
        closed: false,
        next: (value: number) => { items.push(value); },
        error: (err: any) => render({ user: "system", text: String(err) }),
        complete: () => render({ user: "system", text: `${items.length} items` }),
    };
    const stream: IStreamResult<number> = connection.stream<number>("Counter", 3, 10);
    const subscription: ISubscription<number> = stream.subscribe(subscriber);
    subscription.dispose();

    connection.off("ReceiveMessage", onMessage);
    connection.off("Ask");
    try {
        await connection.stop();
    } catch (e) {
        if (e instanceof AbortError || e instanceof TimeoutError) return -1;
        throw e;
    }
    return sum + (await total);
}

// The protocol's message types, for apps that log or inspect messages (types only).
export function describe(message: HubMessage): string {
    const base: HubMessageBase = message;
    switch (message.type) {
        case MessageType.Invocation: { const m: InvocationMessage = message; return `${base.type} ${m.target}(${m.arguments.length}) ${m.streamIds ?? []}`; }
        case MessageType.StreamInvocation: { const m: StreamInvocationMessage = message; return `${m.invocationId} ${m.target}`; }
        case MessageType.StreamItem: { const m: StreamItemMessage = message; return `${m.invocationId} ${m.item}`; }
        case MessageType.Completion: { const m: CompletionMessage = message; const h: HubInvocationMessage = m; return `${h.headers} ${m.error ?? m.result}`; }
        case MessageType.CancelInvocation: { const m: CancelInvocationMessage = message; return m.invocationId; }
        case MessageType.Ping: { const m: PingMessage = message; return `${m.type}`; }
        case MessageType.Close: { const m: CloseMessage = message; return `${m.error} ${m.allowReconnect}`; }
        case MessageType.Ack: { const m: AckMessage = message; return `${m.sequenceId}`; }
        case MessageType.Sequence: { const m: SequenceMessage = message; return `${m.sequenceId}`; }
    }
}

export function transportTypes(t: ITransport | undefined, signal: AbortSignal): boolean {
    return signal.aborted || (t?.onreceive ?? null) === null;
}
