import CoreMetrics
import Glibc
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
    let upstreamLatency: CoreMetrics.Timer
    let upstreamErrors: [Int: CoreMetrics.Counter]
    public let reloads: CoreMetrics.Counter
    public let reloadFailures: CoreMetrics.Counter
    public let kicks: CoreMetrics.Counter
    public let auditDropped: CoreMetrics.Counter
    let destroyFailures: CoreMetrics.Counter
    /// Odoo handed out an id idlegate holds as ended (the session stayed ended): should stay at 0.
    let revivalsRefused: CoreMetrics.Counter
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
        upstreamLatency = CoreMetrics.Timer(label: "idlegate_upstream_response_seconds")
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

/// One worker's request counts since its last flush. Loop thread only.
struct WorkerCounts {
    private var counts = [Int](repeating: 0, count: ProxyMetrics.routes.count * ProxyMetrics.statusClasses.count)
    private var dirty = false

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
        dirty = false
    }
}

