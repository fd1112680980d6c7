/// The header fields idlegate acts on, recognised once when a head is parsed so that later lookups
/// compare a tag instead of re-reading names case-insensitively.
public enum FieldName: UInt8, Sendable {
    case other
    case host, contentLength, transferEncoding, connection, keepAlive, proxyConnection, te, trailer, upgrade
    case proxyAuthenticate, proxyAuthorization, expect, cookie, setCookie, contentType, xOpenerpSessionID
    case xForwardedFor, xForwardedProto, xForwardedHost, forwarded, xRealIP
    /// Any name with an underscore. Odoo's HTTP server (werkzeug's `serving.py`) turns `-` and `_` alike
    /// into `_` in the WSGI environ, so `X_Openerp_Session_Id` or `X_Forwarded_Host` would reach Odoo
    /// as the header idlegate checked or dropped under its real name. A request's such fields are never
    /// forwarded (as nginx drops them by default, `underscores_in_headers off`).
    case underscored

    /// Lower-case spellings, by tag.
    static let spellings: [(FieldName, [UInt8])] = ([
        (.host, "host"), (.contentLength, "content-length"), (.transferEncoding, "transfer-encoding"),
        (.connection, "connection"), (.keepAlive, "keep-alive"), (.proxyConnection, "proxy-connection"),
        (.te, "te"), (.trailer, "trailer"), (.upgrade, "upgrade"), (.proxyAuthenticate, "proxy-authenticate"),
        (.proxyAuthorization, "proxy-authorization"), (.expect, "expect"), (.cookie, "cookie"),
        (.setCookie, "set-cookie"), (.contentType, "content-type"), (.xOpenerpSessionID, "x-openerp-session-id"), (.xForwardedFor, "x-forwarded-for"), (.xForwardedProto, "x-forwarded-proto"),
        (.xForwardedHost, "x-forwarded-host"), (.forwarded, "forwarded"), (.xRealIP, "x-real-ip"),
    ] as [(FieldName, String)]).map { ($0.0, Array($0.1.utf8)) }

    /// Candidates by name length, so a name is compared with at most three spellings.
    private static let byLength: [[(FieldName, [UInt8])]] = {
        var t = [[(FieldName, [UInt8])]](repeating: [], count: 21)
        for s in spellings { t[s.1.count].append(s) }
        return t
    }()

    /// Recognises a field name (any case); `.other` for the rest.
    static func classify(_ name: UnsafeRawBufferPointer) -> FieldName {
        if name.count < 21 {
            for (tag, spelling) in byLength[name.count] {
                var i = 0
                while i < spelling.count && name[i].asciiLowercased == spelling[i] { i += 1 }
                if i == spelling.count { return tag }
            }
        }
        return name.contains(UInt8(ascii: "_")) ? .underscored : .other
    }

    static func classify(_ name: String) -> FieldName {
        var n = name
        return n.withUTF8 { classify(UnsafeRawBufferPointer($0)) }
    }

    /// Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, never the next.
    public var isHopByHop: Bool {
        switch self {
        case .connection,          // its own options, and the names it lists (removed as well)
             .keepAlive,           // HTTP/1.0 persistence parameters
             .proxyConnection,     // a non-standard Connection some clients send
             .te,                  // what the client accepts from us, not from Odoo
             .trailer,             // trailers are dropped when idlegate re-frames a body
             .transferEncoding,    // idlegate decodes and re-frames every body itself
             .upgrade,             // only re-added for an accepted protocol switch
             .proxyAuthenticate,   // credentials for a proxy, not for Odoo
             .proxyAuthorization:
            return true
        default:
            return false
        }
    }
}
