import Foundation
import FillGuard

/// Runs a feeder (the broker's report feed, a pacing load generator) on its own OS thread, so it
/// never occupies one of the few threads of Swift's cooperative pool that the runtime runs on.
enum FeedThread {
    /// Runs `body` on a new thread and returns its result when it finishes. With `pinned`, the
    /// thread stays on the last processor the process may use (a load generator that keeps one
    /// core busy: the kernel then moves the runtime's threads to the others instead of sharing it).
    /// With `besidePacer`, it stays on the other processors (where a pinned pacer leaves room).
    static func run<T: Sendable>(name: String, pinned: Bool = false, besidePacer: Bool = false, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let thread = Thread {
                if pinned { pinToLastProcessor() }
                if besidePacer { ProcessorAffinity.pinCurrentThread(to: processorsBesidesPacer()) }
                continuation.resume(returning: body())
            }
            thread.name = name
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// The processors a pinned feeder leaves to the others: all but the last (all when only one).
    static func processorsBesidesPacer() -> [Int] {
        let allowed = ProcessorAffinity.allowed()
        return allowed.count > 1 ? Array(allowed.dropLast()) : allowed
    }

    /// Binds the calling thread to the highest-numbered processor it may use (nothing with a
    /// single processor, or off Linux).
    private static func pinToLastProcessor() {
        let allowed = ProcessorAffinity.allowed()
        guard allowed.count > 1, let last = allowed.last else { return }
        ProcessorAffinity.pinCurrentThread(to: [last])
    }
}
