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
    /// A shared store's sessions (every replica's), handed out a page at a time; false when it did not
    /// answer. Nil: the local table is the whole picture.
    public var shared: (@Sendable (([(SessionKey, SessionRecord)]) -> Void) -> Bool)?
    /// Re-reads the configuration: (applied, message).
    public var reload: @Sendable () -> (Bool, String)
    /// The bearer token in force (empty: none); read per request, so a reload changes it.
    public var token: @Sendable () -> String

    public init(metrics: @escaping @Sendable () -> [UInt8], ready: @escaping @Sendable () -> (Bool, String), table: SessionTable,
                now: @escaping @Sendable () -> Int64, policyName: @escaping @Sendable (SessionRecord) -> String?,
                login: @escaping @Sendable (SessionKey) -> String?, kick: @escaping @Sendable (SessionKey) -> Bool,
                reload: @escaping @Sendable () -> (Bool, String), token: @escaping @Sendable () -> String,
                shared: (@Sendable (([(SessionKey, SessionRecord)]) -> Void) -> Bool)? = nil) {
        self.shared = shared
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

/// The admin listener, on an event loop of its own (the proxy's loop machinery): connections are
/// non-blocking, and the whole request head has `headTimeout` to arrive, so clients trickling bytes
/// hold no thread and no slot — `/healthz` answers under any number of them (up to `maxConnections`
/// open at once; past that, new ones are closed at once). Answers are made on a dispatch queue (a
/// reload, a readiness probe's connect) and written back on the loop. One request per connection.
public final class AdminServer: @unchecked Sendable {
    let fd: Int32
    let backend: AdminBackend
    let loop: EventLoop
    /// From the first byte a client may send to its last head byte. As the proxy's header timeout.
    static let headTimeout: Int64 = 5_000
    /// Writing the answer to a client that does not read.
    static let writeTimeout: Int64 = 5_000
    static let maxConnections = 1024
    static let limits: HTTPLimits = {
        var limits = HTTPLimits()
        limits.requestLine = 4096
        limits.headerBytes = 16 * 1024
        limits.headerCount = 64
        return limits
    }()

    private let queue = DispatchQueue(label: "idlegate-admin", attributes: .concurrent)
    private var connections: [Int32: AdminConnection] = [:]
    private var listener: AdminListener?

    public init(listen text: String, backend: AdminBackend, clock: Clock = SystemClock()) throws {
        guard let address = try SocketAddress.resolve(text).first else { throw IOError("resolve \(text)") }
        fd = try Socket.listen(on: address, reusePort: false, backlog: 512)
        self.backend = backend
        loop = try EventLoop(clock: clock, tickMillis: 100)
    }

    public var port: UInt16? { Socket.localPort(fd) }

    public func start() {
        let l = AdminListener(server: self)
        listener = l
        loop.onTick = { [unowned self] now in
            for c in connections.values where now >= c.deadline { c.timedOut() }
        }
        do {
            try loop.registerListener(fd: fd, handler: l)
        } catch {
            return
        }
        OSThread.start(name: "idlegate-admin") { [self] in _ = loop.run() }
    }

    func accepted(_ cfd: Int32) {
        guard connections.count < Self.maxConnections else {
            close(cfd)
            return
        }
        let c = AdminConnection(fd: cfd, server: self)
        do {
            try loop.register(fd: cfd, handler: c)
        } catch {
            close(cfd)
            return
        }
        connections[cfd] = c
        c.handleEvents(Events.readable)
    }

    func closed(_ c: AdminConnection) {
        loop.deregister(fd: c.fd)
        connections[c.fd] = nil
        close(c.fd)
    }

    /// Answers `head` off the loop, then hands the bytes back to the connection on the loop.
    func answer(_ head: RequestHead, for c: AdminConnection) {
        let backend = self.backend
        let loop = self.loop
        let target = Unchecked(c)
        queue.async {
            let bytes = AdminRouter(backend: backend).answer(head).bytes
            loop.execute { target.value.write(bytes) }
        }
    }
}

/// Accepts admin connections (level-triggered, a batch per wake-up).
final class AdminListener: EventHandler {
    unowned let server: AdminServer
    init(server: AdminServer) { self.server = server }

    func handleEvents(_ events: UInt32) {
        for _ in 0..<64 {
            guard let (cfd, _) = try? Socket.accept(server.fd) else { return }
            server.accepted(cfd)
        }
    }
}

/// One admin request: its head read without blocking, under one deadline; its answer written the same way.
final class AdminConnection: EventHandler {
    let fd: Int32
    unowned let server: AdminServer
    var deadline: Int64
    private var parser = RequestHeadParser(limits: AdminServer.limits)
    private var head: [UInt8] = []
    private var pending: [UInt8] = []
    private var answering = false
    private var done = false

    init(fd: Int32, server: AdminServer) {
        self.fd = fd
        self.server = server
        deadline = server.loop.now + AdminServer.headTimeout
    }

    func handleEvents(_ events: UInt32) {
        guard !done else { return }
        if !pending.isEmpty {
            flush()
            return
        }
        guard !answering else { return }
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { finish(); return }
            if n < 0 { return }
            head.append(contentsOf: buf[0..<n])
            do {
                if let (h, _) = try head.withUnsafeBytes({ try parser.parse($0) }) {
                    answering = true
                    head = []
                    deadline = server.loop.now + AdminServer.writeTimeout
                    server.answer(h, for: self)
                    return
                }
            } catch {
                let status = (error as? HTTPParseError)?.status ?? 400
                write(AdminResponse(status: status, json: #"{"error": "bad request"}"#).bytes)
                return
            }
        }
    }

    /// The head did not arrive in time (408), or the answer could not be written (closed).
    func timedOut() {
        if answering || !pending.isEmpty || done {
            finish()
        } else {
            write(AdminResponse(status: 408, json: #"{"error": "request head not complete in time"}"#).bytes)
            if !pending.isEmpty { finish() }
        }
    }

    func write(_ bytes: [UInt8]) {
        guard !done else { return }
        answering = false
        pending = bytes
        deadline = server.loop.now + AdminServer.writeTimeout
        flush()
    }

    private func flush() {
        while !pending.isEmpty {
            let n = pending.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n > 0 {
                pending.removeFirst(n)
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                return
            } else {
                break
            }
        }
        finish()
    }

    private func finish() {
        guard !done else { return }
        done = true
        server.closed(self)
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
        var head = "HTTP/1.1 \(status) \(HTTPStatus.reason(status))\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\nCache-Control: no-store\r\nConnection: close\r\n"
        for (n, v) in extra { head += "\(n): \(v)\r\n" }
        return Array((head + "\r\n").utf8) + body
    }
}
