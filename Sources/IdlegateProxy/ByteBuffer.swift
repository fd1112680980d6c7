/// A FIFO of bytes that holds memory only while it holds bytes: when drained it gives its storage
/// back, so ten thousand idle keep-alive connections cost no buffers. Given a `SpareBytes`, it gives its
/// storage there instead and takes it from there when it next fills: the body that came with a head
/// then costs no allocation.
struct ByteBuffer {
    private var storage: [UInt8] = []
    private var start = 0
    private unowned(unsafe) let spare: SpareBytes?

    /// `spare`: the worker's, which outlives every connection.
    init(spare: SpareBytes? = nil) { self.spare = spare }

    var count: Int { storage.count - start }
    var isEmpty: Bool { start == storage.count }

    mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if storage.capacity == 0, let spare, spare.storage.capacity > 0 { swap(&storage, &spare.storage) }
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
        start = 0
        if let spare, spare.storage.capacity == 0, storage.capacity <= SpareBytes.largest {
            storage.removeAll(keepingCapacity: true)
            swap(&storage, &spare.storage)
        } else {
            storage = []
        }
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

/// One worker's spare buffer storage (see `ByteBuffer`): at most one, of at most `largest` bytes.
final class SpareBytes {
    static let largest = 64 * 1024
    var storage: [UInt8] = []
}
