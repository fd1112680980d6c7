import IdlegateConfig
import IdlegateHTTP
import IdlegateIO

/// Header rewriting on the way through, both directions.
enum HeaderRewriting {
    /// Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, never the next.
    static let hopByHop: Set<String> = [
        "connection",          // its own options, and the names it lists (removed as well)
        "keep-alive",          // HTTP/1.0 persistence parameters
        "proxy-connection",    // a non-standard Connection some clients send
        "te",                  // what the client accepts from us, not from Odoo
        "trailer",             // trailers are dropped when idlegate re-frames a body
        "transfer-encoding",   // idlegate decodes and re-frames every body itself
        "upgrade",             // only re-added for an accepted protocol switch
        "proxy-authenticate",  // credentials for a proxy, not for Odoo
        "proxy-authorization",
    ]

    /// Fields a `Connection` header may not remove: the request would lose its target or framing.
    static let protected: Set<String> = ["host", "content-length", "cookie", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"]

    /// Removes hop-by-hop fields and those named in `Connection`.
    static func removeHopByHop(_ fields: inout HTTPFields) {
        let named = Set(fields.tokens(named: "connection")).subtracting(protected)
        fields.removeAll { hopByHop.contains($0) || named.contains($0) }
    }

    /// The X-Forwarded-* Odoo's `proxy_mode` reads (werkzeug ProxyFix, one hop each, and only when
    /// X-Forwarded-Host is present). From a trusted proxy they pass unchanged, missing ones filled in;
    /// from anyone else they are replaced, so a client cannot pick its own address or scheme.
    /// Returns the client address the request is attributed to.
    static func setForwarded(_ fields: inout HTTPFields, peer: SocketAddress, trusted: Bool, scheme: String) -> String {
        var client = peer.host
        if trusted {
            if let last = fields.values(named: "x-forwarded-for").last?.split(separator: ",").last?.trimmingCharacters(in: " \t") ,
               CIDR.parseIP(last) != nil {
                client = last
            }
        } else {
            fields.removeAll { $0 == "x-forwarded-for" || $0 == "x-forwarded-proto" || $0 == "x-forwarded-host" || $0 == "forwarded" || $0 == "x-real-ip" }
        }
        if !fields.contains("x-forwarded-for") { fields.append(name: "X-Forwarded-For", value: peer.host) }
        if !fields.contains("x-forwarded-proto") { fields.append(name: "X-Forwarded-Proto", value: scheme) }
        if !fields.contains("x-forwarded-host"), let host = fields.first(named: "host") {
            fields.append(name: "X-Forwarded-Host", value: host)
        }
        return client
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
