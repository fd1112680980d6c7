import IdlegateHTTP
import IdlegatePolicy

/// What a connection machine asks its driver to do, besides sending bytes.
enum Action {
    /// Open a connection to upstream `index` (a pooled one when there is one); the driver answers
    /// with `upstreamConnected` or `upstreamFailed`.
    case connect(upstream: Int)
    /// The exchange is over for the upstream connection: back to the pool when `reusable`, else closed.
    case releaseUpstream(reusable: Bool)
    /// Ask the session gate about `ConnectionMachine.pending`'s request; the driver answers with `verdict`,
    /// now or later. (The request stays in the machine: an action is copied, a request is large.)
    case checkSession
    /// Ask the session gate whether the open tunnel's session is over; the driver answers with
    /// `tunnelSessionChecked`, now or later.
    case checkTunnel
    /// End a session in Odoo as well, with the request's Host and forwarding fields.
    case destroy(DestroyCall)
    /// After a stale pooled connection: the others of its upstream are probably stale too.
    case dropIdleUpstreams(Int)
    /// An answer idlegate made itself: one log line, one count, one audit event (the error funnel).
    case answered(Answered)
    /// The upstream failed after the response began: nothing can be answered any more; log the line
    /// and count the error (the connection is cut: the only honest signal for a truncated response).
    case upstreamCut(status: Int, line: String)
    /// A line for the log that is no answer (a client that went away mid-request).
    case log(String)
    /// The last answer is out: stop sending (lingering close begins).
    case shutdownClientWrite
    /// Close the client connection (and the upstream one, if any) now.
    case closeClient
}

extension Action {
    /// Ends the client's stream: the client bytes queued before it must be written first.
    var endsClientStream: Bool {
        switch self {
        case .shutdownClientWrite, .closeClient: return true
        default: return false
        }
    }
}

/// A destroy order with what Odoo's dbfilter needs to find the session's database. (A class: actions
/// are copied on every request, and this payload is rare and large.)
final class DestroyCall {
    let order: DestroyOrder
    let host: String?
    let forwarded: [(String, String)]

    init(_ order: DestroyOrder, host: String?, forwarded: [(String, String)]) {
        self.order = order
        self.host = host
        self.forwarded = forwarded
    }
}

/// An answer idlegate made itself, as the error funnel reports it. (A class, as `DestroyCall`.)
final class Answered {
    enum Cause: Equatable {
        /// The client sent something idlegate will not forward (400, 413, 414, 431, 501, 505).
        case refused
        /// The client was too slow (408).
        case timeout
        /// Odoo could not be reached or did not answer in time (502, 504); `websocket` for its gevent port.
        case upstream(websocket: Bool)
        /// A shared session layer did not confirm in time (504).
        case sessionLayer
        /// An expired or refused session got Odoo's own answer (logged and audited by the session gate).
        case expiry
        /// An answer of idlegate's own that is no error: the redirect listener's 308, the screen guard's
        /// script and status.
        case own
    }

    let status: Int
    let cause: Cause
    /// Why, for the log line and the audit event: never request bytes, never a session id.
    let reason: String
    /// The session meaning of the request, when one was parsed.
    let route: RouteClass?
    /// The request, for the log line (`GET /path`, no query).
    let request: String?

    init(status: Int, cause: Cause, reason: String, route: RouteClass?, request: String?) {
        self.status = status
        self.cause = cause
        self.reason = reason
        self.route = route
        self.request = request
    }
}

/// Where a connection machine puts what it wants done: bytes for each side and actions, in order. One
/// per worker, shared by its connections (one event is handled at a time, and the driver empties the
/// outbox before the next), so an idle connection holds no buffer of its own.
final class Outbox {
    let client: ByteSink
    let upstream = ByteSink()
    var actions: [Action] = []
    /// Requests counted since the worker's last tick (which adds them to the shared metrics).
    var counts = WorkerCounts()
    /// The storage a client connection's buffer of waiting bytes borrows (`ByteBuffer`).
    let spare = SpareBytes()

    init(capacity: Int = 80 * 1024) {
        client = ByteSink(capacity: capacity)
    }

    /// Odoo answered: the count, and how long it took.
    @inline(__always) func countResponse(route: RouteClass, status: Int, latencyNanos: Int64) {
        counts.request(route, status: status)
        counts.latency(nanos: latencyNanos)
    }

    var isEmpty: Bool { client.isEmpty && upstream.isEmpty && actions.isEmpty }
}

/// How long and how much the end of a connection may take. Named so that they are documented once
/// (README, "Limits").
enum Linger {
    /// After the last answer is written and the write side shut, unread client bytes are read and
    /// dropped for up to this long, so that the kernel does not answer them with a reset that destroys
    /// the answer before the client reads it (what nginx's `lingering_close` does).
    static let time: Int64 = 2_000
    /// ... and up to this many bytes.
    static let bytes = 1 << 20
    /// A timeout answer (408) goes to a client that stopped sending; it gets this long to take it.
    static let timeoutAnswerWrite: Int64 = 1_000
}
