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

    /// Recognises a field name (any case; a token, as the parser has checked); `.other` for the rest. Runs for every field of every head:
    /// a switch on the length and the first letter leaves at most one spelling to compare.
    static func classify(_ name: UnsafeRawBufferPointer) -> FieldName {
        let n = name.count
        guard n >= 2 && n <= 20 else { return otherOrUnderscored(name) }
        let tag: FieldName
        switch (n, name[0] | 0x20) {
        case (2, 0x74): tag = .te
        case (4, 0x68): tag = .host
        case (6, 0x63): tag = .cookie
        case (6, 0x65): tag = .expect
        case (7, 0x74): tag = .trailer
        case (7, 0x75): tag = .upgrade
        case (9, 0x66): tag = .forwarded
        case (9, 0x78): tag = .xRealIP
        case (10, 0x63): tag = .connection
        case (10, 0x6B): tag = .keepAlive
        case (10, 0x73): tag = .setCookie
        case (12, 0x63): tag = .contentType
        case (14, 0x63): tag = .contentLength
        case (15, 0x78): tag = .xForwardedFor
        case (16, 0x70): tag = .proxyConnection
        case (16, 0x78): tag = .xForwardedHost
        case (17, 0x74): tag = .transferEncoding
        case (17, 0x78): tag = .xForwardedProto
        case (18, 0x70): tag = .proxyAuthenticate
        case (19, 0x70): tag = .proxyAuthorization
        case (20, 0x78): tag = .xOpenerpSessionID
        default: return otherOrUnderscored(name)
        }
        return matches(name, spelling(of: tag)) ? tag : otherOrUnderscored(name)
    }

    /// The lower-case spelling of a known tag.
    static func spelling(of tag: FieldName) -> StaticString {
        switch tag {
        case .host: "host"
        case .contentLength: "content-length"
        case .transferEncoding: "transfer-encoding"
        case .connection: "connection"
        case .keepAlive: "keep-alive"
        case .proxyConnection: "proxy-connection"
        case .te: "te"
        case .trailer: "trailer"
        case .upgrade: "upgrade"
        case .proxyAuthenticate: "proxy-authenticate"
        case .proxyAuthorization: "proxy-authorization"
        case .expect: "expect"
        case .cookie: "cookie"
        case .setCookie: "set-cookie"
        case .contentType: "content-type"
        case .xOpenerpSessionID: "x-openerp-session-id"
        case .xForwardedFor: "x-forwarded-for"
        case .xForwardedProto: "x-forwarded-proto"
        case .xForwardedHost: "x-forwarded-host"
        case .forwarded: "forwarded"
        case .xRealIP: "x-real-ip"
        case .other, .underscored: ""
        }
    }

    /// ASCII case-insensitive equality with a lower-case spelling of the same length. A name is a
    /// token, so OR-ing 0x20 lower-cases its letters and leaves `-` (0x2D) and digits alone; the one
    /// token byte it could confuse, `_` (0x5F → 0x7F), matches no spelling.
    /// Eight bytes at a time; a name of eight or more ends with a word that overlaps the one before.
    @inline(__always) private static func matches(_ name: UnsafeRawBufferPointer, _ spelling: StaticString) -> Bool {
        let s = UnsafeRawPointer(spelling.utf8Start)
        let n = name.count
        guard n >= 8, let p = name.baseAddress else {
            for i in 0..<n where name[i] | 0x20 != s.load(fromByteOffset: i, as: UInt8.self) { return false }
            return true
        }
        let lower: UInt64 = 0x2020_2020_2020_2020
        var i = 0
        while true {
            let at = min(i, n - 8)
            if p.loadUnaligned(fromByteOffset: at, as: UInt64.self) | lower != s.loadUnaligned(fromByteOffset: at, as: UInt64.self) {
                return false
            }
            if at == n - 8 { return true }
            i += 8
        }
    }

    @inline(__always) private static func otherOrUnderscored(_ name: UnsafeRawBufferPointer) -> FieldName {
        name.contains(UInt8(ascii: "_")) ? .underscored : .other
    }

    /// A name built in code rather than parsed: only a token can be a known name.
    static func classify(_ name: String) -> FieldName {
        guard name.utf8.allSatisfy(ByteClass.isToken) else { return name.utf8.contains(UInt8(ascii: "_")) ? .underscored : .other }
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
