import Glibc  // memchr

extension String {
    /// The offset of the first `byte` in the UTF-8 bytes, found with one `memchr` over the string's own
    /// storage (a native string is contiguous): a request's target is searched several times per request,
    /// and `utf8.firstIndex(of:)` walks it index by index.
    @inline(__always) func utf8Offset(of byte: UInt8) -> Int? {
        if let found = utf8.withContiguousStorageIfAvailable({ b -> Int? in
            guard let base = b.baseAddress, let p = memchr(base, Int32(byte), b.count) else { return nil }
            return UnsafeRawPointer(p) - UnsafeRawPointer(base)
        }) {
            return found
        }
        return utf8.firstIndex(of: byte).map { utf8.distance(from: utf8.startIndex, to: $0) }
    }

    /// `body` over the UTF-8 bytes, without a copy for a native string.
    @inline(__always) func withUTF8Bytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let r = utf8.withContiguousStorageIfAvailable(body) { return r }
        return Array(utf8).withUnsafeBufferPointer(body)
    }
}

extension Array where Element == UInt8 {
    /// Appends a string's UTF-8 bytes with one copy from its storage.
    @inline(__always) public mutating func appendUTF8(_ s: String) {
        s.withUTF8Bytes { append(contentsOf: $0) }
    }

    /// Appends a literal's bytes.
    @inline(__always) public mutating func appendUTF8(_ s: StaticString) {
        append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }
}
