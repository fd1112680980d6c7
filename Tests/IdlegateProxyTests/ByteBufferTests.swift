import Testing
@testable import IdlegateProxy

/// A buffer of waiting bytes keeps order across appends and partial consumption; one that empties hands
/// its storage to the worker's spare (none when the storage is larger than a spare is kept), and the
/// next buffer that fills takes it over.
struct ByteBufferTests {
    func contents(_ b: ByteBuffer) -> [UInt8] { b.withBytes { Array($0) } }

    @Test func keepsOrderAndLendsItsStorage() {
        let spare = SpareBytes()
        var a = ByteBuffer(spare: spare)
        [[1, 2, 3], [4, 5], [6]].forEach { (piece: [UInt8]) in piece.withUnsafeBytes { a.append($0) } }
        a.consume(2)
        #expect(contents(a) == [3, 4, 5, 6])
        a.consume(4)  // drained: the storage goes to the spare
        #expect(a.isEmpty)
        #expect(spare.storage.capacity > 0 && spare.storage.isEmpty)

        var b = ByteBuffer(spare: spare)
        [UInt8](repeating: 7, count: 5).withUnsafeBytes { b.append($0) }
        #expect(contents(b) == [7, 7, 7, 7, 7])
        #expect(spare.storage.capacity == 0)  // taken over

        var c = ByteBuffer(spare: spare)  // the spare is empty: c allocates its own
        [UInt8](repeating: 8, count: SpareBytes.largest + 1).withUnsafeBytes { c.append($0) }
        c.clear()  // too large to keep
        #expect(spare.storage.capacity == 0)
        b.clear()
        #expect(spare.storage.capacity > 0)
        #expect(contents(b).isEmpty && contents(c).isEmpty)
    }
}
