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

    /// Begins one unit of work. (A wrapping add: one locked add, where a checked one is a
    /// compare-and-swap loop, retried whenever another thread moved the count meanwhile. The count
    /// is bounded by the work in memory, far from overflow.)
    @inline(__always)
    func begin() { count.wrappingAdd(1, ordering: .sequentiallyConsistent) }

    /// Ends `n` units of work.
    @inline(__always)
    func end(_ n: Int = 1) {
        guard n > 0 else { return }
        if count.wrappingSubtract(n, ordering: .sequentiallyConsistent).newValue == 0 { resumeWaiters() }
    }

    /// The count reached zero: resumes the callers waiting for it.
    @inline(never)
    private func resumeWaiters() {
        // Checked again under the lock: a waiter registers only while the count is not zero.
        let ready = waiters.withLock { list -> [Waiter] in
            guard count.load(ordering: .sequentiallyConsistent) == 0, !list.isEmpty else { return [] }
            defer { list.removeAll() }
            return list
        }
        for waiter in ready { waiter.continuation.resume(returning: true) }
    }

    var outstanding: Int { count.load(ordering: .sequentiallyConsistent) }

    /// Waits until the count is zero; false when its task was cancelled first.
    @discardableResult
    func waitUntilIdle() async -> Bool {
        await wait(atMost: nil, cancellable: true)
    }

    /// Waits until the count is zero or `limit` has passed; true when it reached zero. False
    /// also when its task was cancelled first, unless not `cancellable` (a shutdown's drain,
    /// which promises its wait whoever cancels its caller).
    func waitUntilIdle(atMost limit: Duration, cancellable: Bool = true) async -> Bool {
        await wait(atMost: limit, cancellable: cancellable)
    }

    private func wait(atMost limit: Duration?, cancellable: Bool) async -> Bool {
        // "For ever" (`.seconds(Int64.max)`) waits `Duration.longestWait`: the clock's arithmetic
        // traps past it.
        let limit = limit.map(\.clampedToWait)
        let ending = WaitEnding()
        let id = nextWaiter.add(1, ordering: .relaxed).newValue
        let timer = limit.map { limit in
            Task {
                try? await Task.sleep(for: limit)
                guard !Task.isCancelled else { return }
                giveUp(id, ending)
            }
        }
        defer { timer?.cancel() }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let answer = waiters.withLock { list -> Bool? in
                    if count.load(ordering: .sequentiallyConsistent) == 0 { return true }
                    if ending.ended.load(ordering: .sequentiallyConsistent) { return false }
                    list.append(Waiter(id: id, continuation: continuation))
                    return nil
                }
                if let answer { continuation.resume(returning: answer) }
            }
        } onCancel: {
            if cancellable { giveUp(id, ending) }
        }
    }

    /// Ends waiter `id`'s wait with false (its time is up, or its task was cancelled).
    private func giveUp(_ id: Int, _ ending: WaitEnding) {
        // Marked before the lock is taken: a waiter that registers after this sees it.
        ending.ended.store(true, ordering: .sequentiallyConsistent)
        let expired = waiters.withLock { list -> Waiter? in
            list.firstIndex { $0.id == id }.map { list.remove(at: $0) }
        }
        expired?.continuation.resume(returning: false)
    }
}

/// Whether a wait has been given up (its time is up, or its task was cancelled).
private final class WaitEnding: Sendable {
    let ended = Atomic<Bool>(false)
}
