import IdlegateHTTP

/// How heads are rewritten on the way through, both directions. A rewrite is a decision per parsed
/// field (keep or drop) plus fields to add; the head is then written out once, never edited in place.
enum HeaderRewriting {
    /// Fields a `Connection` header may not remove: the request would lose its target, its framing,
    /// its session or the forwarded client address.
    static func isProtected(_ known: FieldName) -> Bool {
        switch known {
        case .host, .contentLength, .cookie, .xForwardedFor, .xForwardedProto, .xForwardedHost: return true
        default: return false
        }
    }

    /// Field names listed in `Connection` (RFC 9110 §7.6.1), other than the options `close`,
    /// `keep-alive` and `upgrade`, which name no field idlegate would keep anyway.
    static func connectionNamed(_ fields: HTTPFields) -> [String] {
        guard fields.connectionOptions.contains(.other) else { return [] }
        return fields.tokens(.connection).filter { $0 != "close" && $0 != "keep-alive" && $0 != "upgrade" }
    }

    /// Whether field `i` is hop-by-hop: by its own name (`FieldName.isHopByHop`), or named in Connection.
    @inline(__always)
    static func isHopByHop(_ fields: HTTPFields, _ i: Int, _ known: FieldName, named: [String]) -> Bool {
        if known.isHopByHop { return true }
        if named.isEmpty || isProtected(known) { return false }
        return named.contains { fields.name(at: i, is: $0) }
    }

    /// The forwarding fields of the request as Odoo's `proxy_mode` reads them (werkzeug ProxyFix, one
    /// hop each, and only when X-Forwarded-Host is present). From a trusted proxy they pass unchanged,
    /// missing ones filled in; from anyone else they are dropped and replaced, so a client cannot choose
    /// its own address or scheme.
    static func isForwardingField(_ known: FieldName) -> Bool { forwardingFields.contains(known) }

    static var forwardingFields: FieldName.Set { FieldName.xForwardedFor | .xForwardedProto | .xForwardedHost | .forwarded | .xRealIP }

    /// Never sent upstream: Expect (idlegate answers 100-continue itself) and names with an underscore.
    static var neverForwarded: FieldName.Set { FieldName.expect | .underscored }

    /// Writes the X-Forwarded-* fields the request still lacks (all three for an untrusted peer).
    /// (Who the request is attributed to is worked out once, by the client connection.)
    static func writeForwarded(_ fields: HTTPFields, peerHost: String, trusted: Bool, scheme: String, into out: ByteSink) {
        // Which of them the request has, and its Host, in one pass.
        var hasFor = false, hasProto = false, hasHost = false, host = -1
        for i in 0..<fields.count {
            switch fields.known(at: i) {
            case .xForwardedFor: hasFor = true
            case .xForwardedProto: hasProto = true
            case .xForwardedHost: hasHost = true
            case .host where host < 0: host = i
            default: break
            }
        }
        if !trusted || !hasFor { HTTPFields.writeField("X-Forwarded-For", peerHost, into: out) }
        if !trusted || !hasProto { HTTPFields.writeField("X-Forwarded-Proto", scheme, into: out) }
        if (!trusted || !hasHost) && host >= 0 { fields.writeValue(at: host, as: "X-Forwarded-Host", into: out) }
    }
}

