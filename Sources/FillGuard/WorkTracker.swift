import Synchronization

/// Counts outstanding work (queued events, operations in flight, pending timers) so callers can
/// wait for quiescence on a real signal instead of sleeping.
///
/// The count is an atomic (no lock on the fill path); the lock guards only the waiters, and is
/// taken when the count reaches zero or a waiter arrives.
final class WorkTracker: Sendable {
    /// One caller waiting for quiescence: resumed with true when it comes, false when its
    /// deadline passes first.
    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<Bool, Never>
    }

    private let count = Atomic<Int>(0)
    private let waiters = Mutex<[Waiter]>([])
    private let nextWaiter = Atomic<Int>(0)

    func begin() { count.add(1, ordering: .sequentiallyConsistent) }

    /// Ends `n` units of work.
    func end(_ n: Int = 1) {
        guard n > 0 else { return }
        let after = count.subtract(n, ordering: .sequentiallyConsistent).newValue
        guard after == 0 else { return }
        // Checked again under the lock: a waiter registers only while the count is not zero.
        let ready = waiters.withLock { list -> [Waiter] in
            guard count.load(ordering: .sequentiallyConsistent) == 0, !list.isEmpty else { return [] }
            defer { list.removeAll() }
            return list
        }
        for waiter in ready { waiter.continuation.resume(returning: true) }
    }

    var outstanding: Int { count.load(ordering: .sequentiallyConsistent) }

    func waitUntilIdle() async {
        _ = await wait(deadline: nil)
    }

    /// Waits until the count is zero or `limit` has passed; true when it reached zero.
    func waitUntilIdle(atMost limit: Duration) async -> Bool {
        let deadline = Deadline()
        let id = nextWaiter.add(1, ordering: .relaxed).newValue
        let timer = Task {
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled else { return }
            // Marked before the lock is taken: a waiter that registers after this sees it.
            deadline.passed.store(true, ordering: .sequentiallyConsistent)
            let expired = waiters.withLock { list -> Waiter? in
                list.firstIndex { $0.id == id }.map { list.remove(at: $0) }
            }
            expired?.continuation.resume(returning: false)
        }
        defer { timer.cancel() }
        return await wait(deadline: (id, deadline))
    }

    private func wait(deadline: (id: Int, Deadline)?) async -> Bool {
        await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let answer = waiters.withLock { list -> Bool? in
                if count.load(ordering: .sequentiallyConsistent) == 0 { return true }
                if let (_, passed) = deadline, passed.passed.load(ordering: .sequentiallyConsistent) { return false }
                list.append(Waiter(id: deadline?.id ?? 0, continuation: continuation))
                return nil
            }
            if let answer { continuation.resume(returning: answer) }
        }
    }
}

/// Whether a bounded wait's time is up.
private final class Deadline: Sendable {
    let passed = Atomic<Bool>(false)
}
