import IdlegateConfig

/// Which upstream a path goes to, as Odoo's documented nginx setup does: WebSocket and long-polling
/// to the gevent port, everything else to the HTTP port.
struct Router {
    static let main = 0
    static let websocket = 1

    let websocketPrefixes: [String]

    init(config: Config) { websocketPrefixes = config.websocketPaths }

    func upstream(for path: Substring) -> Int {
        for p in websocketPrefixes where Self.matches(path, prefix: p) { return Self.websocket }
        return Self.main
    }

    /// `/websocket` matches `/websocket`, `/websocket/…` and `/websocket?…`, not `/websocketX`.
    static func matches(_ path: Substring, prefix: String) -> Bool {
        guard path.hasPrefix(prefix) else { return false }
        if path.count == prefix.count || prefix.hasSuffix("/") { return true }
        let next = path[path.index(path.startIndex, offsetBy: prefix.count)]
        return next == "/"
    }
}
