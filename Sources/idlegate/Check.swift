import ArgumentParser
import Glibc
import IdlegateConfig
import IdlegateIO

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Validate the configuration and print the effective values as YAML, like nginx -t.")

    @OptionGroup var options: ConfigOptions

    func run() throws {
        let c = try options.loadOrExit()
        print("# effective configuration (defaults, then the file, then IDLEGATE_* variables, then flags)")
        print(c.yaml(), terminator: "")
        print("# configuration ok")
    }
}

/// Whether a TCP connection to `authority` opens within a second.
func upstreamReachable(_ authority: String) -> Bool {
    guard let addresses = try? SocketAddress.resolve(authority) else { return false }
    for a in addresses {
        guard let fd = try? Socket.connect(to: a) else { continue }
        defer { close(fd) }
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        if poll(&p, 1, 1000) == 1 && Socket.pendingError(fd) == 0 { return true }
    }
    return false
}
