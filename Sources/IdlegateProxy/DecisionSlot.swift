import IdlegateIO

/// Carries a loop-confined object through a `@Sendable` hop that lands back on its own loop.
struct Unchecked<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Where a session decision lands if it comes while `decide` is still running (the local table);
/// after that, the caller is told to wait for a hop back to its loop.
final class DecisionSlot: @unchecked Sendable {
    private let lock = Mutex()
    private var open = true
    private var decision: SessionDecision?

    /// Keeps the decision if `decide` has not returned yet; false when it must go the long way.
    func takeInline(_ d: SessionDecision) -> Bool {
        lock.withLock {
            guard open else { return false }
            decision = d
            return true
        }
    }

    /// `decide` returned: the decision if it came inline.
    func close() -> SessionDecision? {
        lock.withLock {
            open = false
            return decision
        }
    }
}
