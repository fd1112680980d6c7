import IdlegateHTTP

/// Which upstream a path goes to, as Odoo's documented nginx setup does: WebSocket and long-polling
/// to the gevent port, everything else to the HTTP port.
struct Router {
    static let main = 0
    static let websocket = 1

    let websocketPrefixes: [[UInt8]]

    init(websocketPaths: [String]) { websocketPrefixes = websocketPaths.map { Array($0.utf8) } }

    func upstream(for path: Substring) -> Int {
        PathPrefix.matchesAny(path, websocketPrefixes) ? Self.websocket : Self.main
    }
}
