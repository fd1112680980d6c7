import ArgumentParser
import Glibc
import IdlegateConfig

@main
struct Idlegate: ParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "idlegate",
        abstract: "Idle-timeout enforcement for Odoo sessions, as a reverse proxy in front of Odoo.",
        version: version,
        subcommands: [Serve.self, Check.self, Audit.self, Reap.self],
        defaultSubcommand: nil
    )
}

/// Flags shared by `serve` and `check`: each overrides the config file's key of the same name.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "YAML config file (default: the embedded defaults).")
    var config: String?

    @Option(name: .long, help: "Address to listen on, HOST:PORT or [V6]:PORT; repeat for several. (listen)")
    var listen: [String] = []

    @Option(name: .long, help: "Odoo's HTTP port, http://HOST:PORT. (upstream)")
    var upstream: String?

    @Option(name: .customLong("websocket-upstream"), help: "Odoo's WebSocket/long-polling port, http://HOST:PORT. (websocket_upstream)")
    var websocketUpstream: String?

    @Option(name: .long, help: "Event-loop threads; 0 = one per core. (threads)")
    var threads: Int?

    @Option(name: .customLong("log-level"), help: "debug, info, warning or error. (log_level)")
    var logLevel: String?

    @Option(name: .customLong("idle-timeout"), help: "The default policy's idle window, like 90s or 15m. (idle_timeout)")
    var idleTimeout: String?

    @Option(name: .customLong("max-lifetime"), help: "The default policy's absolute lifetime, like 12h; 0 for none. (max_lifetime)")
    var maxLifetime: String?

    @Option(name: .long, help: "The default policy's mode: enforce, audit or off. (mode)")
    var mode: String?

    @Option(name: .customLong("state-dir"), help: "Where the session snapshot and key file live. (state_dir)")
    var stateDir: String?

    @Option(name: .customLong("admin-listen"), help: "The admin API's HOST:PORT; empty for none. (admin_listen)")
    var adminListen: String?

    @Option(name: .customLong("audit-log"), help: "The audit log: a file, - for stdout. (audit.log)")
    var auditLog: String?

    @Option(name: .customLong("tls-cert"), help: "A PEM certificate chain: serve HTTPS on the listen addresses. (tls.cert)")
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "The private key of --tls-cert, PEM. (tls.key)")
    var tlsKey: String?

    /// `load()`, or the reason on stderr and exit status 1 (no usage text: the message names the key).
    func loadOrExit() throws -> Config {
        do {
            return try load()
        } catch {
            throw fail("\(error)")
        }
    }

    /// The effective config: embedded defaults, then the file, then `IDLEGATE_…` variables, then flags.
    /// Called again on every reload.
    func load() throws -> Config {
        var text = ""
        if let path = config {
            guard let t = readFile(path) else { throw ValidationError("cannot read config file \(path): \(String(cString: strerror(errno)))") }
            text = t
        }
        // Flags are one more layer over the file and the environment, checked by the same loader.
        var flags: [Config.Override] = []
        func flag(_ name: String, _ path: String, _ value: Any?) {
            if let value { flags.append(Config.Override(flag: name, path: path.split(separator: ".").map(String.init), value: value)) }
        }
        flag("--listen", "listen", listen.isEmpty ? nil : listen)
        flag("--upstream", "upstream", upstream)
        flag("--websocket-upstream", "websocket_upstream", websocketUpstream)
        flag("--threads", "threads", threads)
        flag("--log-level", "log_level", logLevel)
        flag("--idle-timeout", "idle_timeout", idleTimeout)
        flag("--max-lifetime", "max_lifetime", maxLifetime)
        flag("--mode", "mode", mode)
        flag("--state-dir", "state_dir", stateDir)
        flag("--admin-listen", "admin_listen", adminListen)
        flag("--audit-log", "audit.log", auditLog)
        flag("--tls-cert", "tls.cert", tlsCert)
        flag("--tls-key", "tls.key", tlsKey)
        do {
            return try Config.load(yaml: text, environment: processEnvironment(), flags: flags)
        } catch {
            // A value from a variable or a flag says so; one from the file is named by the file.
            throw ValidationError(error.source == nil ? "\(config ?? "defaults"): \(error)" : "\(error)")
        }
    }
}

/// Writes `idlegate: message` to stderr and gives the exit status 1 to throw (no usage text: the
/// message says what is wrong).
func fail(_ message: String) -> ExitCode {
    let line = Array("idlegate: \(message)\n".utf8)
    _ = write(2, line, line.count)
    return ExitCode(1)
}

/// The process environment, as `KEY=value` pairs.
func processEnvironment() -> [String: String] {
    var out: [String: String] = [:]
    var p = environ
    while let entry = p.pointee {
        let s = String(cString: entry)
        if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
        p += 1
    }
    return out
}

func readFile(_ path: String) -> String? {
    readBytes(path).map { String(decoding: $0, as: UTF8.self) }
}

func readBytes(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 1 << 20)
    while true {
        let n = read(fd, &buf, buf.count)
        if n < 0 && errno == EINTR { continue }
        if n < 0 { return nil }  // a directory, an I/O error
        if n == 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return out
}
