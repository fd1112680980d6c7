/// Path-prefix matching, one rule for routes, policies and the upstream router: a prefix matches itself
/// and what lies below it (`/web/login` matches `/web/login` and `/web/login/x`, not `/web/loginx`); a
/// prefix ending in `/` matches anything under it. Paths come without their query.
public enum PathPrefix {
    @inlinable
    public static func matches(_ path: UnsafeRawBufferPointer, _ prefix: [UInt8]) -> Bool {
        guard path.count >= prefix.count else { return false }
        var i = 0
        while i < prefix.count {
            if path[i] != prefix[i] { return false }
            i += 1
        }
        return path.count == prefix.count || prefix.last == UInt8(ascii: "/") || path[prefix.count] == UInt8(ascii: "/")
    }

    @inlinable
    public static func matches(_ path: Substring, _ prefix: [UInt8]) -> Bool {
        var path = path
        return path.withUTF8 { matches(UnsafeRawBufferPointer($0), prefix) }
    }

    /// Whether any of `prefixes` matches.
    @inlinable
    public static func matchesAny(_ path: Substring, _ prefixes: [[UInt8]]) -> Bool {
        var path = path
        return path.withUTF8 { p in prefixes.contains { matches(UnsafeRawBufferPointer(p), $0) } }
    }
}

/// Reason phrases of the statuses idlegate writes itself (RFC 9110 §15).
public enum HTTPStatus {
    public static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 303: return "See Other"
        case 400: return "Bad Request"
        case 401: return "Unauthorized"
        case 403: return "Forbidden"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 431: return "Request Header Fields Too Large"
        case 500: return "Internal Server Error"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Error"
        }
    }
}
