/// Where Redis is and how to log in: `redis://[user:password@]host[:port][/db]`, `rediss://…` (TLS),
/// or `unix://[user:password@]/path/to/redis.sock[?db=N]`. User and password are percent-decoded.
public struct RedisURL: Sendable, Equatable, CustomStringConvertible {
    public enum Place: Sendable, Equatable {
        case tcp(host: String, port: UInt16)
        case unix(path: String)
    }
    public var place: Place
    public var tls: Bool
    public var user: String?
    public var password: String?
    public var database: Int

    /// The URL without its password: what logs and `/readyz` show.
    public var description: String {
        let login = (user ?? "") + (password != nil ? ":***" : "") + (user != nil || password != nil ? "@" : "")
        switch place {
        case .tcp(let host, let port):
            let h = host.contains(":") ? "[\(host)]" : host
            return "\(tls ? "rediss" : "redis")://\(login)\(h):\(port)/\(database)"
        case .unix(let path):
            return "unix://\(login)\(path)\(database != 0 ? "?db=\(database)" : "")"
        }
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    public static func parse(_ text: String) throws -> RedisURL {
        let scheme: String, rest: Substring
        if let colon = text.firstIndex(of: ":"), text[colon...].hasPrefix("://") {
            scheme = text[..<colon].lowercased()
            rest = text[text.index(colon, offsetBy: 3)...]
        } else {
            throw Invalid("\(text.isEmpty ? "an empty URL" : "no scheme"): use redis://host:port, rediss://host:port or unix:///path")
        }
        guard ["redis", "rediss", "unix"].contains(scheme) else {
            throw Invalid("scheme \(scheme)://: use redis://, rediss:// or unix://")
        }
        var body = rest
        var user: String? = nil, password: String? = nil
        if let at = body.lastIndex(of: "@") {
            let cred = body[..<at]
            body = body[body.index(after: at)...]
            if let colon = cred.firstIndex(of: ":") {
                let u = cred[..<colon]
                user = u.isEmpty ? nil : try decode(u)
                password = try decode(cred[cred.index(after: colon)...])
            } else {
                // redis://password@host is how several clients spell a password without a user.
                password = try decode(cred)
            }
        }
        if scheme == "unix" {
            var path = body, db = 0
            if let q = body.firstIndex(of: "?") {
                path = body[..<q]
                let query = body[body.index(after: q)...]
                for pair in query.split(separator: "&") {
                    let kv = pair.split(separator: "=", maxSplits: 1)
                    guard kv.count == 2, kv[0] == "db", let n = Int(kv[1]), n >= 0 else { throw Invalid("unknown query \(pair): only db=N") }
                    db = n
                }
            }
            guard path.hasPrefix("/") else { throw Invalid("a unix socket path must be absolute (unix:///run/redis/redis.sock)") }
            guard path.utf8.count < 108 else { throw Invalid("the socket path is longer than 107 bytes") }
            return RedisURL(place: .unix(path: String(path)), tls: false, user: user, password: password, database: db)
        }
        var hostPort = body, db = 0
        if let slash = body.firstIndex(of: "/") {
            hostPort = body[..<slash]
            let d = body[body.index(after: slash)...]
            if !d.isEmpty {
                guard let n = Int(d), n >= 0 else { throw Invalid("database \(d) is not a number") }
                db = n
            }
        }
        var host = hostPort, port: UInt16 = 6379
        if hostPort.hasPrefix("[") {
            guard let close = hostPort.firstIndex(of: "]") else { throw Invalid("an IPv6 address without its ]") }
            host = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
            let after = hostPort[hostPort.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = UInt16(after.dropFirst()), p > 0 else { throw Invalid("port \(after.dropFirst()) is not 1-65535") }
                port = p
            }
        } else if let colon = hostPort.lastIndex(of: ":") {
            host = hostPort[..<colon]
            guard let p = UInt16(hostPort[hostPort.index(after: colon)...]), p > 0 else {
                throw Invalid("port \(hostPort[hostPort.index(after: colon)...]) is not 1-65535")
            }
            port = p
        }
        guard !host.isEmpty else { throw Invalid("no host") }
        return RedisURL(place: .tcp(host: String(host), port: port), tls: scheme == "rediss", user: user, password: password, database: db)
    }

    private static func decode(_ s: Substring) throws -> String {
        var out: [UInt8] = []
        var it = Array(s.utf8)[...]
        while let b = it.popFirst() {
            if b == UInt8(ascii: "%") {
                guard it.count >= 2, let v = UInt8(String(decoding: it.prefix(2), as: UTF8.self), radix: 16) else { throw Invalid("a bad %-escape in the user or password") }
                out.append(v)
                it = it.dropFirst(2)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
