/// The header fields of one message, in the order they arrived: a list of (name, value) pairs, never a
/// dictionary, so repeated fields (`Set-Cookie`, `Cookie`, `X-Forwarded-For`) all survive.
///
/// Names and values are kept as the exact bytes received (obs-text included) in one buffer; entries
/// point into it. Lookups compare names case-insensitively without allocating.
public struct HTTPFields: Sendable, Equatable {
    struct Entry: Sendable, Equatable {
        var name: Range<Int>
        var value: Range<Int>
        var known: FieldName
    }

    private(set) var storage: [UInt8]
    private(set) var entries: [Entry] {
        didSet { connectionOptions = Self.connectionOptions(storage, entries) }
    }
    /// What the Connection fields say (kept up to date as fields change): read once per message, used
    /// for keep-alive, reuse and hop-by-hop names.
    public private(set) var connectionOptions: ConnectionOptions

    public init() {
        storage = []
        entries = []
        connectionOptions = []
    }

    init(storage: [UInt8], entries: [Entry]) {
        self.storage = storage
        self.entries = entries
        connectionOptions = Self.connectionOptions(storage, entries)
    }

    /// A parsed head's fields, with the Connection options the parser read as it met them.
    init(storage: [UInt8], entries: [Entry], connectionOptions: ConnectionOptions) {
        self.storage = storage
        self.entries = entries
        self.connectionOptions = connectionOptions
    }

    public var count: Int { entries.count }
    public var isEmpty: Bool { entries.isEmpty }

    public func name(at i: Int) -> String { String(decoding: storage[entries[i].name], as: UTF8.self) }
    public func value(at i: Int) -> String { String(decoding: storage[entries[i].value], as: UTF8.self) }
    public func valueBytes(at i: Int) -> ArraySlice<UInt8> { storage[entries[i].value] }

    /// What field `i` is, if idlegate knows it.
    public func known(at i: Int) -> FieldName { entries[i].known }

    /// Indices of the fields that are `known`, in order.
    public func indices(of known: FieldName) -> [Int] {
        var out: [Int] = []
        for i in 0..<entries.count where entries[i].known == known { out.append(i) }
        return out
    }

    public func contains(_ known: FieldName) -> Bool {
        entries.contains { $0.known == known }
    }

    public func first(_ known: FieldName) -> String? {
        for i in 0..<entries.count where entries[i].known == known { return value(at: i) }
        return nil
    }

    /// The last value of `known` (the nearest hop's, for the forwarding fields), without a list.
    public func last(_ known: FieldName) -> String? {
        var i = entries.count
        while i > 0 {
            i -= 1
            if entries[i].known == known { return value(at: i) }
        }
        return nil
    }

    public func values(_ known: FieldName) -> [String] {
        indices(of: known).map(value(at:))
    }

    /// The comma-separated elements of every `known` field, trimmed and lower-cased.
    public func tokens(_ known: FieldName) -> [String] {
        var out: [String] = []
        for i in 0..<entries.count where entries[i].known == known {
            for part in value(at: i).split(separator: ",", omittingEmptySubsequences: true) {
                let t = part.trimmingOWS().lowercased()
                if !t.isEmpty { out.append(t) }
            }
        }
        return out
    }

    /// What the Connection fields say, read in one pass (RFC 9110 §7.6.1).
    public struct ConnectionOptions: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        public static let close = ConnectionOptions(rawValue: 1)
        public static let keepAlive = ConnectionOptions(rawValue: 2)
        public static let upgrade = ConnectionOptions(rawValue: 4)
        /// Some other element: the name of a field that is hop-by-hop for this message.
        public static let other = ConnectionOptions(rawValue: 8)
    }

    private static func connectionOptions(_ storage: [UInt8], _ entries: [Entry]) -> ConnectionOptions {
        var found: ConnectionOptions = []
        for e in entries where e.known == .connection {
            storage.withUnsafeBufferPointer { found.formUnion(connectionOptions(of: $0, e.value)) }
        }
        return found
    }

    /// What one Connection field's value `b[value]` says.
    static func connectionOptions(of b: UnsafeBufferPointer<UInt8>, _ value: Range<Int>) -> ConnectionOptions {
        var found: ConnectionOptions = []
        var i = value.lowerBound
        while let element = nextElement(b, from: &i, to: value.upperBound) { found.insert(option(b, element)) }
        return found
    }

    /// The next comma-separated element of `b[i..<end]`, whitespace trimmed (nil: none left); `i` moves
    /// past it.
    private static func nextElement(_ b: UnsafeBufferPointer<UInt8>, from i: inout Int, to end: Int) -> Range<Int>? {
        while i < end && (b[i] == .sp || b[i] == .htab || b[i] == UInt8(ascii: ",")) { i += 1 }
        guard i < end else { return nil }
        let start = i
        while i < end && b[i] != UInt8(ascii: ",") { i += 1 }
        var k = i
        while b[k - 1] == .sp || b[k - 1] == .htab { k -= 1 }  // stops at `start`, which is neither
        return start..<k
    }

    /// What one Connection element names, ASCII case-insensitively.
    private static func option(_ b: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> ConnectionOptions {
        func named(_ lowercased: StaticString) -> Bool {
            // OR-ing 0x20 lower-cases letters and leaves `-` alone; the only other byte it maps onto a
            // letter or `-` of these names is a control character, which no field value holds.
            r.count == lowercased.utf8CodeUnitCount && Words.equal(b.baseAddress! + r.lowerBound, lowercased.utf8Start, r.count, fold: 0x20)
        }
        return named("close") ? .close : named("keep-alive") ? .keepAlive : named("upgrade") ? .upgrade : .other
    }

    /// How many fields are `known`, and the first one's index (-1 when none): what the framing and Host
    /// rules need, without building a list.
    public func occurrences(of known: FieldName) -> (count: Int, first: Int) {
        var count = 0
        var first = -1
        for i in 0..<entries.count where entries[i].known == known {
            if count == 0 { first = i }
            count += 1
        }
        return (count, first)
    }

    /// Whether field `i` is called `lowercased` (which must be given in lower case).
    public func name(at i: Int, is lowercased: String) -> Bool {
        let r = entries[i].name
        var utf8 = lowercased.utf8.makeIterator()
        guard r.count == lowercased.utf8.count else { return false }
        for j in r {
            guard let c = utf8.next(), storage[j].asciiLowercased == c else { return false }
        }
        return true
    }

    /// Indices of the fields called `name` (lower case), in order.
    public func indices(named name: String) -> [Int] {
        (0..<entries.count).filter { self.name(at: $0, is: name) }
    }

    /// Every value of the fields called `name` (lower case), in order.
    public func values(named name: String) -> [String] {
        indices(named: name).map(value(at:))
    }

    /// The first value of the field called `name` (lower case).
    public func first(named name: String) -> String? {
        for i in 0..<entries.count where self.name(at: i, is: name) { return value(at: i) }
        return nil
    }

    public mutating func append(name: String, value: String) {
        let n0 = storage.count
        storage.append(contentsOf: name.utf8)
        let v0 = storage.count
        storage.append(contentsOf: value.utf8)
        entries.append(Entry(name: n0..<v0, value: v0..<storage.count, known: FieldName.classify(name)))
    }

    /// Removes every field called `name` (lower case).
    public mutating func remove(_ name: String) {
        var i = 0
        while i < entries.count {
            if self.name(at: i, is: name) { entries.remove(at: i) } else { i += 1 }
        }
    }

    /// Replaces all fields called `name` by one with `value`.
    public mutating func set(_ name: String, _ value: String) {
        remove(name.lowercased())
        append(name: name, value: value)
    }

    /// Writes `Name: value\r\n` for each field `keep(index, tag)` accepts: how a head is rewritten
    /// on the way through without copying or mutating the parsed fields.
    public func write(into out: ByteSink, where keep: (Int, FieldName) -> Bool) {
        var run = Run()
        for i in 0..<entries.count where keep(i, entries[i].known) { copy(i, &run, into: out) }
        flush(&run, into: out)
    }

    /// Writes every field whose tag is not in `dropped`, as `write(into:where:)` would: the same
    /// decision made from the tag alone, without a call per field.
    public func write(into out: ByteSink, dropping dropped: FieldName.Set) {
        var run = Run()
        for i in 0..<entries.count where !dropped.contains(entries[i].known) { copy(i, &run, into: out) }
        flush(&run, into: out)
    }

    /// Fields waiting to be copied as one block: consecutive lines of the received head, each already
    /// written the way `writeField(at:)` writes it.
    public struct Run {
        var start = 0
        var end = 0
        public init() {}
    }

    /// Writes field `i` as `writeField(at:)` would, but a line received as exactly `Name: value\r\n`
    /// joins `run` when it follows the run's last line, so that the kept lines of a head go out in a
    /// few copies instead of six appends each. Call `flush` before writing anything else to `out`.
    public func copy(_ i: Int, _ run: inout Run, into out: ByteSink) {
        let e = entries[i]
        let asWritten = e.value.lowerBound == e.name.upperBound + 2 && storage[e.name.upperBound + 1] == .sp
            && e.value.upperBound < storage.count && storage[e.value.upperBound] == .cr
        guard asWritten else {
            flush(&run, into: out)
            writeField(at: i, into: out)
            return
        }
        if run.end != e.name.lowerBound || run.end == run.start {
            flush(&run, into: out)
            run.start = e.name.lowerBound
        }
        run.end = e.value.upperBound + 2
    }

    /// Writes what `run` holds and empties it.
    public func flush(_ run: inout Run, into out: ByteSink) {
        guard run.end > run.start else { return }
        storage.withUnsafeBufferPointer { out.append(contentsOf: UnsafeBufferPointer(rebasing: $0[run.start..<run.end])) }
        run = Run()
    }

    /// Writes field `i` as it came.
    public func writeField(at i: Int, into out: ByteSink) {
        let e = entries[i]
        storage.withUnsafeBufferPointer { Self.writeLine(UnsafeBufferPointer(rebasing: $0[e.name]), UnsafeBufferPointer(rebasing: $0[e.value]), into: out) }
    }

    /// Writes one `Name: value\r\n` line (names are literals: idlegate adds only fields it knows).
    public static func writeField(_ name: StaticString, _ value: String, into out: ByteSink) {
        value.withUTF8Bytes { writeLine(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount), $0, into: out) }
    }

    /// Writes one `Name: value\r\n` line with a name worked out at run time.
    public static func writeField(named name: String, value: String, into out: ByteSink) {
        name.withUTF8Bytes { n in value.withUTF8Bytes { writeLine(n, $0, into: out) } }
    }

    /// Writes field `i`'s value as the value of a field named `name` (a literal).
    public func writeValue(at i: Int, as name: StaticString, into out: ByteSink) {
        storage.withUnsafeBufferPointer {
            Self.writeLine(UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount),
                           UnsafeBufferPointer(rebasing: $0[entries[i].value]), into: out)
        }
    }

    /// `name: value\r\n`, the one way every field line is written.
    @inline(__always) private static func writeLine(_ name: UnsafeBufferPointer<UInt8>, _ value: UnsafeBufferPointer<UInt8>, into out: ByteSink) {
        out.append(contentsOf: name)
        out.append(.colon)
        out.append(.sp)
        out.append(contentsOf: value)
        out.append(.cr)
        out.append(.lf)
    }

    /// Writes `Name: value\r\n` for each field.
    public func write(into out: ByteSink) {
        write(into: out) { _, _ in true }
    }
}

extension StringProtocol {
    /// Without any of the characters of `set` at either end.
    public func trimmingCharacters(in set: String) -> String {
        var s = self[...]
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }

    /// Without the optional whitespace (SP, HTAB) HTTP allows around list elements and values.
    func trimmingOWS() -> Substring {
        var s = self[...]
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return Substring(s)
    }
}
