// Type definitions for talkback-signalr: the API of @microsoft/signalr.

export declare const VERSION: string;

export declare enum LogLevel {
    Trace = 0,
    Debug = 1,
    Information = 2,
    Warning = 3,
    Error = 4,
    Critical = 5,
    None = 6,
}

export declare enum HttpTransportType {
    None = 0,
    WebSockets = 1,
    ServerSentEvents = 2,
    LongPolling = 4,
}

export declare enum TransferFormat {
    Text = 1,
    Binary = 2,
}

export declare enum MessageType {
    Invocation = 1,
    StreamItem = 2,
    Completion = 3,
    StreamInvocation = 4,
    CancelInvocation = 5,
    Ping = 6,
    Close = 7,
    Ack = 8,
    Sequence = 9,
}

export declare enum HubConnectionState {
    Disconnected = "Disconnected",
    Connecting = "Connecting",
    Connected = "Connected",
    Disconnecting = "Disconnecting",
    Reconnecting = "Reconnecting",
}

export interface ILogger {
    log(logLevel: LogLevel, message: string): void;
}

export declare class NullLogger implements ILogger {
    static instance: ILogger;
    log(_logLevel: LogLevel, _message: string): void;
}

export declare class HttpError extends Error {
    statusCode: number;
    constructor(errorMessage: string, statusCode: number);
}
export declare class TimeoutError extends Error {
    constructor(errorMessage?: string);
}
export declare class AbortError extends Error {
    constructor(errorMessage?: string);
}
export declare class UnsupportedTransportError extends Error {
    transport: HttpTransportType;
    errorType: "UnsupportedTransportError";
    constructor(message: string, transport: HttpTransportType);
}
export declare class DisabledTransportError extends Error {
    transport: HttpTransportType;
    errorType: "DisabledTransportError";
    constructor(message: string, transport: HttpTransportType);
}
export declare class FailedToStartTransportError extends Error {
    transport: HttpTransportType;
    errorType: "FailedToStartTransportError";
    constructor(message: string, transport: HttpTransportType);
}
export declare class FailedToNegotiateWithServerError extends Error {
    errorType: "FailedToNegotiateWithServerError";
    constructor(message: string);
}
export declare class AggregateErrors extends Error {
    innerErrors: Error[];
    constructor(message: string, innerErrors: Error[]);
}

export interface IHubProtocol {
    readonly name: string;
    readonly version: number;
    readonly transferFormat: TransferFormat;
}
export declare class JsonHubProtocol implements IHubProtocol {
    readonly name: string;
    readonly version: number;
    readonly transferFormat: TransferFormat;
    parseMessages(input: string, logger: ILogger): HubMessage[];
    writeMessage(message: HubMessage): string;
}
export declare class MessagePackHubProtocol implements IHubProtocol {
    readonly name: string;
    readonly version: number;
    readonly transferFormat: TransferFormat;
    constructor(messagePackOptions?: object);
    /** The messages of `input` (length-prefixed MessagePack), as the official protocol parses them. */
    parseMessages(input: ArrayBuffer, logger: ILogger): HubMessage[];
    /** One message, length-prefixed, as the official protocol writes it. */
    writeMessage(message: HubMessage): ArrayBuffer;
}

export interface MessageHeaders {
    [key: string]: string;
}

// The hub protocol's messages, as @microsoft/signalr declares them (types only: talkback-signalr
// encodes and decodes messages in its wasm engine, so apps see them only when they log them).
export type HubMessage =
    | InvocationMessage
    | StreamInvocationMessage
    | StreamItemMessage
    | CompletionMessage
    | CancelInvocationMessage
    | PingMessage
    | CloseMessage
    | AckMessage
    | SequenceMessage;
export interface HubMessageBase {
    readonly type: MessageType;
}
export interface HubInvocationMessage extends HubMessageBase {
    readonly headers?: MessageHeaders;
    readonly invocationId?: string;
}
export interface InvocationMessage extends HubInvocationMessage {
    readonly type: MessageType.Invocation;
    readonly target: string;
    readonly arguments: any[];
    readonly streamIds?: string[];
}
export interface StreamInvocationMessage extends HubInvocationMessage {
    readonly type: MessageType.StreamInvocation;
    readonly invocationId: string;
    readonly target: string;
    readonly arguments: any[];
    readonly streamIds?: string[];
}
export interface StreamItemMessage extends HubInvocationMessage {
    readonly type: MessageType.StreamItem;
    readonly invocationId: string;
    readonly item?: any;
}
export interface CompletionMessage extends HubInvocationMessage {
    readonly type: MessageType.Completion;
    readonly invocationId: string;
    readonly error?: string;
    readonly result?: any;
}
export interface PingMessage extends HubMessageBase {
    readonly type: MessageType.Ping;
}
export interface CloseMessage extends HubMessageBase {
    readonly type: MessageType.Close;
    readonly error?: string;
    readonly allowReconnect?: boolean;
}
export interface CancelInvocationMessage extends HubInvocationMessage {
    readonly type: MessageType.CancelInvocation;
    readonly invocationId: string;
}
export interface AckMessage extends HubMessageBase {
    readonly type: MessageType.Ack;
    readonly sequenceId: number;
}
export interface SequenceMessage extends HubMessageBase {
    readonly type: MessageType.Sequence;
    readonly sequenceId: number;
}

// The official transport and abort-signal interfaces (types only: talkback-signalr's transports
// live in its engine and `withUrl` takes no custom ITransport object).
export interface ITransport {
    connect(url: string, transferFormat: TransferFormat): Promise<void>;
    send(data: any): Promise<void>;
    stop(): Promise<void>;
    onreceive: ((data: string | ArrayBuffer) => void) | null;
    onclose: ((error?: Error) => void) | null;
}
export interface AbortSignal {
    aborted: boolean;
    onabort: (() => void) | null;
}

/** An HTTP request, as the official HttpClient takes it. */
export interface HttpRequest {
    method?: string;
    url?: string;
    content?: string | ArrayBuffer;
    headers?: MessageHeaders;
    responseType?: XMLHttpRequestResponseType;
    abortSignal?: AbortSignal;
    timeout?: number;
    withCredentials?: boolean;
}

/** An HTTP response. */
export declare class HttpResponse {
    readonly statusCode: number;
    readonly statusText?: string | undefined;
    readonly content?: string | ArrayBuffer | undefined;
    constructor(statusCode: number);
    constructor(statusCode: number, statusText: string);
    constructor(statusCode: number, statusText: string, content: string);
    constructor(statusCode: number, statusText: string, content: ArrayBuffer);
    constructor(statusCode: number, statusText: string, content: string | ArrayBuffer);
}

/** The official HTTP client abstraction (`get`, `post` and `delete` call `send`). */
export declare abstract class HttpClient {
    get(url: string): Promise<HttpResponse>;
    get(url: string, options: HttpRequest): Promise<HttpResponse>;
    post(url: string): Promise<HttpResponse>;
    post(url: string, options: HttpRequest): Promise<HttpResponse>;
    delete(url: string): Promise<HttpResponse>;
    delete(url: string, options: HttpRequest): Promise<HttpResponse>;
    abstract send(request: HttpRequest): Promise<HttpResponse>;
    getCookieString(url: string): string;
}

/** A fetch-based HttpClient with the official one's behaviour. */
export declare class DefaultHttpClient extends HttpClient {
    constructor(logger: ILogger);
    send(request: HttpRequest): Promise<HttpResponse>;
    getCookieString(url: string): string;
}

/**
 * A WebSocket class: the browser's, Node.js 22's, or the `ws` package's (its instances are
 * typed `object` so that the type needs no DOM library).
 */
export interface WebSocketConstructor {
    new (url: string, protocols?: string | string[], options?: any): object;
    readonly CLOSED: number;
    readonly CLOSING: number;
    readonly CONNECTING: number;
    readonly OPEN: number;
}

export interface IHttpConnectionOptions {
    headers?: MessageHeaders;
    /**
     * Makes the connection's HTTP requests, as in the official client: negotiate, the long polls
     * (aborted through `abortSignal` on stop), the sends of long polling and Server-Sent Events,
     * and the long polling DELETE go to its `send`. The Server-Sent Events stream and the
     * WebSocket are opened by the package (`fetch`, the WebSocket constructor); the client is
     * asked `getCookieString` for each WebSocket, and in Node.js its answer goes on the upgrade
     * as `Cookie`. Without it, the engine uses `fetch`.
     */
    httpClient?: HttpClient;
    /**
     * The WebSocket constructor, as the official client takes it (it keeps the option out of
     * its published types): used in every environment. Without it, in Node.js the `ws`
     * package (a dependency of this package), else the global `WebSocket`; with none,
     * WebSockets is skipped as not supported in the environment. In Node.js it is called as
     * the official client calls `ws`: `new WebSocket(url, undefined, { headers })`, the headers
     * holding the user agent, `Authorization` and the `headers` option; elsewhere
     * `new WebSocket(url)`.
     */
    WebSocket?: WebSocketConstructor;
    /**
     * Accepted for code written for the official client, and not used: this package reads the
     * Server-Sent Events stream with `fetch` in every environment (which, in Node.js, sends the
     * same headers the official client gives its `EventSource` there).
     */
    EventSource?: unknown;
    transport?: HttpTransportType;
    logger?: ILogger | LogLevel;
    accessTokenFactory?(): string | Promise<string>;
    logMessageContent?: boolean;
    skipNegotiation?: boolean;
    withCredentials?: boolean;
    timeout?: number;
}

export interface IStatefulReconnectOptions {
    bufferSize: number;
}

export interface RetryContext {
    readonly previousRetryCount: number;
    readonly elapsedMilliseconds: number;
    readonly retryReason: Error;
}

export interface IRetryPolicy {
    nextRetryDelayInMilliseconds(retryContext: RetryContext): number | null;
}

export interface IStreamSubscriber<T> {
    closed?: boolean;
    next(value: T): void;
    error(err: any): void;
    complete(): void;
}

export interface ISubscription<T> {
    dispose(): void;
}

export interface IStreamResult<T> {
    subscribe(subscriber: IStreamSubscriber<T>): ISubscription<T>;
}

export declare class Subject<T> implements IStreamResult<T> {
    observers: IStreamSubscriber<T>[];
    cancelCallback?: () => Promise<void>;
    constructor();
    next(item: T): void;
    error(err: any): void;
    complete(): void;
    subscribe(observer: IStreamSubscriber<T>): ISubscription<T>;
}

export declare class HubConnection {
    serverTimeoutInMilliseconds: number;
    keepAliveIntervalInMilliseconds: number;
    readonly state: HubConnectionState;
    readonly connectionId: string | null;
    baseUrl: string;
    start(): Promise<void>;
    stop(): Promise<void>;
    stream<T = any>(methodName: string, ...args: any[]): IStreamResult<T>;
    send(methodName: string, ...args: any[]): Promise<void>;
    invoke<T = any>(methodName: string, ...args: any[]): Promise<T>;
    on(methodName: string, newMethod: (...args: any[]) => any): void;
    off(methodName: string): void;
    off(methodName: string, method: (...args: any[]) => void): void;
    onclose(callback: (error?: Error) => void): void;
    onreconnecting(callback: (error?: Error) => void): void;
    onreconnected(callback: (connectionId?: string) => void): void;
}

export declare class HubConnectionBuilder {
    withHubProtocol(protocol: IHubProtocol): HubConnectionBuilder;
    configureLogging(logLevel: LogLevel): HubConnectionBuilder;
    configureLogging(logger: ILogger): HubConnectionBuilder;
    configureLogging(logLevel: string): HubConnectionBuilder;
    configureLogging(logging: LogLevel | string | ILogger): HubConnectionBuilder;
    withUrl(url: string): HubConnectionBuilder;
    withUrl(url: string, transportType: HttpTransportType): HubConnectionBuilder;
    withUrl(url: string, options: IHttpConnectionOptions): HubConnectionBuilder;
    withAutomaticReconnect(): HubConnectionBuilder;
    withAutomaticReconnect(retryDelays: number[]): HubConnectionBuilder;
    withAutomaticReconnect(reconnectPolicy: IRetryPolicy): HubConnectionBuilder;
    withServerTimeout(milliseconds: number): HubConnectionBuilder;
    withKeepAliveInterval(milliseconds: number): HubConnectionBuilder;
    withStatefulReconnect(options?: IStatefulReconnectOptions): HubConnectionBuilder;
    build(): HubConnection;
}
