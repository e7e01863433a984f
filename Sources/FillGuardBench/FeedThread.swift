import Foundation

/// Runs a feeder (the broker's report feed, a pacing load generator) on its own OS thread, so it
/// never occupies one of the few threads of Swift's cooperative pool that the runtime runs on.
enum FeedThread {
    /// Runs `body` on a new thread and returns its result when it finishes.
    static func run<T: Sendable>(name: String, _ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
            let thread = Thread {
                continuation.resume(returning: body())
            }
            thread.name = name
            thread.stackSize = 1 << 20
            thread.start()
        }
    }
}
