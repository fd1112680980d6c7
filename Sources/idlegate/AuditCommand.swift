import ArgumentParser
import Glibc
import IdlegateAudit
import IdlegateConfig

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the audit trail.", subcommands: [Report.self])

    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per policy and per login: sessions, idle gaps, and how many sessions each candidate window would have expired.")

        @Argument(help: "Audit log files, plain or .gz, read in the order given.")
        var files: [String]

        @Option(help: "Candidate windows, comma-separated durations.")
        var windows = "5m,10m,15m,30m"

        @Flag(help: "One JSON object instead of tables.")
        var json = false

        func run() throws {
            var seconds: [Int64] = []
            for w in windows.split(separator: ",") {
                guard let ms = Config.parseDuration(String(w)), ms >= 1000 else { throw fail("--windows: \"\(w)\" is not a duration (like 5m, 90s)") }
                seconds.append(ms / 1000)
            }
            var report = AuditReport(windows: seconds)
            for f in files {
                do { try report.read(path: f) } catch { throw fail("\(error)") }
            }
            report.finishOpenSessions()
            print(json ? report.json() : report.table(), terminator: json ? "\n" : "")
        }
    }
}
