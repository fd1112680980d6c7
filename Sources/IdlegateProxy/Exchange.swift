import IdlegateBase
import IdlegateHTTP
import IdlegatePolicy

/// One request in flight and its response: what the client connection needs to remember between
/// events while bytes stream both ways.
final class Exchange {
    enum ResponseFraming {
        /// Body bytes go to the client as they come (Content-Length, or nothing).
        case passthrough
        /// Body bytes go out re-framed as chunks (upstream chunked or close-delimited, client 1.1).
        case chunked
        /// Body bytes go out as they come and the connection closes after (client 1.0).
        case untilClose
    }

    /// The request as parsed and checked (held, not copied): its forwarded head is written from it
    /// (again, for the one retry a request that met a pooled connection Odoo had just closed gets).
    let check: SessionRequest
    var request: RequestHead { check.head }
    var method: String { check.head.method }
    /// The path for log lines: no query string (older Odoo accepts `?session_id=` there).
    var logPath: Substring { check.path }
    let upstreamIndex: Int
    let clientVersion: HTTPVersion
    var keepAlive: Bool

    /// The protocol of an accepted Upgrade, if any.
    let upgrade: String?
    var isUpgrade: Bool { upgrade != nil }
    /// What the session check decided: the forwarded Cookie and target, the policy's limits.
    let session: Verdict
    var retried = false
    /// A login request's first bytes (at most `LoginField.maxBytes`), kept only until the response's
    /// new session is paired with the login name in them; nil for every other request.
    var loginBody: [UInt8]?
    var loginIsJSON = false
    /// When the request was handed to the upstream side (monotonic ns), for the latency histogram.
    var sentAt: Int64 = 0

    var requestBody: BodyDecoder
    let requestChunked: Bool
    var requestBodyBytes: Int64 = 0

    var responseParser: ResponseHeadParser
    /// Response head bytes that arrived split across reads.
    var responseHeadBytes = ByteBuffer()
    var sawResponseByte = false
    var responseBody: BodyDecoder?
    var responseFraming: ResponseFraming = .passthrough
    /// The final response head has been handed to the client: errors can no longer become a 502.
    var responseStarted = false
    var responseDone = false
    var upstreamReusable = true
    var switchToTunnel = false
    /// A page the screen guard puts its script into as the body streams (after inflating it, when it
    /// came compressed).
    var injector: ScriptInjector?
    var inflater: ContentInflater?

    /// `METHOD /path` for log lines (no query).
    var describe: String { Self.describe(method, logPath) }

    static func describe(_ method: String, _ path: Substring) -> String { method + " " + path }

    init(_ check: SessionRequest, upgrade: String?, session: consuming Verdict, framing: BodyFraming, upstreamIndex: Int, keepAlive: Bool, limits: HTTPLimits) {
        self.session = consume session
        self.check = check
        clientVersion = check.head.version
        self.upgrade = upgrade
        self.upstreamIndex = upstreamIndex
        self.keepAlive = keepAlive
        requestBody = BodyDecoder(framing, limits: limits)
        requestChunked = framing == .chunked
        responseParser = ResponseHeadParser(limits: limits)
        // The route class first: one compare for every request, the two paths only for login routes.
        if self.session.route == .login && framing != .none && check.head.method == "POST" {
            if check.path == RouteClass.loginForm {
                loginBody = []
            } else if check.path == RouteClass.loginJSON {
                loginBody = []
                loginIsJSON = true
            }
        }
    }
}
