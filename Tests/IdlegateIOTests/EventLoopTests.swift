import Glibc
import IdlegateBase
import Testing
@testable import IdlegateIO

@Suite("Event loop")
struct EventLoopTests {
    /// Regression: `epoll_wait` failing with anything but EINTR ended the process through `fatalError`.
    /// Now `run` returns the errno and the server shuts down through its normal path.
    @Test func epollFailureEndsRunWithTheErrno() throws {
        let loop = try EventLoop(clock: ManualClock())
        loop.breakEpollForTesting()
        #expect(loop.run() == EINVAL)
    }

    @Test func tasksFromOtherThreadsRunOnTheLoopAndTicksUseTheClock() throws {
        let clock = ManualClock()
        let start = clock.now()
        let loop = try EventLoop(clock: clock, tickMillis: 10)
        final class Seen: @unchecked Sendable { var ticks: [Int64] = []; var task = false }
        let seen = Seen()
        loop.onTick = { now in
            seen.ticks.append(now)
            clock.advance(millis: 10)
            if seen.ticks.count == 3 { loop.execute { seen.task = true; loop.stop() } }
        }
        clock.advance(millis: 10)
        #expect(loop.run() == nil)
        #expect(seen.task)
        #expect(Array(seen.ticks.prefix(3)) == [start + 10, start + 20, start + 30])  // the loop's time is the clock's
    }
}
