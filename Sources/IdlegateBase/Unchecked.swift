/// Carries a loop-confined value through a `@Sendable` hop that lands back on its own loop (an
/// `EventLoop.execute`): the one place the compiler is told that such a value crosses threads safely.
public struct Unchecked<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
