import IdlegateConfig
import IdlegateHTTP
import IdlegateIO

/// Header rewriting on the way through, both directions.
enum HeaderRewriting {
    /// Fields a `Connection` header may not remove: the request would lose its target, its framing,
    /// its session or the forwarded client address.
    static func isProtected(_ known: FieldName) -> Bool {
        switch known {
        case .host, .contentLength, .cookie, .xForwardedFor, .xForwardedProto, .xForwardedHost: return true
        default: return false
        }
    }

    /// Removes hop-by-hop fields (`FieldName.isHopByHop`) and those named in `Connection`.
    static func removeHopByHop(_ fields: inout HTTPFields) {
        let named = fields.contains(.connection) ? fields.tokens(.connection) : []
        let f = fields
        fields.removeAll { i, known in
            if known.isHopByHop { return true }
            if named.isEmpty || isProtected(known) { return false }
            return named.contains { f.name(at: i, is: $0) }
        }
    }

    /// The X-Forwarded-* Odoo's `proxy_mode` reads (werkzeug ProxyFix, one hop each, and only when
    /// X-Forwarded-Host is present). From a trusted proxy they pass unchanged, missing ones filled in;
    /// from anyone else they are replaced, so a client cannot pick its own address or scheme.
    /// Returns the client address the request is attributed to.
    static func setForwarded(_ fields: inout HTTPFields, peerHost: String, trusted: Bool, scheme: String) -> String {
        var client = peerHost
        if trusted {
            if let last = fields.values(.xForwardedFor).last?.split(separator: ",").last?.trimmingCharacters(in: " \t") ,
               CIDR.parseIP(last) != nil {
                client = last
            }
        } else {
            fields.removeAll { _, known in
                known == .xForwardedFor || known == .xForwardedProto || known == .xForwardedHost || known == .forwarded || known == .xRealIP
            }
        }
        if !fields.contains(.xForwardedFor) { fields.append(name: "X-Forwarded-For", value: peerHost) }
        if !fields.contains(.xForwardedProto) { fields.append(name: "X-Forwarded-Proto", value: scheme) }
        if !fields.contains(.xForwardedHost), let host = fields.first(.host) {
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
