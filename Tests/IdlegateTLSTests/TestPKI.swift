import Foundation

/// Certificates made for the tests with the `openssl` command: a CA, leaves signed by it for given DNS
/// names (ECDSA P-256 or RSA 2048), and one that expired in 2020.
final class TestPKI {
    let dir: String

    init() throws {
        dir = NSTemporaryDirectory() + "idlegate-tls-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "30",
                     "-subj", "/CN=idlegate test CA", "-keyout", "\(dir)/ca.key", "-out", "\(dir)/ca.pem"])
        try "".write(toFile: "\(dir)/index.txt", atomically: true, encoding: .utf8)
        try "1000\n".write(toFile: "\(dir)/serial", atomically: true, encoding: .utf8)
        try """
        [ca]
        default_ca = test
        [test]
        database = \(dir)/index.txt
        new_certs_dir = \(dir)
        serial = \(dir)/serial
        default_md = sha256
        policy = any
        copy_extensions = copy
        unique_subject = no
        [any]
        commonName = supplied
        """.write(toFile: "\(dir)/ca.cnf", atomically: true, encoding: .utf8)
    }

    deinit { try? FileManager.default.removeItem(atPath: dir) }

    var caFile: String { "\(dir)/ca.pem" }

    /// A leaf for `names` signed by the CA: (chain file — leaf then CA —, key file).
    func leaf(_ label: String, names: [String], rsa: Bool = false, expired: Bool = false) throws -> (cert: String, key: String) {
        let key = "\(dir)/\(label).key", csr = "\(dir)/\(label).csr", cert = "\(dir)/\(label).pem", chain = "\(dir)/\(label)-chain.pem"
        try openssl(["req", "-new", "-newkey", rsa ? "rsa:2048" : "ec"] + (rsa ? [] : ["-pkeyopt", "ec_paramgen_curve:P-256"])
            + ["-nodes", "-subj", "/CN=\(names[0])", "-addext", "subjectAltName=" + names.map { "DNS:\($0)" }.joined(separator: ","),
               "-keyout", key, "-out", csr])
        let dates = expired ? ["-startdate", "20200101000000Z", "-enddate", "20200201000000Z"] : ["-days", "30"]
        try openssl(["ca", "-batch", "-notext", "-config", "\(dir)/ca.cnf", "-cert", caFile, "-keyfile", "\(dir)/ca.key",
                     "-in", csr, "-out", cert] + dates)
        try (String(contentsOfFile: cert, encoding: .utf8) + String(contentsOfFile: caFile, encoding: .utf8))
            .write(toFile: chain, atomically: true, encoding: .utf8)
        return (chain, key)
    }

    func openssl(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        let err = Pipe()
        p.standardError = err
        try p.run()
        let message = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus != 0 {
            throw NSError(domain: "openssl", code: Int(p.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "openssl \(args.joined(separator: " ")): \(String(decoding: message, as: UTF8.self))"])
        }
    }
}
