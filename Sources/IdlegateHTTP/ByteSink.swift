import Glibc  // memcpy

/// Where heads and bodies are written on their way out: a growable run of bytes whose append is one
/// capacity check and one copy. (An array's append checks that its storage is unique and goes through
/// the generic sequence path each time, and a forwarded request and its response are some forty
/// appends.) A class: each worker has one per side, reused for every connection, and the writers add to
/// it without copying it in and out.
public final class ByteSink {
    @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @usableFromInline var capacity: Int
    @usableFromInline var used = 0

    /// How many bytes it holds.
    public var count: Int { used }

    public init(capacity: Int = 1024) {
        self.capacity = max(capacity, 16)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    public var isEmpty: Bool { used == 0 }

    /// The bytes it holds, valid only inside `body`.
    @inlinable
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: used))
    }

    /// A copy of the bytes it holds.
    public var bytes: [UInt8] { withBytes { Array($0) } }

    @inlinable
    public func append(contentsOf bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        guard n > 0, let source = bytes.baseAddress else { return }
        if used + n > capacity { grow(to: used + n) }
        memcpy(base + used, source, n)
        used += n
    }

    @inlinable
    public func append(contentsOf bytes: UnsafeBufferPointer<UInt8>) {
        append(contentsOf: UnsafeRawBufferPointer(bytes))
    }

    @inlinable
    public func append(contentsOf bytes: [UInt8]) {
        bytes.withUnsafeBytes { append(contentsOf: $0) }
    }

    @inlinable
    public func append(_ byte: UInt8) {
        if used == capacity { grow(to: used + 1) }
        base[used] = byte
        used += 1
    }

    /// Appends a literal's bytes.
    @inlinable
    public func appendUTF8(_ s: StaticString) {
        append(contentsOf: UnsafeRawBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    /// Appends a string's UTF-8 bytes with one copy from its storage.
    public func appendUTF8(_ s: String) {
        s.withUTF8Bytes { append(contentsOf: $0) }
    }

    /// Empties it; the memory stays for the next message.
    public func removeAll() { used = 0 }

    /// Drops what was appended after the first `n` bytes.
    public func truncate(to n: Int) {
        precondition(n >= 0 && n <= used)
        used = n
    }

    @usableFromInline
    func grow(to needed: Int) {
        var size = capacity
        while size < needed { size *= 2 }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
        bigger.update(from: base, count: used)
        base.deallocate()
        base = bigger
        capacity = size
    }
}
