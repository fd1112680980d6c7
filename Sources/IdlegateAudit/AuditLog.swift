import CZlib
import Dispatch
import Glibc
import IdlegateBase

/// Where events go and how they are kept.
public struct AuditSettings: Sendable, Equatable {
    /// A file path, `-` for stdout, empty for no audit log.
    public var path: String
    /// Rotate when the file would pass this many bytes; 0 = never by size.
    public var rotateSize: Int64 = 0
    /// Rotate at the first write of each UTC day.
    public var rotateDaily = false
    /// Rotated (gzip-compressed) files kept; older ones are deleted.
    public var keep = 14
    /// Most events waiting to be written; past it, events are dropped and counted.
    public var queueCapacity = 65_536
    /// How often written events are fsync'ed (ms): what a power loss can lose beyond that.
    public var fsyncInterval: Int64 = 1000

    public init(path: String) { self.path = path }
}

/// The audit trail's writer. Request paths hand events to `emit`, which only appends to a bounded
/// queue under a lock; one writer thread encodes and writes them, at once when it is idle and at most
/// `flushInterval` after they came, to a file opened O_APPEND. Overflow is counted and reported as an
/// `events_dropped` event, never silent. `reopen()` (SIGUSR1) reopens the path for logrotate; built-in
/// rotation renames the file and gzips it with zlib off the writer thread.
public final class AuditLog: @unchecked Sendable {
    public let settings: AuditSettings
    private let mutex = Mutex()
    private let cond = Condition()
    private var queue: [AuditEvent] = []
    private var dropped = 0
    private var reopenRequested = false
    private var stopping = false
    private var stopped = false
    private let done = DispatchSemaphore(value: 0)
    private let compressor = DispatchQueue(label: "idlegate-audit-gzip")
    private let compressions = DispatchGroup()
    /// Called with the number of events dropped (for a metric).
    private let onDrop: @Sendable (Int) -> Void
    private let onError: @Sendable (String) -> Void
    /// When a rotation is due and how rotated files are named (tests move it across midnight).
    private let clock: Clock

    // Writer-thread state.
    private var fd: Int32 = -1
    private var size: Int64 = 0
    private var day: Int64 = -1
    private var lastFsync: Int64 = 0
    private var unsynced = false

    /// Opens (creating) the file; throws with a readable message when it cannot.
    public init(settings: AuditSettings, clock: Clock = SystemClock(), onDrop: @escaping @Sendable (Int) -> Void = { _ in },
                onError: @escaping @Sendable (String) -> Void = { _ in }) throws {
        self.settings = settings
        self.clock = clock
        self.onDrop = onDrop
        self.onError = onError
        queue.reserveCapacity(256)
        if let message = openFile() { throw AuditError(message) }
        day = Self.utcDay(clock.now())
    }

    public func start() {
        OSThread.start(name: "idlegate-audit") { [self] in run() }
    }

    /// Queues an event (any thread). Never blocks on I/O.
    public func emit(_ event: AuditEvent) {
        mutex.lock()
        if stopped || queue.count >= settings.queueCapacity {
            dropped += 1
            mutex.unlock()
            onDrop(1)
            return
        }
        queue.append(event)
        if queue.count == 1 { cond.signal() }
        mutex.unlock()
    }

    /// Reopens the path before the next write (logrotate's postrotate: SIGUSR1).
    public func reopen() {
        mutex.lock()
        reopenRequested = true
        cond.signal()
        mutex.unlock()
    }

    /// Writes everything queued, fsyncs, closes; waits for rotated files to be compressed. After it,
    /// events are dropped.
    public func close() {
        mutex.lock()
        stopping = true
        cond.signal()
        mutex.unlock()
        done.wait()
        compressions.wait()
    }

    // MARK: the writer thread

    private func run() {
        var buffer: [UInt8] = []
        buffer.reserveCapacity(64 * 1024)
        while true {
            mutex.lock()
            while queue.isEmpty && dropped == 0 && !reopenRequested && !stopping {
                // Wake at least once per fsync interval so written lines reach the disk in time.
                if cond.wait(mutex, millis: unsynced ? settings.fsyncInterval : 60_000) { break }
            }
            let batch = queue
            queue.removeAll(keepingCapacity: true)
            let lost = dropped
            dropped = 0
            let reopenNow = reopenRequested
            reopenRequested = false
            let stop = stopping
            mutex.unlock()

            let now = clock.now()
            if reopenNow {
                closeFile()
                if let message = openFile() { onError(message) }
            }
            buffer.removeAll(keepingCapacity: true)
            for e in batch { e.encode(into: &buffer) }
            if lost > 0 {
                var e = AuditEvent(.eventsDropped, time: now)
                e.count = lost
                e.reason = "queue full"
                e.encode(into: &buffer)
            }
            // A batch larger than the room left goes out in pieces, rotating between them at line ends:
            // no file outgrows rotate_size unless one line does (a busy writer takes big batches).
            var start = 0
            while start < buffer.count {
                let end = pieceEnd(of: buffer, from: start)
                rotateIfDue(adding: end - start, now: now)
                write(buffer[start..<end])
                start = end
            }
            if unsynced && (stop || now - lastFsync >= settings.fsyncInterval) {
                if fd > 2 { fsync(fd) }
                lastFsync = now
                unsynced = false
            }
            if stop {
                mutex.lock()
                let empty = queue.isEmpty && dropped == 0
                if empty { stopped = true }
                mutex.unlock()
                if empty {
                    closeFile()
                    done.signal()
                    return
                }
            }
        }
    }

    /// Where the next piece of `buffer` from `start` ends: all of it when there is no size limit or it
    /// fits; else the whole lines that fit in the room the current file has left; failing that, one
    /// line (which then starts a fresh file, or is a line longer than the limit on its own).
    private func pieceEnd(of buffer: [UInt8], from start: Int) -> Int {
        let limit = settings.rotateSize
        guard limit > 0, settings.path != "-", size + Int64(buffer.count - start) > limit else { return buffer.count }
        let room = Int(max(limit - size, 0))
        var end = start
        var i = start
        while i < buffer.count && i < start + room {
            if buffer[i] == 0x0A { end = i + 1 }
            i += 1
        }
        if end > start { return end }
        while i < buffer.count && buffer[i] != 0x0A { i += 1 }
        return min(i + 1, buffer.count)
    }

    private func write(_ bytes: ArraySlice<UInt8>) {
        guard fd >= 0 else { return }
        var at = 0
        while at < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + at, bytes.count - at) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 {
                onError("audit log \(settings.path): write failed: \(String(cString: strerror(errno)))")
                return
            }
            at += n
        }
        size += Int64(bytes.count)
        unsynced = true
    }

    private func openFile() -> String? {
        if settings.path == "-" {
            fd = 1
            return nil
        }
        let f = open(settings.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o640)
        guard f >= 0 else { return "audit log \(settings.path): cannot open: \(String(cString: strerror(errno)))" }
        fd = f
        var st = stat()
        size = fstat(f, &st) == 0 ? Int64(st.st_size) : 0
        return nil
    }

    private func closeFile() {
        if fd > 2 {
            fsync(fd)
            Glibc.close(fd)
        }
        fd = -1
    }

    // MARK: rotation

    private func rotateIfDue(adding count: Int, now: Int64) {
        guard settings.path != "-" else { return }
        let today = Self.utcDay(now)
        let bySize = settings.rotateSize > 0 && size > 0 && size + Int64(count) > settings.rotateSize
        let byDay = settings.rotateDaily && today != day && size > 0
        day = today
        guard bySize || byDay else { return }
        closeFile()
        var name = settings.path + "." + Self.stamp(now)
        var n = 1
        while access(name, F_OK) == 0 || access(name + ".gz", F_OK) == 0 {
            name = settings.path + "." + Self.stamp(now) + "-\(n)"
            n += 1
        }
        if rename(settings.path, name) != 0 {
            onError("audit log \(settings.path): cannot rotate: \(String(cString: strerror(errno)))")
        } else {
            let keep = settings.keep, path = settings.path, report = onError, rotated = name
            compressor.async(group: compressions) {
                if let message = Self.gzip(rotated) { report(message) }
                Self.prune(path, keep: keep)
            }
        }
        if let message = openFile() { onError(message) }
    }

    /// Compresses `path` to `path.gz` (gzip, zlib) and removes the plain file.
    static func gzip(_ path: String) -> String? {
        let input = open(path, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { return "audit log \(path): cannot read for compression" }
        defer { Glibc.close(input) }
        guard let gz = gzopen(path + ".gz.tmp", "wb6") else { return "audit log \(path).gz: cannot create" }
        var buf = [UInt8](repeating: 0, count: 256 * 1024)
        var ok = true
        while true {
            let n = read(input, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { ok = n == 0; break }
            if gzwrite(gz, buf, UInt32(n)) != Int32(n) { ok = false; break }
        }
        ok = gzclose(gz) == Z_OK && ok
        guard ok else {
            unlink(path + ".gz.tmp")
            return "audit log \(path): compression failed; the plain file stays"
        }
        rename(path + ".gz.tmp", path + ".gz")
        unlink(path)
        return nil
    }

    /// Deletes the oldest rotated files of `path` beyond `keep`.
    static func prune(_ path: String, keep: Int) {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        guard let d = opendir(dir.isEmpty ? "/" : dir) else { return }
        var rotated: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafePointer(to: entry.pointee.d_name) { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
            if name.hasPrefix(base + ".") && name.hasSuffix(".gz") { rotated.append(name) }
        }
        closedir(d)
        rotated.sort()  // the stamp sorts by time
        for name in rotated.dropLast(keep) { unlink(dir + "/" + name) }
    }

    static func utcDay(_ ms: Int64) -> Int64 { ms / 86_400_000 }

    /// `20261125-113924`, UTC.
    static func stamp(_ ms: Int64) -> String {
        var out: [UInt8] = []
        AuditEvent.appendTimestamp(ms, into: &out)
        let s = String(decoding: out, as: UTF8.self)  // 2026-11-25T11:39:24.123Z
        let digits = s.filter(\.isNumber)
        return String(digits.prefix(8)) + "-" + String(digits.dropFirst(8).prefix(6))
    }
}

public struct AuditError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
