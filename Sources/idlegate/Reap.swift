import ArgumentParser
import Glibc
import IdlegateBase
import IdlegateConfig
import IdlegateReaper
import IdlegateSessions

struct Reap: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Delete Odoo's stale session files: idle ones, anonymous ones sooner, and those of sessions idlegate ended.",
        discussion: """
        Reads the session key and the session snapshot from idlegate's state directory (--config / --state-dir, as         serve) to find the sessions idlegate ended; without them only the mtime rules apply. Safe while Odoo runs.         Exit status 1 only on real errors (a directory that cannot be read or is not Odoo's, a file that cannot be deleted).
        """)

    @OptionGroup var options: ConfigOptions

    @Option(name: .customLong("sessions"), help: "Odoo's <data_dir>/sessions. (reap.sessions_dir)")
    var sessions: String?

    @Option(help: "Session files untouched this long go. (reap.idle)")
    var idle: String?

    @Option(name: .customLong("anonymous-idle"), help: "Anonymous session files untouched this long go. (reap.anonymous_idle)")
    var anonymousIdle: String?

    @Flag(name: .customLong("dry-run"), help: "Only list what would go, by session key.")
    var dryRun = false

    @Flag(help: "A JSON summary instead of text.")
    var json = false

    func run() throws {
        let c = try options.loadOrExit()
        guard let dir = sessions ?? (c.reap.sessionsDir.isEmpty ? nil : c.reap.sessionsDir) else {
            throw fail("--sessions: give Odoo's <data_dir>/sessions")
        }
        var rules = Reaper.Rules(idle: c.reap.idle, anonymousIdle: c.reap.anonymousIdle, dryRun: dryRun,
                                 threads: min(4, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        if let t = idle {
            guard let ms = Config.parseDuration(t), ms >= 1000 else { throw fail("--idle: \"\(t)\" is not a duration (like 7d, 12h)") }
            rules.idle = ms
        }
        if let t = anonymousIdle {
            guard let ms = Config.parseDuration(t), ms >= 1000 else { throw fail("--anonymous-idle: \"\(t)\" is not a duration (like 1h)") }
            rules.anonymousIdle = ms
        }
        // The sessions idlegate ended, from its snapshot, named by the same keys.
        var note: String? = nil
        var ended = Set<SessionKey>()
        let deriver: SessionKeyDeriver
        let existing: [UInt8]?
        do { existing = try SessionSecret.existing(secretHex: c.sessionSecret, keyFile: c.effectiveKeyFile) } catch { throw fail("\(error)") }
        if let secret = existing {
            deriver = SessionKeyDeriver(secret: secret)
            let path = c.stateDir + "/sessions.snapshot"
            if let bytes = readBytes(path) {
                do {
                    let contents = try SessionSnapshot.read(bytes, check: SessionSnapshot.check(deriver))
                    for (k, r) in contents.records where r.isEnded { ended.insert(k) }
                } catch {
                    note = "session snapshot \(path) not used (\(error)): only the mtime rules apply"
                }
            } else {
                note = "no session snapshot at \(path): only the mtime rules apply"
            }
        } else {
            do { deriver = SessionKeyDeriver(secret: try SessionSecret.random()) } catch { throw fail("\(error)") }
            note = "no session key in \(c.effectiveKeyFile): only the mtime rules apply, and keys shown are one-off"
        }
        if let note { _ = write(2, Array("idlegate: \(note)\n".utf8), note.utf8.count + 11) }
        let reaper = Reaper(sessions: dir, rules: rules, deriver: deriver, clock: SystemClock(),
                            ended: ended.isEmpty ? nil : { ended.contains($0) })
        let summary: Reaper.Summary
        do { summary = try reaper.run() } catch { throw fail("\(error)") }
        print(json ? summary.json : summary.text, terminator: "")
        if !summary.errors.isEmpty { throw ExitCode(1) }
    }
}
