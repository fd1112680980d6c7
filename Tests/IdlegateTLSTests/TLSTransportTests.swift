import Foundation
import Glibc
import IdlegateIO
import Testing
@testable import IdlegateTLS

/// Both ends of a TLS stream over a non-blocking socket pair, driven by hand the way the event loop
/// drives them: every "not now" is `wouldBlock`, and nothing blocks.
@Suite("TLS transport")
struct TLSTransportTests {
    let pki: TestPKI

    init() throws { pki = try TestPKI() }

    /// A connected pair of non-blocking sockets: (server side, client side).
    func socketPair() throws -> (Int32, Int32) {
        var fds: [Int32] = [0, 0]
        guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue), 0, &fds) == 0 else { throw TLSError("socketpair") }
        return (fds[0], fds[1])
    }

    /// Moves `message` from `from` to `to` (both sides making progress, as the loop would), then returns
    /// what `to` read; nil when either side failed.
    func send(_ message: [UInt8], from: TLSTransport, to: TLSTransport, rounds: Int = 2000) -> [UInt8]? {
        var sent = 0
        var got: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 1)
        defer { buffer.deallocate() }
        for _ in 0..<rounds {
            if sent < message.count {
                switch message.withUnsafeBytes({ from.write(UnsafeRawBufferPointer(rebasing: $0[sent...])) }) {
                case .bytes(let n): sent += n
                case .wouldBlock: break
                case .eof, .failed: return nil
                }
            } else {
                _ = from.read(into: buffer)  // lets a handshake the writer waits on move (nothing is expected)
            }
            switch to.read(into: buffer) {
            case .bytes(let n): got += buffer[0..<n]
            case .wouldBlock: break
            case .eof, .failed: return nil
            }
            if got.count == message.count { return got }
        }
        return nil
    }

    func server(_ names: [[String]], minimum: TLSVersion = .tls12) throws -> TLSServer {
        let files = try names.enumerated().map { i, n in try pki.leaf("server\(i)", names: n) }
        return try TLSServer(certificates: files.map { TLSCertificateFiles(cert: $0.cert, key: $0.key) }, minimumVersion: minimum)
    }

    @Test func handshakeAndBytesBothWays() throws {
        let server = try server([["kiosk.test"]])
        let client = try TLSClient(caFile: pki.caFile)
        let (a, b) = try socketPair()
        let s = try server.transport(fd: a), c = try client.transport(fd: b, host: "kiosk.test")
        #expect(s.isHandshaking && c.isHandshaking)
        let request = Array("GET / HTTP/1.1\r\nHost: kiosk.test\r\n\r\n".utf8)
        #expect(send(request, from: c, to: s) == request)
        #expect(!s.isHandshaking && !c.isHandshaking)
        #expect(s.version == "TLSv1.3" && c.version == "TLSv1.3")
        // More than one record (16 KiB) and more than one read buffer: every byte arrives, in order.
        let big = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        #expect(send(big, from: s, to: c) == big)
        c.shutdownWrite()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 1)
        defer { buffer.deallocate() }
        #expect(s.read(into: buffer) == .eof)
    }

    /// SNI: the client asking for the second certificate's name gets it (its hostname check passes
    /// only with that certificate); an unknown name gets the first, which the client refuses.
    @Test func sniPicksTheCertificate() throws {
        let server = try server([["default.test"], ["*.shop.test", "shop.test"]])
        #expect(server.names == [["default.test"], ["*.shop.test", "shop.test"]])
        let client = try TLSClient(caFile: pki.caFile)
        for host in ["till1.shop.test", "shop.test", "default.test"] {
            let (a, b) = try socketPair()
            let s = try server.transport(fd: a), c = try client.transport(fd: b, host: host)
            #expect(send(Array("hi".utf8), from: c, to: s) != nil, "\(host)")
        }
        let (a, b) = try socketPair()
        let s = try server.transport(fd: a), c = try client.transport(fd: b, host: "other.test")
        #expect(send(Array("hi".utf8), from: c, to: s) == nil)
        #expect(c.failureReason?.contains("hostname mismatch") == true, "\(c.failureReason ?? "none")")
    }

    @Test func anExpiredCertificateIsRefusedByTheClient() throws {
        let files = try pki.leaf("old", names: ["old.test"], expired: true)
        let server = try TLSServer(certificates: [TLSCertificateFiles(cert: files.cert, key: files.key)])
        let client = try TLSClient(caFile: pki.caFile)
        let (a, b) = try socketPair()
        let s = try server.transport(fd: a), c = try client.transport(fd: b, host: "old.test")
        #expect(send(Array("hi".utf8), from: c, to: s) == nil)
        #expect(c.failureReason?.contains("certificate has expired") == true, "\(c.failureReason ?? "none")")
    }

    /// A certificate from a CA the client does not trust (the system bundle does not hold the test CA).
    @Test func anUntrustedCertificateIsRefused() throws {
        let server = try server([["kiosk.test"]])
        let client = try TLSClient()
        let (a, b) = try socketPair()
        let s = try server.transport(fd: a), c = try client.transport(fd: b, host: "kiosk.test")
        #expect(send(Array("hi".utf8), from: c, to: s) == nil)
        #expect(c.failureReason?.contains("certificate verify failed") == true, "\(c.failureReason ?? "none")")
    }

    /// Plain HTTP to the TLS side: the server's read fails, saying so, and nothing blocks.
    @Test func plainHTTPOnTheTLSSideIsNoticed() throws {
        let server = try server([["kiosk.test"]])
        let (a, b) = try socketPair()
        let s = try server.transport(fd: a)
        let request = Array("GET / HTTP/1.1\r\nHost: kiosk.test\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { Glibc.write(b, $0.baseAddress, $0.count) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 1)
        defer { buffer.deallocate() }
        if case .failed = s.read(into: buffer) {} else { Issue.record("plain HTTP read as TLS") }
        #expect(s.plainHTTPSeen)
        close(b)
    }

    /// A client that stops mid-handshake leaves the server waiting, never blocked; one that hangs up
    /// mid-handshake ends it with a failure.
    @Test func aTruncatedHandshakeEndsCleanly() throws {
        let server = try server([["kiosk.test"]])
        let client = try TLSClient(caFile: pki.caFile)
        let (a, b) = try socketPair()
        let s = try server.transport(fd: a), c = try client.transport(fd: b, host: "kiosk.test")
        _ = [UInt8(0)].withUnsafeBytes { c.write($0) }  // sends the ClientHello only
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1024, alignment: 1)
        defer { buffer.deallocate() }
        #expect(s.read(into: buffer) == .wouldBlock)  // ServerHello sent, waiting for the client's Finished
        #expect(s.isHandshaking)
        c.close()
        if case .failed = s.read(into: buffer) {} else { Issue.record("a hang-up mid-handshake was not a failure") }
    }
}
