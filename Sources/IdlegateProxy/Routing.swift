import IdlegateHTTP

/// Which upstream a path goes to, as Odoo's documented nginx setup does: WebSocket and long-polling
/// to the gevent port, everything else to the HTTP port.
struct Router {
    static let main = 0
    static let websocket = 1

    let websocketPrefixes: PrefixSet

    init(websocketPaths: [String]) { websocketPrefixes = PrefixSet(websocketPaths) }

    func upstream(for path: Substring) -> Int {
        websocketPrefixes.matches(path) ? Self.websocket : Self.main
    }
}
