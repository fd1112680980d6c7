import Dispatch
import Glibc
import IdlegateBase
import IdlegateHTTP
import IdlegateIO
import IdlegateSessions

/// What the admin API reads and acts on. The executable wires it to the running proxy.
public struct AdminBackend: Sendable {
    /// Prometheus text exposition of every metric.
    public var metrics: @Sendable () -> [UInt8]
    /// Whether Odoo answers (a TCP connect to the upstream), and a line saying so.
    public var ready: @Sendable () -> (Bool, String)
    public var table: SessionTable
    public var now: @Sendable () -> Int64
    /// The name of the policy whose limits a record is held to, when one matches.
    public var policyName: @Sendable (SessionRecord) -> String?
    /// The login name of a session, when it is known.
    public var login: @Sendable (SessionKey) -> String?
    public var kick: @Sendable (SessionKey) -> Bool
    /// Re-reads the configuration: (applied, message).
    public var reload: @Sendable () -> (Bool, String)
    /// The bearer token in force (empty: none); read per request, so a reload changes it.
    public var token: @Sendable () -> String

    public init(metrics: @escaping @Sendable () -> [UInt8], ready: @escaping @Sendable () -> (Bool, String), table: SessionTable,
                now: @escaping @Sendable () -> Int64, policyName: @escaping @Sendable (SessionRecord) -> String?,
                login: @escaping @Sendable (SessionKey) -> String?, kick: @escaping @Sendable (SessionKey) -> Bool,
                reload: @escaping @Sendable () -> (Bool, String), token: @escaping @Sendable () -> String) {
        self.metrics = metrics
        self.ready = ready
        self.table = table
        self.now = now
        self.policyName = policyName
        self.login = login
        self.kick = kick
        self.reload = reload
        self.token = token
    }
}

/// The admin listener: one thread accepting, each request answered on a dispatch queue with socket
/// timeouts, at most `maxInFlight` at a time, one request per connection. It never proxies.
public final class AdminServer: @unchecked Sendable {
    let fd: Int32
    let backend: AdminBackend
    let maxInFlight = 8
    private let slots: DispatchSemaphore
    private let queue = DispatchQueue(label: "idlegate-admin", attributes: .concurrent)

    public init(listen text: String, backend: AdminBackend) throws {
        guard let address = try SocketAddress.resolve(text).first else { throw IOError("resolve \(text)") }
        fd = try Socket.listen(on: address, reusePort: false, backlog: 64)
        self.backend = backend
        slots = DispatchSemaphore(value: maxInFlight)
    }

    public var port: UInt16? { Socket.localPort(fd) }

    public func start() {
        OSThread.start(name: "idlegate-admin") { [self] in
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while true {
                guard poll(&p, 1, 1000) > 0 else { continue }
                while let (cfd, _) = try? Socket.accept(fd) {
                    // Blocking from here, with timeouts: a silent client costs one slot for 5 s.
                    _ = fcntl(cfd, F_SETFL, fcntl(cfd, F_GETFL) & ~O_NONBLOCK)
                    var tv = timeval(tv_sec: 5, tv_usec: 0)
                    setsockopt(cfd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                    setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                    guard slots.wait(timeout: .now()) == .success else {
                        Self.send(cfd, AdminResponse(status: 503, json: #"{"error": "busy"}"#))
                        close(cfd)
                        continue
                    }
                    queue.async { [self] in
                        serve(cfd)
                        close(cfd)
                        slots.signal()
                    }
                }
            }
        }
    }

    /// Reads one request head (and a small body, which is ignored) and answers it.
    func serve(_ cfd: Int32) {
        var limits = HTTPLimits()
        limits.requestLine = 4096
        limits.headerBytes = 16 * 1024
        limits.headerCount = 64
        var parser = HeadParser(kind: .request, limits: limits)
        var bytes: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(cfd, &buf, buf.count, 0)
            guard n > 0 else { return }
            bytes.append(contentsOf: buf[0..<n])
            do {
                let result = try bytes.withUnsafeBytes { try parser.parse($0) }
                if case .request(let head, _) = result {
                    Self.send(cfd, AdminRouter(backend: backend).answer(head))
                    return
                }
            } catch {
                let status = (error as? HTTPParseError)?.status ?? 400
                Self.send(cfd, AdminResponse(status: status, json: #"{"error": "bad request"}"#))
                return
            }
        }
    }

    static func send(_ cfd: Int32, _ r: AdminResponse) {
        let out = r.bytes
        var at = 0
        while at < out.count {
            let n = out.withUnsafeBytes { Glibc.send(cfd, $0.baseAddress! + at, out.count - at, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { return }
            at += n
        }
    }
}

/// One admin answer.
struct AdminResponse: Equatable {
    var status: Int
    var contentType = "application/json"
    var body: [UInt8]
    var extra: [(String, String)] = []

    init(status: Int, json: String, extra: [(String, String)] = []) {
        self.status = status
        body = Array((json + "\n").utf8)
        self.extra = extra
    }

    init(status: Int, contentType: String, body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    static func == (a: AdminResponse, b: AdminResponse) -> Bool { a.status == b.status && a.body == b.body }

    var bytes: [UInt8] {
        let reasons = [200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
                       414: "URI Too Long", 431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable"]
        var head = "HTTP/1.1 \(status) \(reasons[status] ?? "Error")\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nCache-Control: no-store\r\nConnection: close\r\n"
        for (n, v) in extra { head += "\(n): \(v)\r\n" }
        return Array((head + "\r\n").utf8) + body
    }
}
