import FillGuardCore
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How an idle runner (a runner task or a `RunnerThreads` thread) waits for work without giving
/// up its thread: it polls a count of ready lanes, without a lock, and lets a thread with work on
/// the same processor run now and then.
enum IdlePolling {
    /// The longest an idle runner polls before it sleeps, whatever spin it was given: polling
    /// longer saves no wake-up worth a processor held that long.
    static let longestSpin = Duration.seconds(1)

    /// A spin setting in nanoseconds, held to 0...`longestSpin`.
    static func spinNanoseconds(_ spin: Duration) -> Int64 {
        min(spin, longestSpin).clampedNanoseconds
    }

    /// Monotonic time in nanoseconds (read without `ContinuousClock`'s overhead).
    static var nanosecondsNow: Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Int64(spec.tv_sec) * 1_000_000_000 + Int64(spec.tv_nsec)
    }

    /// Why a poll ended.
    enum PollEnd: Equatable {
        /// Work is ready.
        case work
        /// The time was up.
        case timeUp
        /// The runner is to stop (its owner shut down).
        case stopped
    }

    /// A stop flag nobody sets, for runners that are never told to stop.
    static let neverStopped = Atomic<Bool>(false)

    /// Polls `ready` until it is above zero (`work`), `stop` is set (`stopped`) or `nanoseconds`
    /// have passed (`timeUp`). Every 64 polls it checks the flag and the time and, when
    /// `yielding`, yields the processor to any thread with work on it. A thread on a processor
    /// of its own does not yield: under Linux's EEVDF scheduler a yield forfeits the rest of the
    /// thread's time slice and moves its deadline a slice ahead, so a thread that polls and
    /// yields leaves an intruder (a kernel worker, a host agent) nearly all
    /// of the processor for as long as the intruder runs, where one that does not yield gets its
    /// fair share back after a slice.
    @discardableResult
    static func waitForWork(_ ready: borrowing Atomic<Int>, atMost nanoseconds: Int64, yielding: Bool = true,
                            unless stop: borrowing Atomic<Bool>) -> PollEnd {
        let now = nanosecondsNow
        let deadline = nanoseconds > .max - now ? .max : now + nanoseconds
        var polls = 0
        while ready.load(ordering: .acquiring) == 0 {
            polls &+= 1
            if polls & 63 == 0 {
                if stop.load(ordering: .relaxed) { return .stopped }
                if nanosecondsNow >= deadline { return .timeUp }
                if yielding { sched_yield() }
            }
        }
        return .work
    }
}
