import Synchronization

/// Counts outstanding work (queued events, operations in flight, pending timers) so callers can
/// wait for quiescence on a real signal instead of sleeping.
final class WorkTracker: Sendable {
    private struct Inner {
        var outstanding = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let inner = Mutex(Inner())

    func begin() { inner.withLock { $0.outstanding += 1 } }

    func end() {
        let ready = inner.withLock { inner -> [CheckedContinuation<Void, Never>] in
            inner.outstanding -= 1
            guard inner.outstanding == 0 else { return [] }
            defer { inner.waiters.removeAll() }
            return inner.waiters
        }
        for waiter in ready { waiter.resume() }
    }

    var outstanding: Int { inner.withLock { $0.outstanding } }

    func waitUntilIdle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let idle = inner.withLock { inner -> Bool in
                if inner.outstanding == 0 { return true }
                inner.waiters.append(continuation)
                return false
            }
            if idle { continuation.resume() }
        }
    }
}
