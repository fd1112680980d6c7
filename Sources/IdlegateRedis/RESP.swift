/// A Redis reply (RESP2, what Redis 7 speaks unless asked for RESP3).
public enum RESPValue: Equatable, Sendable {
    case simple(String)
    case error(String)
    case integer(Int64)
    case bulk([UInt8])
    case null
    case array([RESPValue])

    /// A bulk or simple string read as text.
    public var text: String? {
        switch self {
        case .bulk(let b): return String(decoding: b, as: UTF8.self)
        case .simple(let s): return s
        default: return nil
        }
    }

    /// A bulk string or integer read as a number (Redis sends hash fields as bulk strings).
    public var int64: Int64? {
        switch self {
        case .integer(let n): return n
        case .bulk(let b): return Int64(String(decoding: b, as: UTF8.self))
        default: return nil
        }
    }

    public var isError: Bool { if case .error = self { return true } else { return false } }
}

/// RESP encoding of commands: every command an array of bulk strings.
public enum RESP {
    /// Appends one command to `out`.
    public static func append(_ args: [String], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "*"))
        out.append(contentsOf: String(args.count).utf8)
        out.append(contentsOf: [0x0D, 0x0A])
        for a in args {
            out.append(UInt8(ascii: "$"))
            out.append(contentsOf: String(a.utf8.count).utf8)
            out.append(contentsOf: [0x0D, 0x0A])
            out.append(contentsOf: a.utf8)
            out.append(contentsOf: [0x0D, 0x0A])
        }
    }

    public static func command(_ args: [String]) -> [UInt8] {
        var out: [UInt8] = []
        append(args, to: &out)
        return out
    }
}

/// What a reply stream can do wrong: the connection is then closed (Redis never sends these).
public struct RESPError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

/// Reads replies off a byte stream, whatever way it is cut: bytes go in with `feed`, whole replies come
/// out of `next()`. Bounded: a reply line, a bulk string and an array are each limited, and nesting is
/// capped, so a hostile or broken peer costs a closed connection, not memory.
public struct RESPParser {
    public static let maxBulk = 16 * 1024 * 1024
    public static let maxArray = 1_048_576
    public static let maxLine = 64 * 1024
    static let maxDepth = 8

    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func feed(_ bytes: [UInt8]) { bytes.withUnsafeBytes { feed($0) } }

    /// The next whole reply, nil when more bytes are needed; throws on a malformed stream.
    public mutating func next() throws -> RESPValue? {
        var i = start
        guard let v = try parse(&i, depth: 0) else { return nil }
        start = i
        if start > 65_536 && start * 2 > buffer.count {
            buffer.removeSubrange(0..<start)
            start = 0
        }
        return v
    }

    /// The line from `i` to its CRLF (without it), moving `i` past it; nil when it has not all come.
    private func line(_ i: inout Int) throws -> ArraySlice<UInt8>? {
        var j = i
        while j + 1 < buffer.count {
            if buffer[j] == 0x0D {
                guard buffer[j + 1] == 0x0A else { throw RESPError("a bare CR in a reply line") }
                let l = buffer[i..<j]
                i = j + 2
                return l
            }
            j += 1
        }
        if buffer.count - i > Self.maxLine { throw RESPError("a reply line over \(Self.maxLine) bytes") }
        return nil
    }

    private func number(_ l: ArraySlice<UInt8>) throws -> Int64 {
        guard !l.isEmpty, l.count <= 20, let n = Int64(String(decoding: l, as: UTF8.self)) else {
            throw RESPError("a malformed length or integer")
        }
        return n
    }

    private func parse(_ i: inout Int, depth: Int) throws -> RESPValue? {
        guard i < buffer.count else { return nil }
        guard depth <= Self.maxDepth else { throw RESPError("replies nested too deep") }
        let type = buffer[i]
        var j = i + 1
        guard let l = try line(&j) else { return nil }
        let value: RESPValue
        switch type {
        case UInt8(ascii: "+"): value = .simple(String(decoding: l, as: UTF8.self))
        case UInt8(ascii: "-"): value = .error(String(decoding: l, as: UTF8.self))
        case UInt8(ascii: ":"): value = .integer(try number(l))
        case UInt8(ascii: "$"):
            let n = try number(l)
            if n == -1 { value = .null; break }
            guard n >= 0, n <= Self.maxBulk else { throw RESPError("a bulk string of \(n) bytes") }
            let end = j + Int(n)
            guard end + 2 <= buffer.count else { return nil }
            guard buffer[end] == 0x0D, buffer[end + 1] == 0x0A else { throw RESPError("a bulk string without its CRLF") }
            value = .bulk(Array(buffer[j..<end]))
            j = end + 2
        case UInt8(ascii: "*"):
            let n = try number(l)
            if n == -1 { value = .null; break }
            guard n >= 0, n <= Self.maxArray else { throw RESPError("an array of \(n) elements") }
            var items: [RESPValue] = []
            items.reserveCapacity(Int(min(n, 1024)))
            for _ in 0..<n {
                guard let item = try parse(&j, depth: depth + 1) else { return nil }
                items.append(item)
            }
            value = .array(items)
        default:
            throw RESPError("an unknown reply type byte 0x\(String(type, radix: 16))")
        }
        i = j
        return value
    }
}
