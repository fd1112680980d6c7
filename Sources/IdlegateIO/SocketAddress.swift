import CSystem
import Glibc
import IdlegateBase

/// An IPv4 or IPv6 socket address. Parsed from `HOST:PORT`, `[V6]:PORT`, or resolved from a host name
/// at start-up (never on an event-loop thread: getaddrinfo blocks).
public struct SocketAddress: Sendable, Hashable, CustomStringConvertible {
    /// The raw address bytes: 4 for IPv4, 16 for IPv6 (used for CIDR matching).
    public let ip: [UInt8]
    public let port: UInt16

    public init(ip: [UInt8], port: UInt16) {
        precondition(ip.count == 4 || ip.count == 16)
        self.ip = ip
        self.port = port
    }

    public var isIPv6: Bool { ip.count == 16 }

    /// The address alone, as text: `127.0.0.1` or `::1` (what goes into X-Forwarded-For).
    public var host: String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        ip.withUnsafeBytes { raw in
            _ = inet_ntop(isIPv6 ? AF_INET6 : AF_INET, raw.baseAddress, &buf, socklen_t(buf.count))
        }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Resolves `host:port` to addresses: numeric ones directly, names through getaddrinfo.
    public static func resolve(_ text: String) throws -> [SocketAddress] {
        guard let (host, port) = HostPort.split(text) else {
            throw AddressError("\"\(text)\" is not HOST:PORT")
        }
        if let ip = CIDR.parseIP(host) { return [SocketAddress(ip: ip, port: port)] }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw AddressError("cannot resolve \"\(host)\": \(String(cString: gai_strerror(rc)))")
        }
        defer { freeaddrinfo(first) }
        var out: [SocketAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let ai = cursor {
            if let sa = ai.pointee.ai_addr, let addr = SocketAddress(sockaddr: sa) {
                if !out.contains(addr) { out.append(addr) }
            }
            cursor = ai.pointee.ai_next
        }
        if out.isEmpty { throw AddressError("\"\(host)\" has no IPv4 or IPv6 address") }
        return out
    }

    init?(sockaddr sa: UnsafePointer<sockaddr>) {
        switch Int32(sa.pointee.sa_family) {
        case AF_INET:
            let v4 = UnsafeRawPointer(sa).load(as: sockaddr_in.self)
            var a = v4.sin_addr
            self.init(ip: withUnsafeBytes(of: &a) { Array($0) }, port: UInt16(bigEndian: v4.sin_port))
        case AF_INET6:
            let v6 = UnsafeRawPointer(sa).load(as: sockaddr_in6.self)
            var a = v6.sin6_addr
            self.init(ip: withUnsafeBytes(of: &a) { Array($0) }, port: UInt16(bigEndian: v6.sin6_port))
        default:
            return nil
        }
    }

    /// Calls `body` with this address as a `sockaddr` of the right length.
    func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        if isIPv6 {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin6_addr) { $0.copyBytes(from: ip) }
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sa.sin_addr) { $0.copyBytes(from: ip) }
            return withUnsafePointer(to: &sa) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
    }
}

public struct AddressError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
