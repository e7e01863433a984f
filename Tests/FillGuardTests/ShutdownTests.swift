import Dispatch
import FillGuard
import FillGuardCore
import Logging
import Synchronization
import Testing

/// Log levels a manager wrote, to check that a clean shutdown logs nothing critical.
final class LevelRecorder: Sendable {
    private struct State {
        var levels: [Logger.Level] = []
        var waiters: [(Logger.Level, Int, CheckedContinuation<Void, Never>)] = []
    }
    private let state = Mutex(State())

    var recorded: [Logger.Level] { state.withLock { $0.levels } }

    /// Waits until `count` entries at `level` were logged.
    func waitFor(_ count: Int, at level: Logger.Level) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let ready = state.withLock { state -> Bool in
                if state.levels.filter({ $0 == level }).count >= count { return true }
                state.waiters.append((level, count, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    func logger() -> Logger {
        Logger(label: "test") { _ in Handler(recorder: self) }
    }

    fileprivate func record(_ level: Logger.Level) {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.levels.append(level)
            let done = state.waiters.filter { waiter in state.levels.filter { $0 == waiter.0 }.count >= waiter.1 }
            state.waiters.removeAll { waiter in state.levels.filter { $0 == waiter.0 }.count >= waiter.1 }
            return done.map(\.2)
        }
        for continuation in ready { continuation.resume() }
    }

    private struct Handler: LogHandler {
        let recorder: LevelRecorder
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { recorder.record(event.level) }
    }
}

@Suite("Shutdown", .timeLimit(.minutes(5)))
struct ShutdownTests {
    /// A journaled manager with one long position (entry filled, 100 at 100) whose scale-in
    /// then filled while the broker holds every request: the stop's and the target's resizes are
    /// in flight (failing with `failure` once let through, if given).
    private func resizesInFlight(_ broker: TestBroker, _ log: LevelRecorder,
                                 failing failure: BrokerError? = nil) async throws -> (FillManager, Journal, FillMaker) {
        let journal = Journal(store: InMemoryJournalStore())
        let manager = FillManager(broker: broker, journal: journal, logger: log.logger())
        _ = try await manager.recover()
        var fills = FillMaker()
        let position = try await manager.openLongAndFillEntry("P1", "AAA", fills: &fills)
        broker.hold()
        if let failure { broker.fail(2, .modify, with: failure) }
        manager.receive(fills.fill(try #require(position.liveOrder(.scaleIn(0))), 100, at: "98"))
        await broker.waitForHeld(2)
        return (manager, journal, fills)
    }

    @Test("waitUntilIdle(atMost:) is false while the broker holds the resizes and true once it answers; a cancelled waitUntilIdle() returns")
    func idleWaitsAreBoundedAndCancellable() async throws {
        let broker = TestBroker()
        let log = LevelRecorder()
        let (manager, _, _) = try await resizesInFlight(broker, log)
        #expect(await manager.waitUntilIdle(atMost: .milliseconds(50)) == false, "idle while two resizes are in flight")
        // Started at once, up to its wait: the cancellation ends a wait that has begun.
        let waiter = Task.immediate { await manager.waitUntilIdle() }
        waiter.cancel()
        // Without cancellation the wait would last as long as the broker holds the resizes.
        #expect(await finishes { await waiter.value }, "a cancelled waitUntilIdle() kept waiting")
        broker.releaseAll()
        #expect(await manager.waitUntilIdle(atMost: .seconds(30)), "not idle after the broker answered")
        #expect(await manager.shutdown())
    }

    @Test("a shutdown whose task is cancelled still lets the work in flight finish: the cancellation does not cut its drain short")
    func cancelledShutdownStillDrains() async throws {
        let broker = TestBroker()
        let log = LevelRecorder()
        let (manager, _, _) = try await resizesInFlight(broker, log)
        // Started at once, up to its drain's wait; then its task is cancelled (a task group
        // cancelling its children, say) before the broker answers.
        let shutdown = Task.immediate { await manager.shutdown(waitingAtMost: .seconds(30)) }
        shutdown.cancel()
        broker.releaseAll()
        #expect(await shutdown.value, "the shutdown gave up before the resizes were answered")
        let position = try #require(await manager.position("P1"))
        #expect(position.liveOrder(.stopLoss)?.quantity == 200 && position.liveOrder(.takeProfit)?.quantity == 200, "\(position.orders)")
    }

    @Test("shutdown lets work in flight finish, then refuses new inputs, sends nothing more and closes the journal")
    func drainsThenStops() async throws {
        let broker = TestBroker()
        let log = LevelRecorder()
        // The stop's and the target's resizes are in flight when the shutdown begins.
        let (manager, journal, madeFills) = try await resizesInFlight(broker, log)
        var fills = madeFills
        // Started at once, on this thread, up to its first wait: it is draining from here on.
        let shutdown = Task.immediate { await manager.shutdown() }
        // Draining: no new bracket...
        await #expect(throws: InputError(.shutDown, "position P2 not opened: the manager is shutting down")) {
            try await manager.open(.long("P2", "BBB"))
        }
        // ...but the answers in flight still apply, and the shutdown waits for them.
        broker.releaseAll()
        #expect(await shutdown.value)
        let drained = try #require(await manager.position("P1"))
        #expect(drained.netQuantity == 200)
        #expect(drained.liveOrder(.stopLoss)?.openQuantity == 200 && drained.liveOrder(.takeProfit)?.openQuantity == 200)
        #expect(broker.requests.filter { $0.kind == .modify && $0.quantity == 200 }.count == 2)

        // Stopped: a report is refused and changes nothing; reads still answer.
        let requests = broker.requests.count
        let stop = try #require(drained.liveOrder(.stopLoss))
        manager.receive(fills.fill(stop, 50, at: "95"))
        #expect(manager.statistics.rejected[.shutDown] == 2)
        #expect(try #require(await manager.position("P1")).netQuantity == 200)
        #expect(broker.requests.count == requests)
        #expect(manager.journalFailure == nil)
        #expect(journal.failure?.code == .closed)
        #expect(!log.recorded.contains(.critical))
        // A second call has nothing left to do.
        #expect(await manager.shutdown())
    }

    @Test("a bracket whose open passed its check before the shutdown began, but reached its lane after, is refused (shutDown): nothing is sent for it")
    func bracketReachingItsLaneDuringShutdownIsRefused() async throws {
        // One runner thread, held in AAA's pass: BBB's bracket waits in its lane meanwhile.
        let hold = HeldLane(name: "test-one-runner")
        defer { hold.threads.shutdown() }
        let configuration = hold.configuration()
        let broker = TestBroker()
        let manager = FillManager(broker: broker, configuration: configuration, logger: .quiet)
        var fills = FillMaker()
        try await manager.open(.long("P1", "AAA"))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        hold.armed.store(true, ordering: .sequentiallyConsistent)
        manager.receive(fills.fill(entry, 100, at: "100"))
        #expect(await hold.waitUntilInside())
        let opening = Task { () -> InputError? in
            do throws(InputError) { try await manager.open(.long("P2", "BBB")) } catch { return error }
            return nil
        }
        // BBB's lane exists: its open is past the manager's stage check.
        while manager.symbolCount < 2 { await Task.yield() }
        let shutdown = Task { await manager.shutdown(waitingAtMost: .seconds(30)) }
        // The shutdown has begun once a bracket is refused for it rather than for its prices.
        let inverted = BracketSpec(positionID: "X", symbol: "CCC", side: .buy, quantity: 1, stopLoss: Price("110"), takeProfit: Price("90"))
        while true {
            do throws(InputError) { try await manager.open(inverted) } catch { if error.code == .shutDown { break } }
            await Task.yield()
        }
        hold.release()
        #expect(await opening.value?.code == .shutDown)
        #expect(await shutdown.value)
        #expect(!broker.requests.contains { $0.orderID.rawValue.hasPrefix("P2") }, "\(broker.requests)")
        #expect(await manager.position("P2") == nil)
    }

    @Test("reports queued before the stop but not reached by the shutdown's limit are refused (shutDown), not applied after it")
    func queuedReportsAreNotAppliedAfterTheStop() async throws {
        let hold = HeldLane(name: "test-held-lane")
        defer { hold.threads.shutdown() }
        let configuration = hold.configuration()
        let manager = FillManager(broker: TestBroker(), configuration: configuration, logger: .quiet)
        var fills = FillMaker()
        try await manager.open(.long("P1", "AAA"))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        hold.armed.store(true, ordering: .sequentiallyConsistent)
        manager.receive(fills.fill(entry, 60, at: "100"))
        // The lane is inside its pass (the fill's protective submit); the rest of the entry queues behind it.
        #expect(await hold.waitUntilInside())
        manager.receive(fills.fill(entry, 40, at: "100"))
        #expect(await manager.shutdown(waitingAtMost: .milliseconds(20)) == false, "the lane is busy: the limit passes")
        hold.release()
        #expect(await waitUntilIdle(manager))
        #expect(await manager.position("P1")?.netQuantity == 60, "the report queued behind is not applied after the stop")
        #expect(manager.recentRejections().contains { $0.error.code == .shutDown }, "\(manager.recentRejections())")
    }

    @Test("with a journal, a report that comes while the clean stop writes its snapshots is not applied after them: the next start replays no record")
    func cleanStopLeavesNoRecordToReplay() async throws {
        /// Runs `onSnapshot` (once) while a snapshot's write is in flight.
        final class SnapshotHookStore: JournalStore {
            let inner = InMemoryJournalStore()
            let onSnapshot = Mutex<(@Sendable () -> Void)?>(nil)
            func append(_ batch: [JournalRecord]) async throws(JournalError) {
                if batch.contains(where: { $0.kind == .snapshot }), let hook = onSnapshot.withLock({ $0.take() }) { hook() }
                try await inner.append(batch)
            }
            func load(notices: @Sendable (String) -> Void) async throws(JournalError) -> JournalContents { try await inner.load(notices: notices) }
            func close() async { await inner.close() }
        }
        let store = SnapshotHookStore()
        let manager = FillManager(broker: TestBroker(), journal: Journal(store: store), logger: .quiet)
        _ = try await manager.recover()
        var fills = FillMaker()
        try await manager.open(.long("P1", "KO"))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        manager.receive(fills.fill(entry, 60, at: "100"))
        await manager.waitUntilIdle()
        let late = fills.fill(entry, 40, at: "100")
        store.onSnapshot.withLock { $0 = { manager.receive(late) } }
        #expect(await manager.shutdown())
        #expect(store.onSnapshot.withLock { $0 == nil }, "the stop wrote a snapshot")
        let contents = try await store.inner.load(notices: { _ in })
        #expect(contents.lanes["KO"]?.snapshot != nil)
        #expect(contents.lanes["KO"]?.records.isEmpty == true, "records after the snapshot: \(contents.lanes["KO"]?.records.count ?? -1)")
        #expect(await manager.position("P1")?.netQuantity == 60, "the late report came after the stop: refused")
        #expect(manager.recentRejections().contains { $0.error.code == .shutDown })
    }

    @Test("with a journal too: reports queued behind a write in flight when the shutdown's limit passes are refused (shutDown), never journaled or applied")
    func queuedReportsAreNotJournaledAfterTheStop() async throws {
        let store = HeldJournalStore()
        let manager = FillManager(broker: TestBroker(), journal: Journal(store: store), logger: .quiet)
        _ = try await manager.recover()
        var fills = FillMaker()
        try await manager.open(.long("P1", "AAA"))
        await manager.waitUntilIdle()
        let entry = try #require(await manager.position("P1")?.liveOrder(.entry))
        store.armed.store(true, ordering: .sequentiallyConsistent)
        manager.receive(fills.fill(entry, 60, at: "100"))
        #expect(await store.waitUntilHolding())
        // The write of that fill is held; the rest of the entry waits behind it.
        manager.receive(fills.fill(entry, 40, at: "100"))
        let stopping = Task { await manager.shutdown(waitingAtMost: .milliseconds(20)) }
        // Stopped once a new report is refused as shutDown (the shutdown then waits for the held write).
        while !manager.recentRejections().contains(where: { $0.error.code == .shutDown }) {
            manager.receive(fills.fill(entry, 1, at: "100"))
            await Task.yield()
        }
        store.release()
        #expect(await stopping.value == false, "the write was held: the limit passed")
        let position = try #require(await manager.position("P1"))
        #expect(position.netQuantity == 60, "the report queued behind the write is not applied after the stop")
        // Nor journaled: a new manager on the same store recovers 60.
        let again = FillManager(broker: TestBroker(), journal: Journal(store: store.inner), logger: .quiet)
        _ = try await again.recover()
        #expect(await again.position("P1")?.netQuantity == 60)
    }

    @Test("a broker answer after the shutdown's limit is dropped: nothing applied or sent, no journal failure")
    func lateAnswerAfterTheLimit() async throws {
        let broker = TestBroker()
        let log = LevelRecorder()
        // The resizes fail when they are let through: a retry would follow, were it not stopped.
        let (manager, journal, _) = try await resizesInFlight(broker, log, failing: BrokerError(.transient, "busy"))
        #expect(await manager.shutdown(waitingAtMost: .milliseconds(20)) == false)
        // The calls still unanswered were given up at the stop: nothing is left counted as work.
        #expect(await waitUntilIdle(manager))
        let requests = broker.requests.count
        let warnings = log.recorded.filter { $0 == .warning }.count
        broker.releaseAll()
        // Their answers, when they come, are ignored (a warning each): nothing applied or sent.
        #expect(await finishes { await log.waitFor(warnings + 2, at: .warning) })
        #expect(await waitUntilIdle(manager))
        #expect(broker.requests.count == requests)
        #expect(manager.statistics.retries == 0)
        #expect(manager.journalFailure == nil)
        #expect(journal.failure?.code == .closed)
        #expect(!log.recorded.contains(.critical))
        // The state is the one the shutdown stopped at: the fill applied, the resizes unanswered.
        let stopped = try #require(await manager.position("P1"))
        #expect(stopped.netQuantity == 200)
    }
}
