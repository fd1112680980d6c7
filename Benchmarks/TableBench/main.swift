// The session table on its own: touches per second over N threads on precomputed keys, and the memory
// one tracked session costs. Run: swift run -c release table-bench [sessions] [threads] [seconds]
import Dispatch
import Glibc
import IdlegateSessions

func rssKiB() -> Int {
    guard let f = fopen("/proc/self/status", "r") else { return 0 }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, 256, f) != nil {
        let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if s.hasPrefix("VmRSS:") { return Int(s.split(separator: " ").dropFirst().first ?? "0") ?? 0 }
    }
    return 0
}

func nowSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let args = CommandLine.arguments
let sessions = args.count > 1 ? Int(args[1]) ?? 1_000_000 : 1_000_000
let threads = args.count > 2 ? Int(args[2]) ?? 2 : 2
let seconds = args.count > 3 ? Double(args[3]) ?? 3 : 3

// Keys as the deriver makes them (HMAC of random-looking ids), made before anything is measured.
let deriver = SessionKeyDeriver(secret: Array(0..<32))
var keys: [SessionKey] = []
keys.reserveCapacity(sessions)
for n in 0..<sessions {
    var id = Array("session-id-".utf8)
    id += Array(String(n).utf8)
    keys.append(deriver.key(for: id[...]))
}
let limits = SessionLimits(idle: 15 * 60_000)
let before = rssKiB()
let table = SessionTable(maxEntries: sessions * 2, longestWindow: limits.idle)
for k in keys { table.start(k, now: 0, limits: limits) }
let after = rssKiB()
print("tracked \(table.count) sessions: RSS +\((after - before) * 1024 / max(1, sessions)) bytes per session")

let allKeys = keys
nonisolated(unsafe) let counts = UnsafeMutablePointer<Int>.allocate(capacity: threads * 16)
counts.initialize(repeating: 0, count: threads * 16)
let start = nowSeconds()
DispatchQueue.concurrentPerform(iterations: threads) { t in
    // Each thread walks the precomputed keys in order from its own offset: the keys are HMAC
    // outputs, so the table sees them in random order.
    var i = t * allKeys.count / threads
    var n = 0
    var now: Int64 = 1
    let n0 = allKeys.count
    while true {
        for _ in 0..<4096 {
            i += 1
            if i == n0 { i = 0 }
            _ = table.check(allKeys[i], now: now, limits: limits, activity: true, unknown: .adopt)
        }
        n += 4096
        now += 1
        if nowSeconds() - start >= seconds { break }
    }
    counts[t * 16] = n
}
let elapsed = nowSeconds() - start
let total = (0..<threads).reduce(0) { $0 + counts[$1 * 16] }
let rate = (Double(total) / elapsed / 1e5).rounded() / 10
print("\(threads) threads: \(total) touches in \((elapsed * 100).rounded() / 100) s = \(rate) million touches/s")
