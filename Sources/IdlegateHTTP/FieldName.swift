/// The header fields idlegate acts on, recognised once when a head is parsed so that later lookups
/// compare a tag instead of re-reading names case-insensitively.
public enum FieldName: UInt8, Sendable {
    case other
    case host, contentLength, transferEncoding, connection, keepAlive, proxyConnection, te, trailer, upgrade
    case proxyAuthenticate, proxyAuthorization, expect, cookie, setCookie, contentType, xOpenerpSessionID
    case xForwardedFor, xForwardedProto, xForwardedHost, forwarded, xRealIP
    /// HSTS: added to HTTPS responses that carry none (`tls.hsts`).
    case strictTransportSecurity
    /// Read on HTML pages the screen guard may rewrite.
    case contentEncoding, contentDisposition, contentSecurityPolicy
    /// Any name with an underscore. Odoo's HTTP server (werkzeug's `serving.py`) turns `-` and `_` alike
    /// into `_` in the WSGI environ, so `X_Openerp_Session_Id` or `X_Forwarded_Host` would reach Odoo
    /// as the header idlegate checked or dropped under its real name. A request's such fields are never
    /// forwarded (as nginx drops them by default, `underscores_in_headers off`).
    case underscored

    /// Recognises a field name (any case; a token, as the parser has checked); `.other` for the rest. Runs
    /// for every field of every head: the name's length and first letter leave at most one spelling to
    /// compare (`candidates`).
    static func classify(_ name: UnsafeRawBufferPointer) -> FieldName { classify(name, candidates: candidates) }

    /// `classify` with the `candidates` table already at hand (the parser reads it once per head).
    @inline(__always) static func classify(_ name: UnsafeRawBufferPointer, candidates: UnsafePointer<FieldName>) -> FieldName {
        let n = name.count
        guard n >= 1 && n < 32 else { return otherOrUnderscored(name) }
        let tag = candidates[n * 32 + Int(name[0] & 0x1F)]
        guard tag != .other else { return otherOrUnderscored(name) }
        // A name is a token, so OR-ing 0x20 lower-cases its letters and leaves `-` and digits alone; the
        // one token byte it could confuse, `_` (0x5F → 0x7F), is in no spelling.
        let s = spelling(of: tag)
        return Words.equal(name.baseAddress, s.utf8Start, n, fold: 0x20) ? tag : otherOrUnderscored(name)
    }

    /// The tags with a spelling: every case but `.other` and `.underscored`.
    static let known = (FieldName.host.rawValue...FieldName.contentSecurityPolicy.rawValue).map { FieldName(rawValue: $0)! }
    /// The tag whose spelling has this length (under 32) and first letter, by `length * 32 + letter & 0x1F`
    /// (no two spellings share both: checked as the table is built); `.other` for none.
    nonisolated(unsafe) static let candidates: UnsafePointer<FieldName> = {  // written once, then only read
        let t = UnsafeMutablePointer<FieldName>.allocate(capacity: 32 * 32)
        t.initialize(repeating: .other, count: 32 * 32)
        for tag in known {
            let s = spelling(of: tag)
            precondition(s.utf8CodeUnitCount < 32)
            let slot = s.utf8CodeUnitCount * 32 + Int(s.utf8Start[0] & 0x1F)
            precondition(t[slot] == .other, "two field names share a length and first letter")
            t[slot] = tag
        }
        return UnsafePointer(t)
    }()

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
        case .strictTransportSecurity: "strict-transport-security"
        case .contentEncoding: "content-encoding"
        case .contentDisposition: "content-disposition"
        case .contentSecurityPolicy: "content-security-policy"
        case .other, .underscored: ""
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

    /// A set of tags, one bit each: what a rewrite drops, decided once per head rather than per field.
    /// (Its constants are computed properties built with `|`: they fold into a number where they are
    /// used, with no lazily built global to check on each use.)
    public struct Set: Sendable, Equatable {
        public var bits: UInt64 = 0
        public init() {}
        @inlinable public init(bits: UInt64) { self.bits = bits }
        @inlinable public mutating func insert(_ tag: FieldName) { bits |= tag.bit }
        @inlinable public func contains(_ tag: FieldName) -> Bool { bits & tag.bit != 0 }
        public static func + (a: Set, b: Set) -> Set { var s = a; s.bits |= b.bits; return s }
        @inlinable public static func | (a: Set, b: FieldName) -> Set { Set(bits: a.bits | b.bit) }
    }

    @inlinable public static func | (a: FieldName, b: FieldName) -> Set { Set(bits: a.bit | b.bit) }

    @inlinable var bit: UInt64 { 1 << UInt64(rawValue) }

    /// Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, never the next.
    @inlinable public static var hopByHop: Set {
        FieldName.connection        // its own options, and the names it lists (removed as well)
            | .keepAlive            // HTTP/1.0 persistence parameters
            | .proxyConnection      // a non-standard Connection some clients send
            | .te                   // what the client accepts from us, not from Odoo
            | .trailer              // trailers are dropped when idlegate re-frames a body
            | .transferEncoding     // idlegate decodes and re-frames every body itself
            | .upgrade              // only re-added for an accepted protocol switch
            | .proxyAuthenticate    // credentials for a proxy, not for Odoo
            | .proxyAuthorization
    }

    @inlinable public var isHopByHop: Bool { Self.hopByHop.contains(self) }
}
