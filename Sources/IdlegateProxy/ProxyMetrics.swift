import CoreMetrics
import Glibc
import IdlegateBase
import IdlegatePolicy

/// The proxy's metrics, through swift-metrics: whatever backend the executable bootstraps (Prometheus,
/// for the admin API) receives them; with none, they cost nothing. Handles are made once here.
///
/// Per-request counts never touch a shared counter: each worker counts in its own array and adds the
/// sums to these counters on its tick (a few times a second), so that two loops never contend for
/// a cache line per request.
public final class ProxyMetrics: Sendable {
    /// The route labels: the session meaning of a path, or `none` for a request refused before it
    /// was understood (malformed).
    static let routes = ["activity", "passive", "login", "logout", "static", "none"]
    static let statusClasses = ["1xx", "2xx", "3xx", "4xx", "5xx"]

    let requests: [CoreMetrics.Counter]
    /// Kept by idlegate itself, not through the backend: see `LatencyHistogram`.
    public let upstreamLatency = LatencyHistogram(name: "idlegate_upstream_response_seconds",
                                                  help: "Time from the request head sent to Odoo to the response head received")
    let upstreamErrors: [Int: CoreMetrics.Counter]
    public let reloads: CoreMetrics.Counter
    public let reloadFailures: CoreMetrics.Counter
    public let kicks: CoreMetrics.Counter
    public let auditDropped: CoreMetrics.Counter
    let destroyFailures: CoreMetrics.Counter
    /// Odoo handed out an id idlegate holds as ended (the session stayed ended): should stay at 0.
    let revivalsRefused: CoreMetrics.Counter
    /// TLS handshakes on the listener that failed (scanners, old clients, plain HTTP on the HTTPS port).
    let tlsHandshakeFailures: CoreMetrics.Counter
    /// Requests answered 503 because the shared store was down (fail_closed).
    let storeRefusals: CoreMetrics.Counter
    public let sessionsTracked: CoreMetrics.Gauge
    public let reaped: [String: CoreMetrics.Counter]

    public init() {
        var r: [CoreMetrics.Counter] = []
        for route in Self.routes {
            for status in Self.statusClasses {
                r.append(CoreMetrics.Counter(label: "idlegate_requests_total", dimensions: [("route", route), ("status", status)]))
            }
        }
        requests = r
        upstreamErrors = [
            502: CoreMetrics.Counter(label: "idlegate_upstream_errors_total", dimensions: [("kind", "error")]),
            504: CoreMetrics.Counter(label: "idlegate_upstream_errors_total", dimensions: [("kind", "timeout")]),
        ]
        reloads = CoreMetrics.Counter(label: "idlegate_config_reloads_total", dimensions: [("result", "ok")])
        reloadFailures = CoreMetrics.Counter(label: "idlegate_config_reloads_total", dimensions: [("result", "failed")])
        kicks = CoreMetrics.Counter(label: "idlegate_sessions_kicked_total")
        auditDropped = CoreMetrics.Counter(label: "idlegate_audit_events_dropped_total")
        destroyFailures = CoreMetrics.Counter(label: "idlegate_odoo_destroy_failures_total")
        revivalsRefused = CoreMetrics.Counter(label: "idlegate_session_revivals_refused_total")
        tlsHandshakeFailures = CoreMetrics.Counter(label: "idlegate_tls_handshake_failures_total")
        storeRefusals = CoreMetrics.Counter(label: "idlegate_store_unavailable_refusals_total")
        sessionsTracked = CoreMetrics.Gauge(label: "idlegate_sessions_tracked")
        var reaped: [String: CoreMetrics.Counter] = [:]
        for reason in ["idle", "anonymous", "ended"] {
            reaped[reason] = CoreMetrics.Counter(label: "idlegate_reaped_session_files_total", dimensions: [("reason", reason)])
        }
        self.reaped = reaped
    }

    /// Expiries by policy and mode (`expired` when enforced, `would_expire` in audit mode). Rare: the
    /// handle is looked up each time.
    func expired(policy: String, enforced: Bool) {
        CoreMetrics.Counter(label: enforced ? "idlegate_session_expiries_total" : "idlegate_session_would_expire_total",
                            dimensions: [("policy", policy)]).increment()
    }

    static func routeIndex(_ route: RouteClass?) -> Int {
        switch route {
        case .activity: 0
        case .passive: 1
        case .login: 2
        case .logout: 3
        case .staticFile: 4
        case nil: 5
        }
    }
}

/// A latency histogram in Prometheus's text format, fed by the workers' own bucket counts on their tick.
/// The per-request histogram is the one metric recorded on every request: through the metrics backend
/// it cost a lock shared by all workers and a bucket search over `Duration`s (about 0.8 k instructions
/// per request); here a request adds to its worker's plain array, and the shared one is locked a few
/// times a second.
public final class LatencyHistogram: Sendable {
    /// Upper bounds as written (seconds), and in nanoseconds.
    static let labels = ["0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"]
    static let bounds: [Int64] = labels.map { Int64((Double($0)! * 1e9).rounded()) }

    let name: String
    let help: String
    private let lock = Mutex()
    /// Per bucket (the last one: above every bound), not cumulative; and the sum in nanoseconds.
    nonisolated(unsafe) private var counts = [Int64](repeating: 0, count: LatencyHistogram.bounds.count + 1)
    nonisolated(unsafe) private var sumNanos: Int64 = 0

    init(name: String, help: String) {
        self.name = name
        self.help = help
    }

    /// The bucket of one observation.
    @inline(__always) static func bucket(_ nanos: Int64) -> Int {
        var i = 0
        while i < bounds.count && nanos > bounds[i] { i += 1 }
        return i
    }

    func add(_ buckets: [Int64], sumNanos sum: Int64) {
        lock.withLock {
            for i in buckets.indices { counts[i] += buckets[i] }
            sumNanos += sum
        }
    }

    /// `# HELP`, `# TYPE`, the cumulative `_bucket` lines, `_sum` and `_count`.
    public func prometheusText() -> String {
        let (c, sum) = lock.withLock { (counts, sumNanos) }
        var out = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var total: Int64 = 0
        for i in 0..<Self.bounds.count {
            total += c[i]
            out += "\(name)_bucket{le=\"\(Self.labels[i])\"} \(total)\n"
        }
        total += c[Self.bounds.count]
        out += "\(name)_bucket{le=\"+Inf\"} \(total)\n"
        out += "\(name)_sum \(Double(sum) / 1e9)\n\(name)_count \(total)\n"
        return out
    }
}

/// One worker's request counts and latencies since its last flush. Loop thread only.
struct WorkerCounts {
    private var counts = [Int](repeating: 0, count: ProxyMetrics.routes.count * ProxyMetrics.statusClasses.count)
    private var latency = [Int64](repeating: 0, count: LatencyHistogram.bounds.count + 1)
    private var latencySum: Int64 = 0
    private var dirty = false

    @inline(__always) mutating func latency(nanos: Int64) {
        latency[LatencyHistogram.bucket(nanos)] &+= 1
        latencySum &+= max(0, nanos)
        dirty = true
    }

    @inline(__always) mutating func request(_ route: RouteClass?, status: Int) {
        let c = min(4, max(0, status / 100 - 1))
        counts[ProxyMetrics.routeIndex(route) * ProxyMetrics.statusClasses.count + c] &+= 1
        dirty = true
    }

    mutating func flush(into metrics: ProxyMetrics) {
        guard dirty else { return }
        for i in counts.indices where counts[i] != 0 {
            metrics.requests[i].increment(by: Int64(counts[i]))
            counts[i] = 0
        }
        if latency.contains(where: { $0 != 0 }) {
            metrics.upstreamLatency.add(latency, sumNanos: latencySum)
            for i in latency.indices { latency[i] = 0 }
            latencySum = 0
        }
        dirty = false
    }
}

