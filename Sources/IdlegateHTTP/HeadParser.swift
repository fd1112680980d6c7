import Glibc  // memchr: the line ends are found with the C library's vectorised scan
import IdlegateBase

/// Incremental, strict parser for a message head (RFC 9112 §2–§5). Feed it the bytes received so far
/// (from the first byte of the message); it remembers how far it has checked, so each byte is looked at
/// once however the head is split across reads. No I/O, no allocation until the head is complete.
///
/// Strict where lax parsers let requests be smuggled: every line ends in CRLF (a bare LF or CR is
/// refused, §2.2), no obs-fold (§5.2), no whitespace between a field name and its colon (§5.1), no
/// control characters in names or values (RFC 9110 §5.5).
public struct HeadParser: Sendable {
    public enum Kind: Sendable { case request, response }

    public enum Result: Sendable, Equatable {
        /// Not complete yet; call again with more bytes.
        case incomplete
        /// The head ended after `length` bytes of the input (any bytes after it belong to the body).
        case request(RequestHead, length: Int)
        case response(ResponseHead, length: Int)
    }

    public let kind: Kind
    // The three limits a head is held to, kept small: every idle connection holds a parser.
    private let requestLineLimit: Int32
    private let headerCountLimit: Int32
    private let headerBytesLimit: Int32

    private var scanned = 0
    private var headStart = 0
    private var lineStart = 0
    /// The start line's bounds, once found (`startEnd` < 0 until then).
    private var startBegin = 0
    private var startEnd = -1
    private var entries: [HTTPFields.Entry] = []
    /// What the Connection fields met so far say.
    private var connection: HTTPFields.ConnectionOptions = []

    public init(kind: Kind, limits: HTTPLimits) {
        self.kind = kind
        requestLineLimit = Int32(clamping: limits.requestLine)
        headerCountLimit = Int32(clamping: limits.headerCount)
        headerBytesLimit = Int32(clamping: limits.headerBytes)
    }

    private var startLine: Range<Int>? { startEnd < 0 ? nil : startBegin..<startEnd }

    /// Whether any byte of a message has been seen (leading empty lines do not count).

    /// Checks the bytes not yet checked. `input` must start where the message starts and hold every
    /// byte given before (plus new ones).
    public mutating func parse(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> Result {
        var i = scanned
        let end = input.count
        // The byte and name tables, read once per call rather than once per line (each read of a lazily
        // built global goes through its once-check).
        let tables = LineTables(bytes: ByteClass.table, names: FieldName.candidates)
        while i < end {
            // The next LF; everything else on a line is checked by the line's own rule (a CR or a
            // control byte inside a line is refused there).
            guard let found = memchr(input.baseAddress! + i, Int32(UInt8.lf), end - i) else {
                i = end
                break
            }
            i = UnsafeRawPointer(found) - input.baseAddress!
            // A line ends at i. RFC 9112 §2.2: a bare LF as line terminator is refused.
            guard i > lineStart, input[i - 1] == .cr else {
                throw kind == .request ? .bad("bare LF line ending") : .bad("bare LF in response head")
            }
            let line = lineStart..<(i - 1)
            lineStart = i + 1
            if startLine == nil {
                if line.isEmpty {
                    // §2.2: a server SHOULD ignore at least one empty line before the request-line.
                    guard kind == .request, lineStart <= 8 else { throw .bad("empty lines before the start line") }
                    headStart = lineStart
                    i += 1
                    continue
                }
                if kind == .request && line.count > Int(requestLineLimit) { throw HTTPParseError(414, "request line too long") }
                startBegin = line.lowerBound
                startEnd = line.upperBound
            } else if line.isEmpty {
                scanned = i + 1
                return try finish(input, end: i + 1)
            } else {
                try checkFieldLine(input, line, tables)
                if entries.count > Int(headerCountLimit) { throw HTTPParseError(431, "too many header fields") }
            }
            i += 1
            if i - headStart > Int(headerBytesLimit) { throw HTTPParseError(431, "header section too large") }
        }
        scanned = end
        if startLine == nil && kind == .request && end - lineStart > Int(requestLineLimit) {
            throw HTTPParseError(414, "request line too long")
        }
        if end - headStart > Int(headerBytesLimit) { throw HTTPParseError(431, "header section too large") }
        return .incomplete
    }

    /// Forgets everything, for the next message on the same connection.
    public mutating func reset() {
        scanned = 0
        headStart = 0
        lineStart = 0
        startBegin = 0
        startEnd = -1
        entries = []  // an idle connection holds no parse buffers
        connection = []
    }

    /// field-line = field-name ":" OWS field-value OWS (RFC 9112 §5).
    private struct LineTables {
        let bytes: UnsafePointer<UInt8>
        let names: UnsafePointer<FieldName>
    }

    private mutating func checkFieldLine(_ b: UnsafeRawBufferPointer, _ line: Range<Int>, _ tables: LineTables) throws(HTTPParseError) {
        let first = b[line.lowerBound]
        if first == .sp || first == .htab { throw .bad("obs-fold or whitespace before a field name") }
        var j = line.lowerBound
        while j < line.upperBound && tables.bytes[Int(b[j])] & ByteClass.token != 0 { j += 1 }
        guard j < line.upperBound, b[j] == .colon else {
            if j < line.upperBound && (b[j] == .sp || b[j] == .htab) { throw .bad("whitespace before the colon") }
            if j < line.upperBound && b[j] == .cr { throw .bad("bare CR in a field name") }
            throw .bad("invalid character in a field name")
        }
        guard j > line.lowerBound else { throw .bad("empty field name") }
        let name = line.lowerBound..<j
        var v0 = j + 1
        var v1 = line.upperBound
        while v0 < v1 && (b[v0] == .sp || b[v0] == .htab) { v0 += 1 }
        while v1 > v0 && (b[v1 - 1] == .sp || b[v1 - 1] == .htab) { v1 -= 1 }
        if let bad = ByteClass.firstNonFieldValue(b, v0..<v1) {
            throw .bad(b[bad] == .cr ? "bare CR in a field value" : "control character in a field value")
        }
        if entries.capacity == 0 { entries.reserveCapacity(24) }
        // Offsets are kept relative to the head's start (final once the start line is found).
        let base = headStart
        let known = FieldName.classify(UnsafeRawBufferPointer(rebasing: b[name]), candidates: tables.names)
        if known == .connection { connection.formUnion(HTTPFields.connectionOptions(of: b.assumingMemoryBound(to: UInt8.self), v0..<v1)) }
        entries.append(.init(name: (name.lowerBound - base)..<(name.upperBound - base), value: (v0 - base)..<(v1 - base), known: known))
    }

    private mutating func finish(_ b: UnsafeRawBufferPointer, end: Int) throws(HTTPParseError) -> Result {
        let base = headStart
        let storage = Array(b[base..<end])
        let fields = HTTPFields(storage: storage, entries: entries, connectionOptions: connection)
        entries = []  // handed over, not copied
        connection = []
        let line = startLine!
        let start = (line.lowerBound - base)..<(line.upperBound - base)
        switch kind {
        case .request:
            var head = try Self.requestLine(storage, start, fields: fields)
            try Self.checkHost(&head, headerCount: Int(headerCountLimit))
            return .request(head, length: end)
        case .response:
            return .response(try Self.statusLine(storage, start, fields: fields), length: end)
        }
    }

    /// request-line = method SP request-target SP HTTP-version (RFC 9112 §3), single spaces only.
    private static func requestLine(_ s: [UInt8], _ line: Range<Int>, fields: HTTPFields) throws(HTTPParseError) -> RequestHead {
        var i = s.withUnsafeBytes { ByteClass.end(of: ByteClass.token, in: $0, from: line.lowerBound, to: line.upperBound) }
        guard i > line.lowerBound, i < line.upperBound, s[i] == .sp else { throw .bad("malformed request line") }
        let method = Self.commonMethod(s, line.lowerBound..<i) ?? String(decoding: s[line.lowerBound..<i], as: UTF8.self)
        i += 1
        let t0 = i
        i = s.withUnsafeBytes { ByteClass.endOfLongRun(of: ByteClass.target, in: $0, from: i, to: line.upperBound) }
        guard i > t0, i < line.upperBound, s[i] == .sp else {
            throw .bad(i < line.upperBound && s[i] == UInt8(ascii: "#") ? "fragment (#) in the request target" : "malformed request target")
        }
        let target = String(decoding: s[t0..<i], as: UTF8.self)
        let version = try Self.version(s[(i + 1)..<line.upperBound], status: 505)
        return RequestHead(method: method, target: target, version: version, fields: fields)
    }

    private static func version(_ v: ArraySlice<UInt8>, status: Int) throws(HTTPParseError) -> HTTPVersion {
        // "HTTP/1.1" and "HTTP/1.0" compared as one word each: this runs for every message.
        if v.count == 8 {
            let word = v.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
            if word == 0x31_2E_31_2F_50_54_54_48 { return .http11 }
            if word == 0x30_2E_31_2F_50_54_54_48 { return .http10 }
        }
        let b = v.startIndex
        let isHTTPSlash = v.count == 8 && v[b] == 0x48 && v[b + 1] == 0x54 && v[b + 2] == 0x54 && v[b + 3] == 0x50 && v[b + 4] == 0x2F
        if isHTTPSlash && v[b + 5] == UInt8(ascii: "1") && v[b + 6] == UInt8(ascii: ".") {
            if v[b + 7] == UInt8(ascii: "1") { return .http11 }
            if v[b + 7] == UInt8(ascii: "0") { return .http10 }
        }
        if isHTTPSlash { throw HTTPParseError(status, "unsupported HTTP version") }
        throw .bad("malformed HTTP version")
    }

    /// status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4); a missing
    /// " reason" is tolerated, as it cannot change framing.
    private static func statusLine(_ s: [UInt8], _ line: Range<Int>, fields: HTTPFields) throws(HTTPParseError) -> ResponseHead {
        guard line.count >= 12, s[line.lowerBound + 8] == .sp else { throw .bad("malformed status line") }
        let version = try Self.version(s[line.lowerBound..<(line.lowerBound + 8)], status: 502)
        var status = 0
        for k in (line.lowerBound + 9)..<(line.lowerBound + 12) {
            let d = s[k]
            guard d >= UInt8(ascii: "0") && d <= UInt8(ascii: "9") else { throw .bad("malformed status code") }
            status = status * 10 + Int(d - UInt8(ascii: "0"))
        }
        guard status >= 100 && status <= 599 else { throw .bad("status code out of range") }
        var reason = ""
        if line.count > 12 {
            guard s[line.lowerBound + 12] == .sp else { throw .bad("malformed status line") }
            let r = s[(line.lowerBound + 13)..<line.upperBound]
            guard r.allSatisfy({ ByteClass.isFieldValue($0) }) else { throw .bad("control character in reason phrase") }
            reason = Self.commonReason(s, r.indices) ?? String(decoding: r, as: UTF8.self)
        }
        return ResponseHead(version: version, status: status, reason: reason, fields: fields)
    }

    /// The methods and reason phrases nearly every message has, as literals: matching up to eight bytes
    /// as one word costs less than making a string from them. (Which word spells what is checked by a
    /// unit test against decoding.)
    static func commonMethod(_ s: [UInt8], _ r: Range<Int>) -> String? {
        switch (r.count, word(s, r)) {
        case (3, 0x54_45_47): return "GET"
        case (4, 0x54_53_4F_50): return "POST"
        case (4, 0x44_41_45_48): return "HEAD"
        case (3, 0x54_55_50): return "PUT"
        case (6, 0x45_54_45_4C_45_44): return "DELETE"
        case (7, 0x53_4E_4F_49_54_50_4F): return "OPTIONS"
        default: return nil
        }
    }

    static func commonReason(_ s: [UInt8], _ r: Range<Int>) -> String? {
        (r.count, word(s, r)) == (2, 0x4B_4F) ? "OK" : nil
    }

    /// Up to the first eight bytes of `s[r]` as a little-endian word.
    @inline(__always) private static func word(_ s: [UInt8], _ r: Range<Int>) -> UInt64 {
        guard !r.isEmpty else { return 0 }
        return s.withUnsafeBytes { Words.head($0.baseAddress!, r.lowerBound, count: r.count, readable: $0.count - r.lowerBound) }
    }

    /// RFC 9112 §3.2: a 1.1 request needs exactly one Host; two are refused (two parsers could pick
    /// different ones). An absolute-form target's authority replaces the Host field (§3.2.2).
    private static func checkHost(_ head: inout RequestHead, headerCount: Int) throws(HTTPParseError) {
        let hosts = head.fields.occurrences(of: .host)
        if hosts.count > 1 { throw .bad("more than one Host field") }
        if head.method == "CONNECT" { throw HTTPParseError(405, "CONNECT is not supported") }
        let t = head.target
        if t.utf8.first == UInt8(ascii: "/") {
            // origin-form
        } else if t == "*" {
            guard head.method == "OPTIONS" else { throw .bad("asterisk-form target outside OPTIONS") }
        } else if let authority = absoluteFormAuthority(t) {
            guard isValidHost(authority.host) else { throw .bad("invalid authority in target") }
            head.target = authority.rest
            head.fields.set("Host", authority.host)
            // The Host it gains counts like any field: a parsed head stays within the limits (found by
            // the request-head fuzzer: 100 fields plus this one wrote out to a head of 101).
            if head.fields.count > headerCount { throw HTTPParseError(431, "too many header fields") }
            return
        } else {
            throw .bad("unsupported request-target form")
        }
        if hosts.count == 0 {
            if head.version == .http11 { throw .bad("HTTP/1.1 request without Host") }
            return
        }
        guard head.fields.valueBytes(at: hosts.first).withUnsafeBufferPointer(isValidHost) else { throw .bad("invalid Host field") }
    }

    private static func absoluteFormAuthority(_ t: String) -> (host: String, rest: String)? {
        let lower = t.prefix(8).lowercased()
        let schemeLength: Int
        if lower.hasPrefix("http://") { schemeLength = 7 } else if lower.hasPrefix("https://") { schemeLength = 8 } else { return nil }
        let afterScheme = t.dropFirst(schemeLength)
        let end = afterScheme.firstIndex { $0 == "/" || $0 == "?" || $0 == "#" } ?? afterScheme.endIndex
        let host = String(afterScheme[..<end])
        var rest = String(afterScheme[end...])
        if rest.hasPrefix("#") { rest = "" }
        if !rest.hasPrefix("/") { rest = "/" + rest }
        return (host, rest)
    }

    /// uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2): reg-name characters or an IP literal;
    /// no userinfo, no whitespace, not empty.
    static func isValidHost(_ h: String) -> Bool { h.withUTF8Bytes(isValidHost) }

    static func isValidHost(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard !b.isEmpty, b.count <= 255 else { return false }
        return ByteClass.end(of: ByteClass.host, in: UnsafeRawBufferPointer(b), from: 0, to: b.count) == b.count
    }
}

/// The request side of `HeadParser`: a head and the bytes it took, or nil while it is incomplete.
public struct RequestHeadParser: Sendable {
    private var engine: HeadParser

    public init(limits: HTTPLimits) { engine = HeadParser(kind: .request, limits: limits) }

    /// See `HeadParser.parse`: `input` starts where the head starts and holds every byte so far.
    public mutating func parse(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> (head: RequestHead, length: Int)? {
        guard case .request(let head, let length) = try engine.parse(input) else { return nil }
        return (head, length)
    }

    public mutating func reset() { engine.reset() }
}

/// The response side of `HeadParser`.
public struct ResponseHeadParser: Sendable {
    private var engine: HeadParser

    public init(limits: HTTPLimits) { engine = HeadParser(kind: .response, limits: limits) }

    public mutating func parse(_ input: UnsafeRawBufferPointer) throws(HTTPParseError) -> (head: ResponseHead, length: Int)? {
        guard case .response(let head, let length) = try engine.parse(input) else { return nil }
        return (head, length)
    }

    public mutating func reset() { engine.reset() }
}
