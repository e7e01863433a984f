import Synchronization

/// One timer for the whole runtime that has lanes look at their unanswered broker calls every
/// half `brokerAnswerTimeout`: only lanes with calls to watch are enrolled, and the timer runs
/// only while one is. (A timer per lane cost about a kilobyte per busy symbol.)
final class AnswerWatchdog: Sendable {
    private struct State {
        var lanes: [ObjectIdentifier: SymbolLane] = [:]
        var running = false
        var stopped = false
    }

    private let interval: Duration
    private let state = Mutex(State())
    private let ticks = Atomic<Int>(0)

    /// Ticks so far. A call sent when this read `n` has been waiting a whole timeout once it
    /// reads `n + 3`, however late a lane gets to a tick's check.
    var tickCount: Int { ticks.load(ordering: .acquiring) }

    /// A watchdog ticking every `interval`.
    init(interval: Duration) { self.interval = interval }

    /// Has `lane` checked at every tick from now on (until it leaves).
    func enroll(_ lane: SymbolLane) {
        let start = state.withLock { state -> Bool in
            guard !state.stopped else { return false }
            state.lanes[ObjectIdentifier(lane)] = lane
            guard !state.running else { return false }
            state.running = true
            return true
        }
        if start { Task { await self.run() } }
    }

    /// Stops checking `lane` (it has nothing left to watch).
    func leave(_ lane: SymbolLane) {
        _ = state.withLock { $0.lanes.removeValue(forKey: ObjectIdentifier(lane)) }
    }

    /// Lets every lane go and takes no more (the manager shut down): the timer ends at its next
    /// tick. Returns the lanes that were enrolled, for them to drop what they watch.
    func stop() -> [SymbolLane] {
        state.withLock { state in
            state.stopped = true
            defer { state.lanes.removeAll() }
            return Array(state.lanes.values)
        }
    }

    /// Ticks while any lane is enrolled. Maintenance, not work: it does not hold up
    /// `waitUntilIdle()` (a call in flight does, until it is answered or expires).
    private func run() async {
        while true {
            try? await Task.sleep(for: interval)
            let lanes = state.withLock { state -> [SymbolLane]? in
                if state.lanes.isEmpty {
                    state.running = false
                    return nil
                }
                return Array(state.lanes.values)
            }
            guard let lanes else { return }
            ticks.add(1, ordering: .releasing)
            for lane in lanes { lane.enqueue(.checkAnswers) }
        }
    }
}
