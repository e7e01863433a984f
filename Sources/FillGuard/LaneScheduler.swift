import DequeModule
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs the lanes that have events: a FIFO queue of ready lanes served by at most one runner task
/// per processor.
///
/// A lane is queued when its first event arrives while it is idle, runs one pass (up to
/// `lanePassLimit` events) at a time, and queues itself again behind the others if more events
/// wait. Each runner yields its thread after every `passLimit` events it handled, so broker
/// operations and timers get their turn.
///
/// With nothing ready a runner ends at once, or with `idleSpin` set (opt-in) first waits that
/// long for work, polling without giving up its thread: the next event after a runner ended
/// starts a new runner task (a thread wake-up, tens of microseconds), one that comes while a
/// runner polls is taken at once. While a runner polls, a newly ready lane is left to it rather
/// than starting another runner.
///
/// With `RunnerThreads` configured, ready lanes go to those dedicated threads instead (same rules,
/// their own queue); once they are shut down, back to runner tasks.
final class LaneScheduler: @unchecked Sendable {
    private struct State {
        var ready = Deque<SymbolLane>()
        var runners = 0
        /// Runners waiting for work (counted in `runners`).
        var waiting = 0
    }

    private let lock = SpinLock()
    /// Guarded by `lock`.
    @exclusivity(unchecked) private var state = State()
    /// `state.ready.count`, readable without the lock (waiting runners poll it).
    private let readyCount = Atomic<Int>(0)
    private let width: Int
    private let passLimit: Int
    private let idleSpinNanos: Int64
    /// Dedicated threads that run the lanes instead of runner tasks, while they are not shut down.
    private let threads: RunnerThreads?

    init(passLimit: Int, idleSpin: Duration, threads: RunnerThreads? = nil) {
        self.passLimit = max(1, passLimit)
        self.threads = threads
        self.width = max(1, Self.processors)
        // On a single processor a polling runner would only hold up the tasks it waits for.
        self.idleSpinNanos = Self.processors > 1 ? IdlePolling.spinNanoseconds(idleSpin) : 0
    }

    /// Queues a lane that has events and no runner (its mailbox's `draining` is set). A runner
    /// requeuing the lane it just ran (`byRunner`) starts no other: it takes from the queue next.
    /// Neither does a lane a waiting runner will take.
    func schedule(_ lane: SymbolLane, byRunner: Bool = false) {
        // With dedicated threads, they take it; once they are shut down, runner tasks do (a
        // lane requeued by a stopping thread has no runner task behind it: not `byRunner`).
        if let threads {
            if threads.submit(lane, byRunner: byRunner) { return }
            schedulePooled(lane, byRunner: false)
            return
        }
        schedulePooled(lane, byRunner: byRunner)
    }

    /// Queues a lane for the runner tasks on Swift's thread pool.
    private func schedulePooled(_ lane: SymbolLane, byRunner: Bool) {
        lock.lock()
        state.ready.append(lane)
        readyCount.store(state.ready.count, ordering: .releasing)
        // Lanes no waiting runner will take: each may start a runner, up to one per processor, so
        // symbols run in parallel (a lane stuck in a slow pass never holds up another).
        let unserved = state.ready.count - state.waiting
        let start = !byRunner && state.runners < width && unserved > 0
        if start { state.runners += 1 }
        lock.unlock()
        if start {
            Task.detached { await self.run() }
        }
    }

    /// The next ready lane; a runner that was waiting stops counting as waiting when it gets one.
    private func take(wasWaiting: Bool) -> SymbolLane? {
        lock.lock()
        defer { lock.unlock() }
        guard let lane = state.ready.popFirst() else { return nil }
        readyCount.store(state.ready.count, ordering: .releasing)
        if wasWaiting { state.waiting -= 1 }
        return lane
    }

    /// What a runner that ran out of lanes does next.
    private enum Idle {
        case take(SymbolLane)
        case wait
        case exit
    }

    /// Counts this runner as waiting, unless a lane is ready (then it takes it) or another runner
    /// already waits (then this one ends: one polling thread is enough).
    private func startWaiting() -> Idle {
        lock.lock()
        defer { lock.unlock() }
        if let lane = state.ready.popFirst() {
            readyCount.store(state.ready.count, ordering: .releasing)
            return .take(lane)
        }
        if state.waiting > 0 || idleSpinNanos == 0 {
            state.runners -= 1
            return .exit
        }
        state.waiting += 1
        return .wait
    }

    /// Ends this waiting runner if nothing is ready (checked under the lock that `schedule` takes,
    /// so a lane queued meanwhile is never left without a runner).
    private func exitIfIdle() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard state.ready.isEmpty else { return false }
        state.waiting -= 1
        state.runners -= 1
        return true
    }

    /// Takes ready lanes and runs their passes; waits up to `idleSpin` for more, then ends.
    private func run() async {
        var handled = 0
        var scratch = SymbolLane.Scratch()
        var next = take(wasWaiting: false)
        while true {
            if let lane = next {
                handled += lane.runPass(&scratch)
                if handled >= passLimit {
                    handled = 0
                    await Task.yield()
                }
                next = take(wasWaiting: false)
                continue
            }
            switch startWaiting() {
            case .take(let lane):
                next = lane
                continue
            case .exit:
                return
            case .wait:
                break
            }
            // Waiting: poll the ready count (no lock) until work comes or time is up.
            // It holds its thread meanwhile (a task queued behind it waits for another thread).
            IdlePolling.waitForWork(readyCount, atMost: idleSpinNanos, unless: IdlePolling.neverStopped)
            if readyCount.load(ordering: .acquiring) > 0, let lane = take(wasWaiting: true) {
                next = lane
                continue
            }
            if exitIfIdle() { return }
            // A lane came between the poll and the exit check: take it (still counted as waiting).
            next = take(wasWaiting: true)
            if next == nil {
                // Another runner took it first: wait again.
                lock.lock()
                state.waiting -= 1
                lock.unlock()
            }
        }
    }

    private static var processors: Int {
        #if canImport(Glibc) || canImport(Musl) || canImport(Darwin)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 4
        #endif
    }
}
