/// Helpers every fuzz target shares: a libFuzzer input as bytes, cut where the input itself says (so
/// the fuzzer learns the splits too), and an invariant check that stops the run with a message.
public struct FuzzInput {
    public let bytes: [UInt8]

    public init(_ data: UnsafePointer<UInt8>, _ size: Int) {
        bytes = Array(UnsafeBufferPointer(start: data, count: size))
    }

    /// The input without its first `n` bytes (used as parameters), and those bytes (zero-padded).
    public func parameters(_ n: Int) -> ([UInt8], ArraySlice<UInt8>) {
        let p = Array(bytes.prefix(n)) + [UInt8](repeating: 0, count: max(0, n - bytes.count))
        return (p, bytes.dropFirst(n))
    }
}

/// Up to `count` increasing cut points inside `0..<length`, derived from `seed` bytes: the same input
/// always cuts the same way.
public func cuts(_ seed: [UInt8], length: Int) -> [Int] {
    guard length > 1 else { return [] }
    var out: [Int] = []
    for s in seed where s != 0 {
        out.append(Int(s) % length)
    }
    return Array(Set(out)).sorted().filter { $0 > 0 }
}

/// A failed invariant: prints what broke and aborts, which libFuzzer records as a crash with the input.
public func invariant(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition() {
        fatalError("invariant broken: \(message())", file: file, line: line)
    }
}

/// Bytes for a message: printable as they are, the rest escaped.
public func show(_ b: some Sequence<UInt8>) -> String {
    var s = ""
    for c in b {
        if c >= 0x20 && c < 0x7F && c != 0x5C { s.unicodeScalars.append(Unicode.Scalar(c)) } else { s += "\\x" + String(c, radix: 16) }
    }
    return s
}
