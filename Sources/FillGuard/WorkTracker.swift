import Synchronization

/// Counts outstanding work (queued events, operations in flight, pending timers) so callers can
/// wait for quiescence on a real signal instead of sleeping.
///
/// The count is an atomic (no lock on the fill path); the lock guards only the waiters, and is
/// taken when the count reaches zero or a waiter arrives.
final class WorkTracker: Sendable {
    private let count = Atomic<Int>(0)
    private let waiters = Mutex<[CheckedContinuation<Void, Never>]>([])

    func begin() { count.add(1, ordering: .sequentiallyConsistent) }

    /// Ends `n` units of work.
    func end(_ n: Int = 1) {
        guard n > 0 else { return }
        let after = count.subtract(n, ordering: .sequentiallyConsistent).newValue
        guard after == 0 else { return }
        // Checked again under the lock: a waiter registers only while the count is not zero.
        let ready = waiters.withLock { list -> [CheckedContinuation<Void, Never>] in
            guard count.load(ordering: .sequentiallyConsistent) == 0, !list.isEmpty else { return [] }
            defer { list.removeAll() }
            return list
        }
        for waiter in ready { waiter.resume() }
    }

    var outstanding: Int { count.load(ordering: .sequentiallyConsistent) }

    func waitUntilIdle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = waiters.withLock { list -> Bool in
                if count.load(ordering: .sequentiallyConsistent) == 0 { return true }
                list.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }
}
