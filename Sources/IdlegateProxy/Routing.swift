import IdlegateConfig

/// Which upstream a path goes to, as Odoo's documented nginx setup does: WebSocket and long-polling
/// to the gevent port, everything else to the HTTP port.
struct Router {
    static let main = 0
    static let websocket = 1

    let websocketPrefixes: [[UInt8]]

    init(config: Config) { websocketPrefixes = config.websocketPaths.map { Array($0.utf8) } }

    func upstream(for path: Substring) -> Int {
        for p in websocketPrefixes where Self.matches(path.utf8, prefix: p) { return Self.websocket }
        return Self.main
    }

    /// `/websocket` matches `/websocket` and `/websocket/…`, not `/websocketX` (the path has no query).
    static func matches(_ path: Substring.UTF8View, prefix: [UInt8]) -> Bool {
        guard path.starts(with: prefix) else { return false }
        let next = path.index(path.startIndex, offsetBy: prefix.count)
        if next == path.endIndex || prefix.last == UInt8(ascii: "/") { return true }
        return path[next] == UInt8(ascii: "/")
    }
}
