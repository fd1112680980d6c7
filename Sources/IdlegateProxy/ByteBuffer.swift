/// A FIFO of bytes that holds memory only while it holds bytes: when drained it gives its storage
/// back, so ten thousand idle keep-alive connections cost no buffers.
struct ByteBuffer {
    private var storage: [UInt8] = []
    private var start = 0

    var count: Int { storage.count - start }
    var isEmpty: Bool { start == storage.count }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compactIfWorthIt()
        storage.append(contentsOf: bytes)
    }

    mutating func append(_ bytes: [UInt8]) {
        compactIfWorthIt()
        storage.append(contentsOf: bytes)
    }

    /// Drops `n` bytes from the front.
    mutating func consume(_ n: Int) {
        start += n
        if start == storage.count { clear() }
    }

    mutating func clear() {
        storage = []
        start = 0
    }

    /// The unread bytes, valid only inside `body`.
    func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[start...])) }
    }

    private mutating func compactIfWorthIt() {
        if start > 0 && start >= storage.count / 2 {
            storage.removeFirst(start)
            start = 0
        }
    }
}
