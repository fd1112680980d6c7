import Testing
@testable import IdlegateHTTP

/// The word-at-a-time scans agree with the byte rules they stand for, for every byte value at every
/// offset within and across the eight-byte words.
struct ByteClassTests {
    @Test func fieldValueScanAgreesWithTheByteRule() {
        for c in 0...255 {
            let byte = UInt8(c)
            for length in [1, 7, 8, 9, 17, 23] {
                for at in 0..<length {
                    var line = [UInt8](repeating: UInt8(ascii: "a"), count: length)
                    line[at] = byte
                    let found = line.withUnsafeBytes { ByteClass.firstNonFieldValue($0, 0..<length) }
                    #expect(found == (ByteClass.isFieldValue(byte) ? nil : at), "byte \(c) at \(at) of \(length)")
                }
            }
        }
    }

    @Test func fieldValueScanFindsTheFirstOfSeveralAndKeepsToItsRange() {
        var line = [UInt8](repeating: 0x80, count: 32)
        line[3] = 0x7F
        line[12] = 0x00
        line[20] = 0x0D
        line.withUnsafeBytes { b in
            #expect(ByteClass.firstNonFieldValue(b, 0..<32) == 3)
            #expect(ByteClass.firstNonFieldValue(b, 4..<32) == 12)
            #expect(ByteClass.firstNonFieldValue(b, 13..<20) == nil)
            #expect(ByteClass.firstNonFieldValue(b, 13..<21) == 20)
            #expect(ByteClass.firstNonFieldValue(b, 5..<5) == nil)
        }
        // Tabs, spaces, obs-text and DEL's neighbours are all fine.
        let ok: [UInt8] = [0x09, 0x20, 0x7E, 0x80, 0xFF, 0x21, 0x09, 0x09, 0x41, 0x7E, 0xFE]
        ok.withUnsafeBytes { #expect(ByteClass.firstNonFieldValue($0, 0..<ok.count) == nil) }
    }
}
