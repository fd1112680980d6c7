import Dispatch
import Glibc
import IdlegateBase
import IdlegateSessions

/// Cleans Odoo's file session store (`<data_dir>/sessions`): deletes session files idle past a
/// threshold (by mtime: Odoo rewrites a session's file when it is used), anonymous ones (JSON with
/// `"uid": null`) past a shorter one, and at once the files of sessions idlegate has ended (expired,
/// logged out, kicked), matched by the session key, so no raw id is ever stored or shown.
///
/// Both layouts: 16+ `<2 chars>/<sid>` (JSON in 18+, pickle before) and 12–15 `werkzeug_<sid>.sess`.
/// Pickle files are never unpickled: only the mtime rule applies to them.
///
/// Safety: only names with an Odoo session-id shape are touched; symlinks are never followed (the
/// directories are opened with O_NOFOLLOW, files examined with AT_SYMLINK_NOFOLLOW); a directory that
/// does not look like Odoo's is refused; each file is stat'ed again right before it is unlinked and
/// kept if it changed, so a session used during the scan survives. The directory is streamed: memory
/// does not grow with the number of files.
public struct Reaper {
    public struct Rules: Sendable {
        /// Any session file untouched this long goes (ms).
        public var idle: Int64
        /// An anonymous (not logged in) session file untouched this long goes (ms).
        public var anonymousIdle: Int64
        public var dryRun = false
        /// Threads scanning the 2-character folders (16+) side by side; 1 inside `serve`.
        public var threads = 1

        public init(idle: Int64, anonymousIdle: Int64, dryRun: Bool = false, threads: Int = 1) {
            self.idle = idle
            self.anonymousIdle = anonymousIdle
            self.dryRun = dryRun
            self.threads = max(1, threads)
        }
    }

    public enum Reason: String, Sendable, CaseIterable {
        case idle, anonymous, ended
    }

    /// What one run did.
    public struct Summary: Sendable {
        public var scanned = 0
        public var kept = 0
        public var deleted: [Reason: Int] = [:]
        /// Changed between the scan and the unlink (a session in use): kept.
        public var touchedDuringScan = 0
        /// Names without a session-id shape, symlinks, other file types: left alone.
        public var skipped = 0
        /// Files that could not be read to tell anonymous from logged in (the mtime rule still applies).
        public var unreadable = 0
        /// Real errors (a directory that cannot be read, an unlink that failed), with what happened.
        public var errors: [String] = []
        public var seconds = 0.0
        /// In a dry run: the keys of the sessions that would go, with why.
        public var wouldDelete: [(key: String, reason: Reason)] = []
        public var dryRun = false

        public var deletedTotal: Int { deleted.values.reduce(0, +) }
    }

    public struct Refused: Error, CustomStringConvertible {
        public let description: String
    }

    let root: String
    let rules: Rules
    let deriver: SessionKeyDeriver
    /// Whether idlegate has ended the session with this key; nil when there is nothing to match
    /// (then no key is derived, except to list a dry run).
    let ended: ((SessionKey) -> Bool)?
    let now: Int64
    /// Times the scan (the summary's seconds).
    let clock: Clock

    public init(sessions root: String, rules: Rules, deriver: SessionKeyDeriver, clock: Clock, ended: ((SessionKey) -> Bool)?) {
        self.clock = clock
        self.now = clock.now()
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
        self.rules = rules
        self.deriver = deriver
        self.ended = ended
    }

    /// Scans and reaps. Throws `Refused` (before touching anything) when the directory cannot be
    /// opened or does not look like an Odoo sessions directory.
    public func run() throws -> Summary {
        var summary = Summary()
        summary.dryRun = rules.dryRun
        let start = clock.nanos()
        let top = open(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard top >= 0 else {
            throw Refused(description: "\(root): cannot open as a directory (\(String(cString: strerror(errno))); symlinks are not followed)")
        }
        do { try checkLooksLikeOdoo(top) } catch { close(top); throw error }
        // Flat (12–15) files are reaped as they come; the 2-character folders (16+, at most 64² names)
        // are noted and then reaped by `threads` threads side by side.
        let topCopy = openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        defer { if topCopy >= 0 { close(topCopy) } }
        var buckets: [String] = []
        forEachEntry(top, &summary) { top, name, cname, type, summary in
            if type == DT_DIR {
                guard Self.isBucketName(name) else { summary.skipped += 1; return }
                buckets.append(String(cString: cname))
            } else if name.count == 9 + 40 + 5, name.starts(with: "werkzeug_".utf8), name.suffix(5).elementsEqual(".sess".utf8),
                      SessionIDShape.isValid(UnsafeBufferPointer(rebasing: name[9..<49])) {
                consider(dir: top, cname: cname, sid: UnsafeBufferPointer(rebasing: name[9..<49]), &summary)
            } else {
                summary.skipped += 1
            }
        }
        if topCopy < 0 && !buckets.isEmpty {
            summary.errors.append("\(root): cannot open again: \(String(cString: strerror(errno)))")
            buckets = []
        }
        let threads = min(rules.threads, max(1, buckets.count))
        let parts = UnsafeMutableBufferPointer<Summary>.allocate(capacity: threads)
        parts.initialize(repeating: Summary())
        defer { parts.deinitialize(); parts.deallocate() }
        let work = Work(reaper: self, top: topCopy, buckets: buckets, parts: parts)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            // Thread t takes every threads-th folder: each writes only its own summary.
            var part = Summary()
            for i in stride(from: t, to: work.buckets.count, by: threads) { work.reaper.reapBucket(work.top, work.buckets[i], &part) }
            work.parts[t] = part
        }
        for part in parts { summary.merge(part) }
        summary.seconds = Double(clock.nanos() - start) / 1e9
        return summary
    }

    /// Odoo's folder holds 2-character folders (16+) and `werkzeug_<sid>.sess` files with werkzeug's
    /// temp files (12–15). Anything else among the first entries means this is some other folder.
    func checkLooksLikeOdoo(_ dir: Int32) throws {
        // Its own open of the directory: a dup would share (and move) the offset the scan reads from.
        let fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0, let d = fdopendir(fd) else { throw Refused(description: "\(root): cannot read") }
        defer { closedir(d) }
        var seen = 0
        while seen < 1000, let e = readdir(d) {
            let name = Self.name(e)
            if name == "." || name == ".." || name.hasPrefix(".") { continue }
            seen += 1
            let type = Int32(e.pointee.d_type)
            let fine: Bool
            if type == DT_DIR {
                fine = Self.isBucketName(name.utf8)
            } else if type == DT_REG || type == DT_UNKNOWN {
                fine = name.hasPrefix("werkzeug_") || name.hasSuffix(".__wz_sess")
            } else {
                fine = type == DT_LNK  // a stray symlink is skipped later, not a reason to refuse
            }
            if !fine {
                throw Refused(description: "\(root) does not look like an Odoo sessions directory (it holds \"\(name)\"); give <data_dir>/sessions")
            }
        }
    }

    /// What the scanning threads share: read-only but for each one's own summary slot.
    struct Work: @unchecked Sendable {
        let reaper: Reaper
        let top: Int32
        let buckets: [String]
        let parts: UnsafeMutableBufferPointer<Summary>
    }

    func reapBucket(_ top: Int32, _ bucket: String, _ summary: inout Summary) {
        let fd = openat(top, bucket, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            summary.errors.append("\(root)/\(bucket): cannot open: \(String(cString: strerror(errno)))")
            return
        }
        let b = Array(bucket.utf8)
        forEachEntry(fd, &summary) { fd, name, cname, _, summary in
            // 16+: the file is named by the whole id and sits in the folder of its first two characters.
            guard SessionIDShape.isValid(name), name[0] == b[0], name[1] == b[1] else { summary.skipped += 1; return }
            consider(dir: fd, cname: cname, sid: name, &summary)
        }
    }

    /// Streams the entries of the directory `fd` (which it takes over and closes): no listing is held,
    /// each name comes as bytes and as a C string (no String is made per file).
    func forEachEntry(_ fd: Int32, _ summary: inout Summary, _ body: (Int32, UnsafeBufferPointer<UInt8>, UnsafePointer<CChar>, Int32, inout Summary) -> Void) {
        guard let d = fdopendir(fd) else {
            summary.errors.append("\(root): cannot read a directory: \(String(cString: strerror(errno)))")
            close(fd)
            return
        }
        defer { closedir(d) }
        let dir = dirfd(d)
        while let e = readdir(d) {
            let type = Int32(e.pointee.d_type)
            withUnsafePointer(to: &e.pointee.d_name) { p in
                p.withMemoryRebound(to: CChar.self, capacity: 256) { cname in
                    let length = strlen(cname)
                    let name = UnsafeBufferPointer(start: UnsafeRawPointer(cname).assumingMemoryBound(to: UInt8.self), count: length)
                    if (length == 1 && name[0] == 0x2E) || (length == 2 && name[0] == 0x2E && name[1] == 0x2E) { return }
                    body(dir, name, cname, type, &summary)
                }
            }
        }
    }

    /// One candidate file: decide, re-check, unlink.
    func consider(dir: Int32, cname: UnsafePointer<CChar>, sid: UnsafeBufferPointer<UInt8>, _ summary: inout Summary) {
        var st = stat()
        guard fstatat(dir, cname, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }  // gone meanwhile
        guard (st.st_mode & S_IFMT) == S_IFREG else { summary.skipped += 1; return }  // symlink, fifo, ...
        summary.scanned += 1
        let age = now - Self.millis(st.st_mtim)
        // The key (an HMAC) only when something is to be matched or listed.
        var key: SessionKey? = nil
        func sessionKey() -> SessionKey {
            if let key { return key }
            let k = deriver.key(for: UnsafeRawBufferPointer(sid))
            key = k
            return k
        }
        var reason: Reason? = nil
        if let ended, ended(sessionKey()) {
            reason = .ended
        } else if age > rules.idle {
            reason = .idle
        } else if age > rules.anonymousIdle {
            switch isAnonymous(dir, cname) {
            case .some(true): reason = .anonymous
            case .some(false): break
            case .none: summary.unreadable += 1
            }
        }
        guard let reason else { summary.kept += 1; return }
        if rules.dryRun {
            summary.wouldDelete.append((sessionKey().description, reason))
            summary.deleted[reason, default: 0] += 1
            return
        }
        // Right before unlinking: still the same file, untouched since it was judged?
        var again = stat()
        guard fstatat(dir, cname, &again, AT_SYMLINK_NOFOLLOW) == 0, again.st_ino == st.st_ino,
              Self.millis(again.st_mtim) == Self.millis(st.st_mtim), (again.st_mode & S_IFMT) == S_IFREG else {
            summary.touchedDuringScan += 1
            return
        }
        if unlinkat(dir, cname, 0) == 0 {
            summary.deleted[reason, default: 0] += 1
        } else if errno != ENOENT {
            summary.errors.append("cannot delete the file of session \(sessionKey()): \(String(cString: strerror(errno)))")
        }
    }

    /// true: a JSON session with `"uid": null`; false: logged in, or not JSON (pickle, 16–17: never
    /// unpickled, so never judged anonymous); nil: unreadable.
    func isAnonymous(_ dir: Int32, _ name: UnsafePointer<CChar>) -> Bool? {
        let fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 16 * 1024)
        let n = read(fd, &buf, buf.count)
        guard n >= 0 else { return nil }
        let bytes = buf[0..<n]
        guard let first = bytes.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }), first == UInt8(ascii: "{") else {
            return false
        }
        return Self.jsonUIDIsNull(bytes)
    }

    /// Whether the top-level `"uid"` of a session's JSON is null (or absent: a session never logged in).
    static func jsonUIDIsNull(_ b: ArraySlice<UInt8>) -> Bool {
        let needle = Array("\"uid\"".utf8)
        var i = b.startIndex
        while i + needle.count <= b.endIndex {
            if b[i] == needle[0] && b[i..<(i + needle.count)].elementsEqual(needle) {
                var j = i + needle.count
                while j < b.endIndex && (b[j] == 0x20 || b[j] == 0x09 || b[j] == 0x0A || b[j] == 0x0D) { j += 1 }
                guard j < b.endIndex, b[j] == UInt8(ascii: ":") else { i += 1; continue }
                j += 1
                while j < b.endIndex && (b[j] == 0x20 || b[j] == 0x09 || b[j] == 0x0A || b[j] == 0x0D) { j += 1 }
                return b[j...].starts(with: "null".utf8) || b[j...].starts(with: "false".utf8)
            }
            i += 1
        }
        return true
    }

    // MARK: names

    static func isBucketName<C: Collection<UInt8>>(_ name: C) -> Bool {
        name.count == 2 && name.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A) || c == 0x2D || c == 0x5F
        }
    }

    static func name(_ e: UnsafeMutablePointer<dirent>) -> String {
        withUnsafePointer(to: e.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
    }

    static func millis(_ t: timespec) -> Int64 { Int64(t.tv_sec) * 1000 + Int64(t.tv_nsec) / 1_000_000 }

}

extension Reaper.Summary {
    mutating func merge(_ o: Reaper.Summary) {
        scanned += o.scanned
        kept += o.kept
        for (r, n) in o.deleted { deleted[r, default: 0] += n }
        touchedDuringScan += o.touchedDuringScan
        skipped += o.skipped
        unreadable += o.unreadable
        errors += o.errors
        wouldDelete += o.wouldDelete
    }

    /// For people.
    public var text: String {
        var lines = ["scanned \(scanned) session files in \(String(format1: seconds))s (\(seconds > 0 ? Int(Double(scanned) / seconds) : scanned) files/s)"]
        let verb = dryRun ? "would delete" : "deleted"
        lines.append("\(verb) \(deletedTotal): \(Reaper.Reason.allCases.map { "\(deleted[$0] ?? 0) \($0.rawValue)" }.joined(separator: ", "))")
        lines.append("kept \(kept); touched during the scan (kept) \(touchedDuringScan); skipped (not session files, symlinks) \(skipped); unreadable \(unreadable)")
        for (key, reason) in wouldDelete { lines.append("  would delete session \(key) (\(reason.rawValue))") }
        for e in errors { lines.append("error: \(e)") }
        return lines.joined(separator: "\n") + "\n"
    }

    /// For scripts.
    public var json: String {
        let reasons = Reaper.Reason.allCases.map { "\"\($0.rawValue)\": \(deleted[$0] ?? 0)" }.joined(separator: ", ")
        let would = wouldDelete.map { "{\"key\": \"\($0.key)\", \"reason\": \"\($0.reason.rawValue)\"}" }.joined(separator: ", ")
        let errs = errors.map { e -> String in
            var s = "\""
            for c in e.unicodeScalars {
                if c == "\"" || c == "\\" { s += "\\" }
                if c.value < 0x20 {
                    let h = String(c.value, radix: 16)
                    s += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                    continue
                }
                s.unicodeScalars.append(c)
            }
            return s + "\""
        }.joined(separator: ", ")
        return "{\"dry_run\": \(dryRun), \"scanned\": \(scanned), \"deleted\": {\(reasons)}, \"kept\": \(kept), \"touched_during_scan\": \(touchedDuringScan), \"skipped\": \(skipped), \"unreadable\": \(unreadable), \"seconds\": \(seconds), \"would_delete\": [\(would)], \"errors\": [\(errs)]}\n"
    }
}

extension String {
    init(format1 v: Double) {
        let tenths = Int((v * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}
