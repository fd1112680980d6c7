import Foundation
import Testing
@testable import IdlegateTLS

/// What a listener (and `idlegate check`) says about certificate files.
@Suite("Certificate files")
struct CertificateInfoTests {
    let pki: TestPKI

    init() throws { pki = try TestPKI() }

    @Test func aGoodChainIsDescribed() throws {
        let f = try pki.leaf("good", names: ["kiosk.test", "*.kiosk.test"])
        let r = try CertificateInfo.inspect(TLSCertificateFiles(cert: f.cert, key: f.key))
        #expect(r.names == ["kiosk.test", "*.kiosk.test"])
        #expect(r.chainLength == 2)
        #expect(r.subject.contains("CN=kiosk.test"))
        let days = (r.notAfter ?? .distantPast).timeIntervalSinceNow / 86_400
        #expect(days > 29 && days <= 31)
    }

    @Test func anExpiredCertificateShowsItsDate() throws {
        let f = try pki.leaf("old", names: ["old.test"], expired: true)
        let r = try CertificateInfo.inspect(TLSCertificateFiles(cert: f.cert, key: f.key))
        #expect(r.notAfter == Date(timeIntervalSince1970: 1_580_515_200))  // 2020-02-01T00:00:00Z
    }

    @Test func aKeyOfAnotherCertificateIsRefusedNamingBothFiles() throws {
        let a = try pki.leaf("a", names: ["a.test"]), b = try pki.leaf("b", names: ["b.test"])
        #expect {
            try CertificateInfo.inspect(TLSCertificateFiles(cert: a.cert, key: b.key))
        } throws: { "\($0)".contains("does not match") && "\($0)".contains(b.key) && "\($0)".contains(a.cert) }
    }

    @Test func aChainOutOfOrderIsRefused() throws {
        let a = try pki.leaf("a", names: ["a.test"])
        let reversed = pki.dir + "/reversed.pem"
        let leaf = try String(contentsOfFile: pki.dir + "/a.pem", encoding: .utf8)
        // The CA first, then the leaf: OpenSSL would serve the CA's certificate as the server's.
        try (String(contentsOfFile: pki.caFile, encoding: .utf8) + leaf).write(toFile: reversed, atomically: true, encoding: .utf8)
        #expect {
            try CertificateInfo.inspect(TLSCertificateFiles(cert: reversed, key: a.key))
        } throws: { "\($0)".contains("does not match") || "\($0)".contains("out of order") }
        // The leaf, then a certificate that did not issue it.
        let b = try pki.leaf("b", names: ["b.test"])
        let wrong = pki.dir + "/wrong.pem"
        try (leaf + String(contentsOfFile: pki.dir + "/b.pem", encoding: .utf8)).write(toFile: wrong, atomically: true, encoding: .utf8)
        #expect {
            try CertificateInfo.inspect(TLSCertificateFiles(cert: wrong, key: a.key))
        } throws: { "\($0)".contains("out of order") }
        _ = b
    }

    @Test func missingFilesAreNamed() {
        #expect {
            try CertificateInfo.inspect(TLSCertificateFiles(cert: "/nonexistent/cert.pem", key: "/nonexistent/key.pem"))
        } throws: { "\($0)".contains("/nonexistent/cert.pem") }
    }

    @Test(arguments: [
        ("kiosk.test", "kiosk.test", true), ("*.shop.test", "till.shop.test", true), ("*.shop.test", "shop.test", false),
        ("*.shop.test", "a.b.shop.test", false), ("kiosk.test", "other.test", false),
    ])
    func wildcards(_ pattern: String, _ host: String, _ matches: Bool) {
        #expect(CertificateInfo.name(pattern, matches: host) == matches)
    }
}
