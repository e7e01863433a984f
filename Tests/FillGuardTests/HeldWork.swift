import Dispatch
import FillGuard
import FillGuardCore
import Synchronization

/// A journal store whose next append, once armed, is held until released: a write in flight for
/// as long as a test needs.
final class HeldJournalStore: JournalStore {
    /// Where the records go once released.
    let inner = InMemoryJournalStore()
    /// Set to hold the next append.
    let armed = Atomic<Bool>(false)
    private let held = Mutex<CheckedContinuation<Void, Never>?>(nil)
    private let holding = DispatchSemaphore(value: 0)

    func append(_ batch: [JournalRecord]) async throws(JournalError) {
        if armed.exchange(false, ordering: .sequentiallyConsistent) {
            await withCheckedContinuation { continuation in
                held.withLock { $0 = continuation }
                holding.signal()
            }
        }
        try await inner.append(batch)
    }

    /// Waits (on a signal, off the task pool) until an append is held; false after the test's limit.
    func waitUntilHolding() async -> Bool {
        await finishes { await withCheckedContinuation { continuation in DispatchQueue.global().async { self.holding.wait(); continuation.resume() } } }
    }

    /// Lets the held append through.
    func release() { held.withLock { $0.take() }?.resume() }

    func load(notices: @Sendable (String) -> Void) async throws(JournalError) -> JournalContents { try await inner.load(notices: notices) }
    func close() async { await inner.close() }
}

/// Holds a lane inside its pass (in the reaction observer, once armed) on a runner thread of its
/// own, until released: a slow pass that holds none of Swift's shared threads, which the test
/// (and others running meanwhile) need. Shut `threads` down when done.
final class HeldLane: Sendable {
    /// The one runner thread the lanes run on.
    let threads: RunnerThreads
    /// Set to hold the lane at its next reaction.
    let armed = Atomic<Bool>(false)
    private let inside = DispatchSemaphore(value: 0)
    private let released = DispatchSemaphore(value: 0)

    /// A hold on a runner thread named `name`.
    init(name: String) {
        threads = RunnerThreads(count: 1, name: name)
    }

    /// `base` with the hold's observer and runner thread.
    func configuration(_ base: FillGuardConfiguration = FillGuardConfiguration(retry: .immediate)) -> FillGuardConfiguration {
        var configuration = base
        configuration.reactionObserver = { [self] _ in
            if armed.exchange(false, ordering: .sequentiallyConsistent) {
                inside.signal()
                released.wait()
            }
        }
        configuration.runnerThreads = threads
        return configuration
    }

    /// Waits until the lane is held; false after the test's limit.
    func waitUntilInside() async -> Bool {
        await finishes { await withCheckedContinuation { continuation in DispatchQueue.global().async { self.inside.wait(); continuation.resume() } } }
    }

    /// Lets the held lane go on.
    func release() { released.signal() }
}
