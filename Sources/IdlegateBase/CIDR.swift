import Glibc

/// An address block such as `10.2.0.0/16` or `::1/128`; a bare address means a single host.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    public let network: [UInt8]
    public let prefix: Int

    public init?(parsing text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let ip = Self.parseIP(String(parts[0])) else { return nil }
        let bits = ip.count * 8
        var p = bits
        if parts.count == 2 {
            guard let v = Int(parts[1]), v >= 0, v <= bits, !parts[1].hasPrefix("+") else { return nil }
            p = v
        }
        var net = ip
        for i in 0..<net.count {
            let keep = max(0, min(8, p - i * 8))
            net[i] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        network = net
        prefix = p
    }

    /// Whether `ip` (4 or 16 bytes) lies in this block; an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`)
    /// is matched as the IPv4 address it carries.
    public func contains(_ ip: [UInt8]) -> Bool {
        var addr = ip
        if addr.count == 16 && network.count == 4 && addr[0..<10].allSatisfy({ $0 == 0 }) && addr[10] == 0xFF && addr[11] == 0xFF {
            addr = Array(addr[12..<16])
        }
        guard addr.count == network.count else { return false }
        var left = prefix
        var i = 0
        while left > 0 {
            let bits = min(8, left)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - bits))
            if addr[i] & mask != network[i] { return false }
            left -= bits
            i += 1
        }
        return true
    }

    public var description: String {
        var buf = [CChar](repeating: 0, count: 64)
        network.withUnsafeBytes { _ = inet_ntop(network.count == 4 ? AF_INET : AF_INET6, $0.baseAddress, &buf, 64) }
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/\(prefix)"
    }

    /// A numeric IPv4 or IPv6 address (no port, no brackets) as 4 or 16 bytes: the one IP parser.
    public static func parseIP(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }
}
