import Testing
@testable import IdlegateHTTP

@Suite("WebSocket frame boundaries")
struct WebSocketFramesTests {
    func frame(_ opcode: UInt8, _ payload: [UInt8], masked: Bool = false) -> [UInt8] {
        var f: [UInt8] = [0x80 | opcode]
        let m: UInt8 = masked ? 0x80 : 0
        if payload.count < 126 { f.append(m | UInt8(payload.count)) }
        else if payload.count < 65536 { f += [m | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)] }
        else { f.append(m | 127); for s in stride(from: 56, through: 0, by: -8) { f.append(UInt8((payload.count >> s) & 0xFF)) } }
        if masked { f += [1, 2, 3, 4] }
        return f + payload
    }

    @Test func findsEveryBoundaryByteByByte() {
        let stream = frame(1, Array("hello".utf8)) + frame(9, []) + frame(2, Array(repeating: 7, count: 300)) + frame(1, Array(repeating: 1, count: 70_000), masked: true)
        let ends = [7, 9, 9 + 4 + 300, stream.count]
        var f = WebSocketFrames()
        var boundaries: [Int] = []
        for (i, b) in stream.enumerated() {
            _ = [b].withUnsafeBytes { f.feed($0) }
            if f.atBoundary { boundaries.append(i + 1) }
        }
        #expect(boundaries == ends)
    }

    @Test func stopsAtTheNextBoundary() {
        let first = frame(2, Array(repeating: 7, count: 300))
        let stream = first + frame(1, Array("next".utf8))
        var f = WebSocketFrames()
        _ = Array(stream[0..<100]).withUnsafeBytes { f.feed($0) }          // mid-frame
        let rest = Array(stream[100...])
        let end = rest.withUnsafeBytes { f.feed($0, stopAtBoundary: true) }
        #expect(end == first.count - 100)                                  // up to the end of that frame
        #expect(f.atBoundary)
        #expect(rest.withUnsafeBytes { f.feed($0, stopAtBoundary: true) } == 0)  // already at one
    }

    @Test func midFrameIsNotABoundary() {
        var f = WebSocketFrames()
        let part = frame(1, Array(repeating: 0, count: 200)).prefix(50)
        _ = Array(part).withUnsafeBytes { f.feed($0) }
        #expect(!f.atBoundary)
    }

    @Test func closeFrameCarries4001() {
        #expect(WebSocketFrames.closeFrame(code: 4001, reason: "session expired") == [0x88, 17, 0x0F, 0xA1] + Array("session expired".utf8))
    }
}
