import IdlegateSessions
import StoreConformance
import Testing

/// Every store passes the same cases: the in-memory table, and a store that confirms later on another
/// thread (the shape of the shared Redis layer).
@Suite("Session store conformance")
struct StoreConformanceTests {
    @Test(arguments: StoreConformance.cases)
    func memoryTable(_ c: StoreConformance.Case) {
        let failures = c.run { longest, tombstone in SessionTable(stripes: 16, longestWindow: longest, tombstone: tombstone) }
        #expect(failures.isEmpty, "\(c.name): \(failures)")
    }

    @Test(arguments: StoreConformance.cases)
    func confirmingLaterOnAnotherThread(_ c: StoreConformance.Case) {
        let failures = c.run { longest, tombstone in
            LaterConfirmingStore(local: SessionTable(stripes: 16, longestWindow: longest, tombstone: tombstone))
        }
        #expect(failures.isEmpty, "\(c.name): \(failures)")
    }
}
