/// HTTP/1.0 or HTTP/1.1; anything else is refused (505 for requests, 502 for responses).
public enum HTTPVersion: Sendable, Equatable {
    case http10
    case http11

    public var text: String { self == .http10 ? "HTTP/1.0" : "HTTP/1.1" }
}

/// A parsed request line and its header fields.
public struct RequestHead: Sendable, Equatable {
    public var method: String
    /// The request-target in origin form (`/path?query`), or `*` for `OPTIONS *`. An absolute-form
    /// target (`http://host/path`) is reduced to origin form and its authority becomes the Host.
    public var target: String
    public var version: HTTPVersion
    public var fields: HTTPFields

    public init(method: String, target: String, version: HTTPVersion, fields: HTTPFields) {
        self.method = method
        self.target = target
        self.version = version
        self.fields = fields
    }

    /// The path part of the target, without the query.
    public var path: Substring {
        guard let q = target.utf8Offset(of: UInt8(ascii: "?")) else { return Substring(target) }
        return target[..<target.utf8.index(target.utf8.startIndex, offsetBy: q)]
    }

    /// Whether the client wants the connection kept open after this exchange (RFC 9112 §9.3).
    public var wantsKeepAlive: Bool {
        let options = fields.connectionOptions
        if options.contains(.close) { return false }
        return version == .http11 || options.contains(.keepAlive)
    }

    /// Serialises the head for the upstream: always HTTP/1.1.
    public func write(into out: ByteSink) {
        writeRequestLine(into: out)
        fields.write(into: out)
        out.append(.cr)
        out.append(.lf)
    }

    /// `METHOD target HTTP/1.1\r\n`: the request line idlegate sends upstream, whatever the client spoke.
    public func writeRequestLine(into out: ByteSink) {
        out.appendUTF8(method)
        out.append(.sp)
        out.appendUTF8(target)
        out.appendUTF8(" HTTP/1.1\r\n" as StaticString)
    }
}

/// A parsed status line and its header fields.
public struct ResponseHead: Sendable, Equatable {
    public var version: HTTPVersion
    public var status: Int
    public var reason: String
    public var fields: HTTPFields

    public init(version: HTTPVersion, status: Int, reason: String, fields: HTTPFields) {
        self.version = version
        self.status = status
        self.reason = reason
        self.fields = fields
    }

    /// Whether the upstream lets this connection be reused (HTTP/1.0 servers such as Odoo's prefork
    /// port answer `Connection: close`).
    public var allowsReuse: Bool {
        let options = fields.connectionOptions
        if options.contains(.close) { return false }
        return version == .http11 || options.contains(.keepAlive)
    }

    /// `HTTP/1.1 status reason\r\n`.
    public func writeStatusLine(into out: ByteSink) {
        out.appendUTF8("HTTP/1.1 " as StaticString)
        out.append(UInt8(ascii: "0") + UInt8(status / 100))
        out.append(UInt8(ascii: "0") + UInt8(status / 10 % 10))
        out.append(UInt8(ascii: "0") + UInt8(status % 10))
        if reason == "OK" {  // nearly every response: a literal, not a string's bytes
            out.appendUTF8(" OK\r\n" as StaticString)
            return
        }
        out.append(.sp)
        out.appendUTF8(reason)
        out.append(.cr)
        out.append(.lf)
    }
}
