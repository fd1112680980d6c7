import Glibc

/// The state directory: the session snapshot (and, by default, the key file). Snapshots are written
/// atomically (a temp file, fsync, rename, fsync of the directory), so a crash at any moment leaves
/// either the old snapshot or the new one, never a torn file.
public struct StateDirectory {
    public let path: String
    public var snapshotPath: String { path + "/sessions.snapshot" }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Creates the directory (mode 0700) and its parents if missing.
    public init(path: String) { self.path = path }

    public static func ensure(_ path: String) throws {
        var built = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            built += "/" + part
            if mkdir(built, 0o700) != 0 && errno != EEXIST {
                throw Failure(description: "state_dir \(path): cannot create \(built): \(String(cString: strerror(errno)))")
            }
        }
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw Failure(description: "state_dir \(path): not a directory")
        }
    }

    /// Writes the table; returns how many records went out.
    public func save(_ table: SessionTable, logins: [(SessionKey, String)], check: SessionKey, now: Int64) throws -> Int {
        let tmp = snapshotPath + ".tmp"
        let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure(description: "cannot create \(tmp): \(String(cString: strerror(errno)))") }
        var ok = false
        defer {
            close(fd)
            if !ok { unlink(tmp) }
        }
        let count = try SessionSnapshot.write(table, logins: logins, check: check, now: now) { chunk in
            var at = 0
            while at < chunk.count {
                let n = chunk.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + at, chunk.count - at) }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw Failure(description: "cannot write \(tmp): \(String(cString: strerror(errno)))") }
                at += n
            }
        }
        guard fsync(fd) == 0 else { throw Failure(description: "cannot fsync \(tmp): \(String(cString: strerror(errno)))") }
        guard rename(tmp, snapshotPath) == 0 else { throw Failure(description: "cannot rename \(tmp): \(String(cString: strerror(errno)))") }
        ok = true
        let dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            fsync(dir)
            close(dir)
        }
        return count
    }

    /// What `restore` found, for the caller's log.
    public enum Restored {
        /// No snapshot yet (a first start).
        case none
        /// Records restored: how many were kept, of how many, the snapshot's age, and its login names
        /// of the sessions kept.
        case restored(kept: Int, of: Int, ageSeconds: Int64, logins: [(SessionKey, String)])
        /// Unreadable, corrupt, truncated or foreign; the message says which and where it went.
        case refused(String)
    }

    /// Loads the snapshot into `table`. A missing snapshot is a first start; an unreadable, corrupt,
    /// truncated or foreign one is refused loudly, set aside as `sessions.snapshot.rejected` (so the
    /// next snapshot does not overwrite the evidence), and the table starts empty.
    public func restore(into table: SessionTable, check: SessionKey, now: Int64) -> Restored {
        let fd = open(snapshotPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return .none }
            return .refused("session snapshot \(snapshotPath) unreadable: \(String(cString: strerror(errno)))")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        close(fd)
        do {
            let contents = try SessionSnapshot.read(bytes, check: check)
            var kept = 0
            for (k, r) in contents.records where table.restore(k, r, now: now) { kept += 1 }
            let logins = contents.logins.filter { table.record($0.0) != nil }
            return .restored(kept: kept, of: contents.records.count, ageSeconds: max(0, now - contents.written) / 1000, logins: logins)
        } catch {
            let aside = snapshotPath + ".rejected"
            rename(snapshotPath, aside)
            return .refused("session snapshot \(snapshotPath) refused: \(error); moved to \(aside)")
        }
    }
}
